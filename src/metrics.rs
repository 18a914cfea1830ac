//! Metric names (the tests use these same constants) and the Prometheus exporter.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const OTP_ISSUED_TOTAL: &str = "otpgate_otp_issued_total";
pub const OTP_VERIFICATIONS_TOTAL: &str = "otpgate_otp_verifications_total";
pub const RATE_LIMITED_TOTAL: &str = "otpgate_rate_limited_total";
pub const OTP_PENDING: &str = "otpgate_otp_pending";
pub const OTP_LOCKOUTS_TOTAL: &str = "otpgate_otp_lockouts_total";
pub const OTP_LOCKED_NUMBERS: &str = "otpgate_otp_locked_numbers";
pub const SMS_SUBMITTED_TOTAL: &str = "otpgate_sms_submitted_total";
pub const SMS_SUBMIT_DURATION_SECONDS: &str = "otpgate_sms_submit_duration_seconds";
pub const SMS_QUEUE_DEPTH: &str = "otpgate_sms_queue_depth";
pub const SMS_RECEIPTS_TOTAL: &str = "otpgate_sms_receipts_total";
pub const SMS_RESUBMITTED_TOTAL: &str = "otpgate_sms_resubmitted_total";
pub const SMS_IN_PROGRESS: &str = "otpgate_sms_in_progress";
pub const SMS_EARLY_RECEIPTS_TOTAL: &str = "otpgate_sms_early_receipts_total";
pub const SMS_RECEIPTS_UNPARSEABLE_TOTAL: &str = "otpgate_sms_receipts_unparseable_total";
pub const SMS_RESENDS_EXHAUSTED_TOTAL: &str = "otpgate_sms_resends_exhausted_total";
pub const SMS_RESENDS_CANCELLED_TOTAL: &str = "otpgate_sms_resends_cancelled_total";
pub const SMS_SUPERSEDED_TOTAL: &str = "otpgate_sms_superseded_total";
pub const SMPP_LINK_LOST_TOTAL: &str = "otpgate_smpp_link_lost_total";
pub const SMPP_LENIENT_TOTAL: &str = "otpgate_smpp_lenient_total";
pub const WEBHOOKS_TOTAL: &str = "otpgate_webhooks_total";
pub const SMS_RECEIPT_LATENCY_SECONDS: &str = "otpgate_sms_receipt_latency_seconds";
pub const SMPP_SESSIONS_BOUND: &str = "otpgate_smpp_sessions_bound";
pub const SMPP_BIND_FAILURES_TOTAL: &str = "otpgate_smpp_bind_failures_total";
pub const CARRIER_AVAILABLE: &str = "otpgate_carrier_available";
pub const CARRIER_BREAKER_STATE: &str = "otpgate_carrier_breaker_state";
pub const CARRIER_BREAKER_TRIPS_TOTAL: &str = "otpgate_carrier_breaker_trips_total";
pub const SMS_FAILOVERS_TOTAL: &str = "otpgate_sms_failovers_total";
pub const HTTP_REQUESTS_TOTAL: &str = "otpgate_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "otpgate_http_request_duration_seconds";

pub const SIGNIN_STARTS_TOTAL: &str = "otpgate_signin_starts_total";
pub const SIGNIN_COMPLETES_TOTAL: &str = "otpgate_signin_completes_total";
pub const SIGNIN_REVOKED_TOTAL: &str = "otpgate_signin_revoked_total";
pub const SIGNIN_PENDING: &str = "otpgate_signin_pending";
pub const SIGNIN_LOG_DROPPED_TOTAL: &str = "otpgate_signin_log_dropped_total";
pub const DIRECTORY_READY_NUMBERS: &str = "otpgate_directory_ready_numbers";
pub const DESTINATION_REFUSED_TOTAL: &str = "otpgate_destination_refused_total";
pub const PUMPING_BREAKER_TRIPS_TOTAL: &str = "otpgate_pumping_breaker_trips_total";
pub const PUMPING_BREAKER_LIFTS_TOTAL: &str = "otpgate_pumping_breaker_lifts_total";
pub const PUMPING_BLOCKED_PREFIXES: &str = "otpgate_pumping_blocked_prefixes";
pub const PUMPING_FIRST_SEEN_COUNTRIES_TOTAL: &str = "otpgate_pumping_first_seen_countries_total";

pub const LABEL_RESULT: &str = "result";
pub const LABEL_LIMIT: &str = "limit";
pub const LABEL_CARRIER: &str = "carrier";
pub const LABEL_ROUTE: &str = "route";
pub const LABEL_STATUS: &str = "status";
pub const LABEL_STATE: &str = "state";
pub const LABEL_REASON: &str = "reason";
pub const LABEL_WHAT: &str = "what";
pub const LABEL_FROM: &str = "from";
pub const LABEL_TO: &str = "to";
pub const LABEL_RULE: &str = "rule";
pub const LABEL_MODE: &str = "mode";

/// Latency buckets in seconds, from sub-millisecond loopback to a slow carrier.
const DURATION_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Receipt latency in seconds: a handset can take from seconds to hours.
const RECEIPT_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0];

/// Installs the process-wide recorder once and returns the handle that renders it.
///
/// The `metrics` facade has one global recorder per process, so every server started in the same
/// process (tests start several) shares it.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    &DURATION_BUCKETS,
                )
                .expect("the bucket list is non-empty")
                .set_buckets_for_metric(
                    Matcher::Suffix("_latency_seconds".into()),
                    &RECEIPT_BUCKETS,
                )
                .expect("the bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's); ours then only
            // renders what is recorded through it, which is nothing. Say so rather than panic.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(OTP_ISSUED_TOTAL, "One-time codes issued.");
    describe_counter!(
        DESTINATION_REFUSED_TOTAL,
        "Sends refused by a destination rule (geo, unassigned, line_type, breaker) before any carrier."
    );
    describe_counter!(
        PUMPING_BREAKER_TRIPS_TOTAL,
        "Conversion breaker trips (a prefix whose codes stopped being verified), by mode."
    );
    describe_counter!(
        PUMPING_BREAKER_LIFTS_TOTAL,
        "Conversion breaker blocks lifted by an admin."
    );
    describe_gauge!(
        PUMPING_BLOCKED_PREFIXES,
        "Prefixes with a conversion breaker trip in force (shadow trips included)."
    );
    describe_counter!(
        PUMPING_FIRST_SEEN_COUNTRIES_TOTAL,
        "Countries sent an SMS for the first time since start."
    );
    describe_counter!(
        OTP_LOCKOUTS_TOTAL,
        "Numbers locked for verification after too many wrong codes (consecutive or per day)."
    );
    describe_gauge!(
        OTP_LOCKED_NUMBERS,
        "Numbers whose verification is locked (at the last sweep)."
    );
    describe_counter!(
        SIGNIN_STARTS_TOTAL,
        "SMS sign-in starts, decoys included (the count does not say which)."
    );
    describe_counter!(SIGNIN_COMPLETES_TOTAL, "SMS sign-in completes by result.");
    describe_counter!(
        SIGNIN_REVOKED_TOTAL,
        "Pending sign-in codes killed because the number, user or policy changed."
    );
    describe_gauge!(SIGNIN_PENDING, "Sign-in flows pending, decoys included.");
    describe_counter!(
        SIGNIN_LOG_DROPPED_TOTAL,
        "Sign-in log records dropped because the writer fell behind."
    );
    describe_gauge!(
        DIRECTORY_READY_NUMBERS,
        "Numbers whose mobile method is ready for SMS sign-in, over all tenants."
    );
    describe_counter!(OTP_VERIFICATIONS_TOTAL, "Verification attempts by result.");
    describe_counter!(
        RATE_LIMITED_TOTAL,
        "Requests refused by a rate limit, by limit."
    );
    describe_gauge!(OTP_PENDING, "Challenges waiting to be verified.");
    describe_counter!(
        SMS_SUBMITTED_TOTAL,
        "submit_sm outcomes by carrier and result."
    );
    describe_histogram!(
        SMS_SUBMIT_DURATION_SECONDS,
        Unit::Seconds,
        "Time from writing submit_sm to reading its submit_sm_resp."
    );
    describe_gauge!(
        SMS_QUEUE_DEPTH,
        "Messages queued for a carrier and not yet written."
    );
    describe_counter!(
        SMS_RECEIPTS_TOTAL,
        "Delivery receipts by carrier and reported state (matched or not)."
    );
    describe_histogram!(
        SMS_RECEIPT_LATENCY_SECONDS,
        Unit::Seconds,
        "Time from submit_sm_resp to the delivery receipt."
    );
    describe_counter!(
        SMS_RESUBMITTED_TOTAL,
        "Parts written again after a lost link or a response timeout: possible duplicates."
    );
    describe_gauge!(SMS_IN_PROGRESS, "Messages not yet in a final state.");
    describe_counter!(
        SMS_EARLY_RECEIPTS_TOTAL,
        "Receipts that arrived before their submit_sm_resp: held, matched late, expired unmatched, or dropped (hold full)."
    );
    describe_counter!(
        SMS_RECEIPTS_UNPARSEABLE_TOTAL,
        "deliver_sm/data_sm marked as receipts whose id or state could not be read."
    );
    describe_counter!(
        SMS_RESENDS_EXHAUSTED_TOTAL,
        "Messages given up after max_resends unanswered writes (final state unknown)."
    );
    describe_counter!(
        SMS_RESENDS_CANCELLED_TOTAL,
        "Resends not written because a late submit_sm_resp accepted the part."
    );
    describe_counter!(
        SMS_SUPERSEDED_TOTAL,
        "Queued code SMS not written because a newer code for the number replaced theirs."
    );
    describe_counter!(
        SMPP_LINK_LOST_TOTAL,
        "Bound SMPP links that ended other than by our unbind, by reason."
    );
    describe_counter!(
        SMPP_LENIENT_TOTAL,
        "PDUs from the SMSC that break the spec's field limits and were read leniently."
    );
    describe_counter!(
        WEBHOOKS_TOTAL,
        "callback_url notifications by result (delivered, failed after retries, dropped, abandoned)."
    );
    describe_gauge!(SMPP_SESSIONS_BOUND, "Bound SMPP sessions by carrier.");
    describe_counter!(
        SMPP_BIND_FAILURES_TOTAL,
        "Failed connects or binds by carrier."
    );
    describe_gauge!(
        CARRIER_AVAILABLE,
        "1 while a carrier takes new traffic (a session bound and its breaker not open)."
    );
    describe_gauge!(
        CARRIER_BREAKER_STATE,
        "A carrier's circuit breaker: 0 closed, 1 open, 2 half-open (on trial)."
    );
    describe_counter!(
        CARRIER_BREAKER_TRIPS_TOTAL,
        "Times a carrier's breaker opened after failures in a row."
    );
    describe_counter!(
        SMS_FAILOVERS_TOTAL,
        "Messages sent to another carrier than their first route because it was unavailable, by from and to."
    );
    describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests by route and status.");
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request handling time by route."
    );
}
