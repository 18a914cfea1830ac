//! The carrier link against a hostile SMSC (tests/common/hostile.rs): a peer that stalls, lies,
//! races, floods or withholds, and carriers' sloppy receipts. One test (or a few) per defect of
//! issue 9; each asserts what crossed the wire and what the daemon reports.

mod common;

use std::time::{Duration, Instant};

use common::hostile::{self, Hostile, HostileOptions, Peer, id, message_state, tag};
use common::{Daemon, Options, SMS_KEY};
use reqwest::StatusCode;
use rusmpp::CommandStatus;
use serde_json::{Value, json};

/// How long something the daemon does at once (answer a PDU, record a state) may take.
const SOON: Duration = Duration::from_secs(3);

/// The daemon on `smsc` with receipts asked for and `extra` carrier lines; not yet bound.
fn options(smsc: &Hostile, extra: &str) -> Options {
    let mut options = Options::new(smsc.addr);
    options.carrier_extra = format!("registered_delivery = 1\n{extra}");
    options
}

/// Starts the daemon, accepts its connection, answers the bind and waits until it is bound.
async fn start(smsc: &Hostile, options: Options) -> (Daemon, Peer) {
    let daemon = Daemon::start(options).await;
    let mut peer = smsc.accept().await;
    peer.answer_bind().await;
    daemon.wait_bound(true).await;
    (daemon, peer)
}

/// A fresh hostile SMSC and the daemon bound to it with `extra` carrier lines.
async fn bound(extra: &str) -> (Hostile, Daemon, Peer) {
    let smsc = Hostile::start().await;
    let (daemon, peer) = start(&smsc, options(&smsc, extra)).await;
    (smsc, daemon, peer)
}

/// Sends a generic SMS to `to`; returns its id.
async fn send_sms(daemon: &Daemon, to: &str, text: &str) -> String {
    let (status, body) = daemon
        .post_with(SMS_KEY, "/v1/sms", json!({ "to": to, "text": text }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// Sends a code to `phone`; returns its id.
async fn send_code(daemon: &Daemon, phone: &str) -> String {
    let (status, body) = daemon.send(phone).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// The delivery record of message `id` now.
async fn delivery(daemon: &Daemon, id: &str) -> Value {
    let route = if id.starts_with("sms-") { "sms" } else { "otp" };
    daemon.get_json(&format!("/v1/{route}/{id}")).await.1["delivery"].clone()
}

/// Waits (bounded by `within`) until message `id` is in `state`; returns its record.
async fn wait_state(daemon: &Daemon, id: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let record = delivery(daemon, id).await;
        if record["state"] == state {
            return record;
        }
        if Instant::now() >= deadline {
            panic!("message {id} never became {state} within {within:?}: {record}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn metrics(daemon: &Daemon) -> String {
    daemon.get_text("/metrics").await.1
}

/// The sum of every sample of `name` whose labels include all of `labels`.
fn total(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let wanted = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (metric == name && wanted).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Waits (bounded) until `total(name, labels)` reaches `at_least`; returns the last value.
async fn wait_metric(daemon: &Daemon, name: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
    let deadline = Instant::now() + SOON;
    loop {
        let value = total(&metrics(daemon).await, name, labels);
        if value >= at_least {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("{name}{labels:?} is {value}, never {at_least} within {SOON:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messages in progress as /readyz reports them (waiting, bounded, for a bound session).
async fn in_progress(daemon: &Daemon) -> u64 {
    let deadline = Instant::now() + common::PATIENCE;
    loop {
        let (status, body) = daemon.get_json("/readyz").await;
        if status == StatusCode::OK {
            return body["messages_in_progress"].as_u64().expect("a count");
        }
        assert!(Instant::now() < deadline, "/readyz never 200: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes the next submit_sm, accepts it as `message_id` and returns it.
async fn submit_and_accept(peer: &mut Peer, message_id: &str) -> hostile::Submit {
    let submit = peer.next_submit().await;
    peer.accept(submit.seq, message_id);
    submit
}

/// Delivers (with a receipt) a fresh SMS to `to` under `message_id`, and waits until it is
/// delivered: every PDU the peer sent before has then been processed (receipts are applied in
/// the order they arrive on one link).
async fn barrier(daemon: &Daemon, peer: &mut Peer, to: &str, message_id: &str) {
    let id = send_sms(daemon, to, "barrier").await;
    let submit = submit_and_accept(peer, message_id).await;
    assert_eq!(submit.destination, to.trim_start_matches('+'));
    peer.deliver_receipt(message_id, "DELIVRD");
    wait_state(daemon, &id, "delivered", SOON).await;
}

// ---- the harness itself ------------------------------------------------------------------

#[tokio::test]
async fn harness_a_plain_bind_submit_and_receipt_deliver_a_code() {
    let (_smsc, daemon, mut peer) = bound("").await;
    let id = send_code(&daemon, "+31611000001").await;
    let submit = peer.next_submit().await;
    assert_eq!(submit.destination, "31611000001");
    assert_eq!(submit.registered_delivery, 1);
    let code = submit.code(6).expect("the SMS carries a six-digit code");
    peer.accept(submit.seq, "abc1");
    wait_state(&daemon, &id, "submitted", SOON).await;
    let seq = peer.deliver_receipt("abc1", "DELIVRD");
    let resp = peer.response_to(seq).await;
    assert_eq!(resp.command_id, id::DELIVER_SM_RESP);
    assert_eq!(resp.command_status, 0);
    let record = wait_state(&daemon, &id, "delivered", SOON).await;
    assert_eq!(record["message_id"], "abc1");
    assert_eq!(
        daemon.verify("+31611000001", &code).await.1["status"],
        "approved"
    );
    // The peer answered enquire_link without the script, and saw each frame once.
    let enquire = peer.enquire_link();
    assert_eq!(
        peer.response_to(enquire).await.command_id,
        id::ENQUIRE_LINK_RESP
    );
    assert_eq!(
        peer.log()
            .iter()
            .filter(|f| f.command_id == id::SUBMIT_SM)
            .count(),
        1
    );
    daemon.stop().await;
}

// ---- 1: a peer that stops reading ----------------------------------------------------------

#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped_within_the_write_timeout_and_the_code_goes_on_a_new_link()
 {
    // A small receive buffer and MSS: the daemon's deliver_sm_resp fill the socket buffers
    // after some 300 kB (measured: ~17k responses), so the flood below stalls its writes.
    let smsc = Hostile::start_with(HostileOptions {
        recv_buffer: Some(4096),
        mss: Some(536),
        ..HostileOptions::default()
    })
    .await;
    let (daemon, peer) = start(&smsc, options(&smsc, "write_timeout_ms = 500")).await;
    peer.stop_reading();
    peer.flood_deliver_sm(50_000);
    let stalled_at = Instant::now();
    let id = send_code(&daemon, "+31611000002").await;
    let Some(mut fresh) = smsc.accept_within(Duration::from_secs(4)).await else {
        panic!("the daemon never gave up on the link that stopped reading");
    };
    let elapsed = stalled_at.elapsed();
    assert!(
        elapsed < Duration::from_millis(500 + 2_500),
        "the stalled link was dropped after {elapsed:?}"
    );
    // No session is bound until this bind is answered.
    assert_eq!(
        daemon.get_text("/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(delivery(&daemon, &id).await["state"], "queued");
    fresh.answer_bind().await;
    daemon.wait_bound(true).await;
    let submit = fresh.next_submit().await;
    assert_eq!(submit.destination, "31611000002");
    fresh.accept(submit.seq, "after-stall");
    fresh.deliver_receipt("after-stall", "DELIVRD");
    wait_state(&daemon, &id, "delivered", SOON).await;
    let carrier = daemon.carrier_name.clone();
    wait_metric(
        &daemon,
        "otpgate_smpp_link_lost_total",
        &[("carrier", &carrier), ("reason", "write_stalled")],
        1.0,
    )
    .await;
    drop(peer);
    daemon.stop().await;
}

/// The other side of the stall: an SMSC that reads but sends a burst faster than one batch of
/// answers is written is paced by back-pressure (the session reads as fast as the writer
/// writes), not taken for a stalled peer.
#[tokio::test]
async fn a_burst_of_deliver_sm_from_an_smsc_that_reads_is_answered_on_the_same_link() {
    let (smsc, daemon, peer) = bound("").await;
    const BURST: usize = 20_000;
    peer.flood_deliver_sm(BURST);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = smsc
            .received()
            .iter()
            .filter(|frame| frame.command_id == 0x8000_0005)
            .count();
        if answered >= BURST {
            break;
        }
        assert!(
            Instant::now() < deadline && smsc.connections() == 1,
            "{answered} of {BURST} answered, {} connections",
            smsc.connections()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(smsc.connections(), 1, "the link was never dropped");
    drop(peer);
    daemon.stop().await;
}

// ---- 2: receipts before their submit_sm_resp -------------------------------------------------

#[tokio::test]
async fn a_receipt_before_its_submit_sm_resp_is_held_and_delivers_the_message() {
    let (_smsc, daemon, mut peer) = bound("").await;
    let before = metrics(&daemon).await;
    let held = total(
        &before,
        "otpgate_sms_early_receipts_total",
        &[("result", "held")],
    );
    let matched = total(
        &before,
        "otpgate_sms_early_receipts_total",
        &[("result", "matched")],
    );
    let id = send_code(&daemon, "+31611000003").await;
    let submit = peer.next_submit().await;
    // The SMSC checked the number first: the receipt overtakes the submit_sm_resp.
    let receipt = peer.deliver_receipt("early-1", "DELIVRD");
    assert_eq!(
        peer.response_to(receipt).await.command_id,
        id::DELIVER_SM_RESP
    );
    peer.accept(submit.seq, "early-1");
    let record = wait_state(&daemon, &id, "delivered", SOON).await;
    assert_eq!(record["message_id"], "early-1");
    wait_metric(
        &daemon,
        "otpgate_sms_early_receipts_total",
        &[("result", "held")],
        held + 1.0,
    )
    .await;
    wait_metric(
        &daemon,
        "otpgate_sms_early_receipts_total",
        &[("result", "matched")],
        matched + 1.0,
    )
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_receipt_for_an_unknown_id_is_held_then_expires_and_matches_nothing_later() {
    let smsc = Hostile::start().await;
    let mut options = options(&smsc, "");
    options.delivery_extra = "early_receipt_hold_ms = 200".into();
    // Held receipts may expire on a sweep: make it every second.
    options.otp_extra = "sweep_interval_seconds = 1".into();
    let (daemon, mut peer) = start(&smsc, options).await;
    let expired = total(
        &metrics(&daemon).await,
        "otpgate_sms_early_receipts_total",
        &[("result", "expired")],
    );
    peer.deliver_receipt("ghost-1", "UNDELIV");
    wait_metric(
        &daemon,
        "otpgate_sms_early_receipts_total",
        &[("result", "expired")],
        expired + 1.0,
    )
    .await;
    // Past its hold the receipt is gone: a message that gets its id afterwards stays submitted.
    let id = send_sms(&daemon, "+31611000004", "late id").await;
    submit_and_accept(&mut peer, "ghost-1").await;
    wait_state(&daemon, &id, "submitted", SOON).await;
    barrier(&daemon, &mut peer, "+31611000005", "barrier-1").await;
    assert_eq!(delivery(&daemon, &id).await["state"], "submitted");
    daemon.stop().await;
}

#[tokio::test]
async fn early_receipts_beyond_the_limit_are_dropped_and_counted() {
    let smsc = Hostile::start().await;
    let mut options = options(&smsc, "");
    options.delivery_extra = "early_receipts_max = 2".into();
    let (daemon, mut peer) = start(&smsc, options).await;
    let dropped = total(
        &metrics(&daemon).await,
        "otpgate_sms_early_receipts_total",
        &[("result", "dropped")],
    );
    for n in 0..4 {
        let seq = peer.deliver_receipt(&format!("unknown-{n}"), "DELIVRD");
        let resp = peer.response_to(seq).await;
        assert_eq!(resp.command_id, id::DELIVER_SM_RESP);
    }
    // Two held at most: the other two were dropped, and acknowledged all the same.
    wait_metric(
        &daemon,
        "otpgate_sms_early_receipts_total",
        &[("result", "dropped")],
        dropped + 2.0,
    )
    .await;
    daemon.stop().await;
}

// ---- 3: unanswered submits -----------------------------------------------------------------

/// The daemon on an SMSC that answers every bind by itself; waits until it is bound.
async fn start_auto(smsc: &Hostile, options: Options) -> (Daemon, Peer) {
    let daemon = Daemon::start(options).await;
    let peer = smsc.accept().await;
    daemon.wait_bound(true).await;
    (daemon, peer)
}

fn auto_bind() -> HostileOptions {
    HostileOptions {
        auto_bind: true,
        ..HostileOptions::default()
    }
}

/// Waits (bounded) until message `id` is final; returns its record.
async fn wait_final(daemon: &Daemon, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let record = delivery(daemon, id).await;
        if record["done_at"].is_string() {
            return record;
        }
        if Instant::now() >= deadline {
            panic!("message {id} not final within {within:?}: {record}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_black_hole_smsc_gets_each_message_at_most_three_times_each_on_a_fresh_link() {
    // It answers binds and enquire_link (sent every 100 ms) but never a submit_sm: inbound
    // frames prove nothing about the response path.
    let smsc = Hostile::start_with(auto_bind()).await;
    let (daemon, _first) = start_auto(
        &smsc,
        options(
            &smsc,
            "response_timeout_ms = 300\nenquire_link_interval_ms = 100",
        ),
    )
    .await;
    let id = send_code(&daemon, "+31611000010").await;
    let record = wait_final(&daemon, &id, Duration::from_secs(6)).await;
    assert_eq!(record["state"], "unknown", "{record}");
    assert!(
        record["error"]
            .as_str()
            .is_some_and(|e| e.contains("no submit_sm_resp")),
        "{record}"
    );
    let submits = smsc.submits_to("31611000010");
    assert!(
        (1..=3).contains(&submits.len()),
        "written {} times (1 + max_resends = 3 at most)",
        submits.len()
    );
    let mut links: Vec<usize> = submits.iter().map(|s| s.connection).collect();
    links.dedup();
    assert_eq!(
        links.len(),
        submits.len(),
        "every resend went on a fresh link: {links:?}"
    );
    let carrier = daemon.carrier_name.clone();
    wait_metric(
        &daemon,
        "otpgate_smpp_link_lost_total",
        &[("carrier", &carrier), ("reason", "response_timeouts")],
        1.0,
    )
    .await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_late_submit_sm_resp_records_the_id_and_cancels_the_resend() {
    let (smsc, daemon, mut peer) =
        bound("response_timeout_ms = 500\nresponse_timeouts_before_reconnect = 2").await;
    let id = send_code(&daemon, "+31611000011").await;
    let submit = peer.next_submit().await;
    // Answer just after the daemon gave up (its timeout is counted; 750 ms at the latest), well
    // before the given-up part would make it drop this link for a fresh one. One timeout is
    // below the reconnect threshold, and the part may be resent only on a fresh link, so
    // nothing is written here meanwhile.
    let carrier = daemon.carrier_name.clone();
    let given_up = Instant::now() + Duration::from_millis(750);
    while Instant::now() < given_up
        && total(
            &metrics(&daemon).await,
            otpgate::metrics::SMS_SUBMITTED_TOTAL,
            &[("carrier", &carrier), ("result", "timeout")],
        ) < 1.0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    peer.accept(submit.seq, "late-1");
    peer.deliver_receipt("late-1", "DELIVRD");
    let record = wait_state(&daemon, &id, "delivered", SOON).await;
    assert_eq!(record["message_id"], "late-1");
    let enquire = peer.enquire_link();
    peer.response_to(enquire).await;
    assert_eq!(
        smsc.submits_to("31611000011").len(),
        1,
        "the SMSC saw the message once"
    );
    assert_eq!(smsc.connections(), 1, "one bind throughout");
    // The cancelled resend leaves nothing to send: the drain ends at once, not at the
    // shutdown deadline (5 s here) with "messages left".
    let stopping = Instant::now();
    daemon.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "the drain waited {:?} for a resend that was cancelled",
        stopping.elapsed()
    );
}

// ---- 4: id matching ------------------------------------------------------------------------

#[tokio::test]
async fn a_duplicate_receipt_never_lands_on_the_message_whose_id_is_its_other_base() {
    let (_smsc, daemon, mut peer) = bound("").await;
    let a = send_sms(&daemon, "+31611000020", "message a").await;
    submit_and_accept(&mut peer, "10").await;
    let b = send_sms(&daemon, "+31611000021", "message b").await;
    submit_and_accept(&mut peer, "16").await;
    wait_state(&daemon, &b, "submitted", SOON).await;
    peer.deliver_receipt("10", "DELIVRD");
    wait_state(&daemon, &a, "delivered", SOON).await;
    // A duplicate for A, already final: "10" read as hex is 16, B's id.
    peer.deliver_receipt("10", "UNDELIV");
    peer.deliver_receipt("16", "DELIVRD");
    wait_state(&daemon, &b, "delivered", SOON).await;
    assert_eq!(delivery(&daemon, &a).await["state"], "delivered");
    daemon.stop().await;
}

#[tokio::test]
async fn receipt_ids_match_across_case_and_leading_zeros_but_not_across_bases_by_default() {
    let (_smsc, daemon, mut peer) = bound("").await;
    let a = send_sms(&daemon, "+31611000022", "message a").await;
    submit_and_accept(&mut peer, "00FF").await;
    peer.deliver_receipt("ff", "DELIVRD");
    wait_state(&daemon, &a, "delivered", SOON).await;
    let b = send_sms(&daemon, "+31611000023", "message b").await;
    submit_and_accept(&mut peer, "255").await;
    wait_state(&daemon, &b, "submitted", SOON).await;
    // 0xFF = 255: without a configured conversion this is no receipt for B.
    peer.deliver_receipt("FF", "UNDELIV");
    barrier(&daemon, &mut peer, "+31611000024", "barrier-4").await;
    assert_eq!(delivery(&daemon, &b).await["state"], "submitted");
    daemon.stop().await;
}

#[tokio::test]
async fn a_configured_base_conversion_matches_hex_submit_ids_to_decimal_receipts() {
    let (_smsc, daemon, mut peer) =
        bound(r#"receipt_id_format = "hex_submit_decimal_receipt""#).await;
    let a = send_sms(&daemon, "+31611000025", "message a").await;
    submit_and_accept(&mut peer, "1A").await;
    peer.deliver_receipt("26", "DELIVRD");
    wait_state(&daemon, &a, "delivered", SOON).await;
    let b = send_sms(&daemon, "+31611000026", "message b").await;
    submit_and_accept(&mut peer, "20").await;
    wait_state(&daemon, &b, "submitted", SOON).await;
    // Decimal 20 is 0x14, not B's 0x20 (= 32).
    peer.deliver_receipt("20", "UNDELIV");
    peer.deliver_receipt("32", "DELIVRD");
    wait_state(&daemon, &b, "delivered", SOON).await;
    daemon.stop().await;
}

#[tokio::test]
async fn an_empty_message_id_never_matches_a_receipt() {
    let (_smsc, daemon, mut peer) = bound("").await;
    let a = send_sms(&daemon, "+31611000027", "no id").await;
    submit_and_accept(&mut peer, "").await;
    wait_state(&daemon, &a, "submitted", SOON).await;
    peer.deliver_receipt("0", "UNDELIV");
    peer.deliver_receipt("000", "UNDELIV");
    let mut tlvs = hostile::tlv(tag::RECEIPTED_MESSAGE_ID, &hostile::c_string(""));
    tlvs.extend(hostile::tlv(
        tag::MESSAGE_STATE,
        &[message_state::UNDELIVERABLE],
    ));
    peer.deliver_sm(0x04, 0, b"id: stat:UNDELIV err:001", &tlvs);
    barrier(&daemon, &mut peer, "+31611000028", "barrier-5").await;
    assert_eq!(delivery(&daemon, &a).await["state"], "submitted");
    daemon.stop().await;
}

// ---- 5: every message reaches a final state (the property test: carrier_hostile_faults.rs) --

#[tokio::test]
async fn a_code_that_expires_while_its_submit_is_unanswered_ends_expired() {
    let smsc = Hostile::start_with(auto_bind()).await;
    let mut options = options(&smsc, "response_timeout_ms = 1500");
    // Sweeps (of codes, records, held receipts) every second.
    options.otp_extra = "ttl_seconds = 1\nsweep_interval_seconds = 1".into();
    let (daemon, mut peer) = start_auto(&smsc, options).await;
    let id = send_code(&daemon, "+31611000030").await;
    peer.next_submit().await;
    // The code's own expiry follows the injected clock; the carrier's deadline may too.
    daemon.clock.advance(Duration::from_secs(2));
    let record = wait_state(&daemon, &id, "expired", Duration::from_secs(5)).await;
    assert!(record["done_at"].is_string(), "{record}");
    assert_eq!(in_progress(&daemon).await, 0);
    assert_eq!(
        smsc.submits_to("31611000030").len(),
        1,
        "an expired code is not resent"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_code_that_expires_while_no_session_is_bound_ends_expired() {
    let smsc = Hostile::start().await;
    let mut options = options(&smsc, "");
    // Sweeps (of codes, records, held receipts) every second.
    options.otp_extra = "sweep_interval_seconds = 1".into();
    let daemon = Daemon::start(options).await;
    // Connected, never bound: the bind waits for an answer that does not come.
    let _unanswered = smsc.accept().await;
    let id = send_code(&daemon, "+31611000031").await;
    // The message's deadline is on the daemon's clock: moving it past the code's 300 s ends
    // the message within a rescue tick, with no waiting for real time.
    daemon.clock.advance(Duration::from_secs(301));
    wait_state(&daemon, &id, "expired", Duration::from_secs(4)).await;
    daemon.stop().await;
}

// ---- 6: order after throttling; superseded codes -------------------------------------------

/// Queues SMS to `numbers` in that order while the bind is unanswered, then binds: the daemon
/// writes them (window 5) in queue order. Returns the daemon, the peer and the message ids.
async fn queued_then_bound(numbers: &[&str]) -> (Hostile, Daemon, Peer, Vec<String>) {
    let smsc = Hostile::start().await;
    let daemon = Daemon::start(options(&smsc, "window = 5\nthrottle_pause_ms = 100")).await;
    let mut peer = smsc.accept().await;
    let mut ids = Vec::new();
    for number in numbers {
        ids.push(send_sms(&daemon, number, "in order").await);
    }
    peer.answer_bind().await;
    (smsc, daemon, peer, ids)
}

async fn destinations(peer: &mut Peer, count: usize) -> Vec<hostile::Submit> {
    let mut submits = Vec::new();
    for _ in 0..count {
        submits.push(peer.next_submit().await);
    }
    submits
}

fn digits(numbers: &[&str]) -> Vec<String> {
    numbers
        .iter()
        .map(|n| n.trim_start_matches('+').to_owned())
        .collect()
}

#[tokio::test]
async fn throttled_parts_are_resent_in_their_original_order() {
    let numbers = [
        "+31611000040",
        "+31611000041",
        "+31611000042",
        "+31611000043",
        "+31611000044",
    ];
    let (_smsc, daemon, mut peer, ids) = queued_then_bound(&numbers).await;
    let first = destinations(&mut peer, 5).await;
    let order: Vec<String> = first.iter().map(|s| s.destination.clone()).collect();
    assert_eq!(order, digits(&numbers), "written in queue order");
    for submit in &first {
        peer.refuse(submit.seq, CommandStatus::EsmeRthrottled);
    }
    let again = destinations(&mut peer, 5).await;
    let order: Vec<String> = again.iter().map(|s| s.destination.clone()).collect();
    assert_eq!(order, digits(&numbers), "resent in the same order");
    for (n, submit) in again.iter().enumerate() {
        peer.accept(submit.seq, &format!("t{n}"));
        peer.deliver_receipt(&format!("t{n}"), "DELIVRD");
    }
    for id in &ids {
        wait_state(&daemon, id, "delivered", SOON).await;
    }
    daemon.stop().await;
}

#[tokio::test]
async fn parts_refused_throttled_or_queue_full_keep_their_order() {
    let numbers = [
        "+31611000045",
        "+31611000046",
        "+31611000047",
        "+31611000048",
        "+31611000049",
    ];
    let (_smsc, daemon, mut peer, _ids) = queued_then_bound(&numbers).await;
    let first = destinations(&mut peer, 5).await;
    peer.refuse(first[0].seq, CommandStatus::EsmeRthrottled);
    peer.accept(first[1].seq, "q1");
    peer.refuse(first[2].seq, CommandStatus::EsmeRmsgqful);
    peer.refuse(first[3].seq, CommandStatus::EsmeRthrottled);
    peer.accept(first[4].seq, "q4");
    let again = destinations(&mut peer, 3).await;
    let order: Vec<String> = again.iter().map(|s| s.destination.clone()).collect();
    assert_eq!(order, digits(&[numbers[0], numbers[2], numbers[3]]));
    for submit in &again {
        peer.accept(submit.seq, &format!("q-{}", submit.seq));
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_queued_code_replaced_by_a_newer_send_is_superseded_and_never_written() {
    let (smsc, daemon, mut peer) = bound("window = 1").await;
    // The window is full while both codes for the same number are sent.
    send_sms(&daemon, "+31611000050", "holds the window").await;
    let holding = peer.next_submit().await;
    let old = send_code(&daemon, "+31611000051").await;
    let new = send_code(&daemon, "+31611000051").await;
    peer.accept(holding.seq, "hold-1");
    let submit = peer.next_submit().await;
    assert_eq!(submit.destination, "31611000051");
    let code = submit.code(6).expect("a code");
    assert_eq!(
        daemon.verify("+31611000051", &code).await.1["status"],
        "approved",
        "what went out first is the newer code"
    );
    peer.accept(submit.seq, "new-1");
    peer.deliver_receipt("new-1", "DELIVRD");
    wait_state(&daemon, &new, "delivered", SOON).await;
    let record = wait_state(&daemon, &old, "superseded", SOON).await;
    assert!(record["done_at"].is_string(), "{record}");
    barrier(&daemon, &mut peer, "+31611000052", "barrier-6").await;
    assert_eq!(
        smsc.submits_to("31611000051").len(),
        1,
        "the stale code never went out"
    );
    daemon.stop().await;
}

// ---- 7: validity_period ---------------------------------------------------------------------

#[tokio::test]
async fn an_otp_submit_carries_the_codes_remaining_lifetime_as_validity_period() {
    let (_smsc, daemon, mut peer) = bound("").await;
    send_code(&daemon, "+31611000060").await;
    let submit = peer.next_submit().await;
    let seconds = hostile::relative_seconds(&submit.validity_period);
    // otp.ttl_seconds defaults to 300; a few seconds pass between issue and write.
    assert!(
        seconds.is_some_and(|s| (290..=300).contains(&s)),
        "validity_period {:?}",
        submit.validity_period
    );
    peer.accept(submit.seq, "v-1");
    daemon.stop().await;
}

#[tokio::test]
async fn a_generic_sms_carries_sms_validity_seconds_as_validity_period() {
    let smsc = Hostile::start().await;
    let mut options = options(&smsc, "");
    options.delivery_extra = "sms_validity_seconds = 900".into();
    let (daemon, mut peer) = start(&smsc, options).await;
    send_sms(&daemon, "+31611000061", "valid for 15 minutes").await;
    let submit = peer.next_submit().await;
    let seconds = hostile::relative_seconds(&submit.validity_period);
    assert!(
        seconds.is_some_and(|s| (890..=900).contains(&s)),
        "validity_period {:?}",
        submit.validity_period
    );
    peer.accept(submit.seq, "v-1");
    daemon.stop().await;
}

// ---- 8: protocol ----------------------------------------------------------------------------

#[tokio::test]
async fn alert_notification_gets_no_response() {
    let (_smsc, daemon, mut peer) = bound("").await;
    peer.alert_notification();
    let enquire = peer.enquire_link();
    let next = peer.next().await;
    assert_eq!(
        (next.command_id, next.sequence_number),
        (id::ENQUIRE_LINK_RESP, enquire),
        "the first thing after the alert_notification is the enquire_link_resp"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_data_sm_receipt_gets_data_sm_resp_and_delivers_the_message() {
    let (_smsc, daemon, mut peer) = bound("").await;
    let id = send_sms(&daemon, "+31611000070", "receipt in data_sm").await;
    submit_and_accept(&mut peer, "ds-1").await;
    wait_state(&daemon, &id, "submitted", SOON).await;
    let seq = peer.data_sm_receipt("ds-1", message_state::DELIVERED);
    let resp = peer.response_to(seq).await;
    assert_eq!(
        (resp.command_id, resp.command_status),
        (id::DATA_SM_RESP, 0)
    );
    wait_state(&daemon, &id, "delivered", SOON).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_submit_sm_resp_whose_body_does_not_decode_is_correlated_by_its_header() {
    let (_smsc, daemon, mut peer) = bound("window = 1\nresponse_timeout_ms = 300").await;
    let id = send_sms(&daemon, "+31611000071", "odd response").await;
    let submit = peer.next_submit().await;
    // OK, but the message_id has no NUL before the frame ends.
    peer.respond_raw(id::SUBMIT_SM_RESP, 0, submit.seq, b"id-without-nul");
    let enquire = peer.enquire_link();
    let next = peer.next().await;
    assert_eq!(
        (next.command_id, next.sequence_number),
        (id::ENQUIRE_LINK_RESP, enquire),
        "no generic_nack for a response"
    );
    wait_state(&daemon, &id, "submitted", SOON).await;
    // The response freed the window's one slot: the next message goes at once.
    send_sms(&daemon, "+31611000072", "next").await;
    let next = peer.next_submit().await;
    assert_eq!(next.destination, "31611000072");
    peer.accept(next.seq, "next-1");
    // And the first one is never written again (its response came, well past 300 ms).
    let again = peer.next_submit_within(Duration::from_millis(900)).await;
    assert!(again.is_none(), "resent: {again:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn an_error_submit_sm_resp_with_a_body_that_does_not_decode_fails_by_its_header_status() {
    let (smsc, daemon, mut peer) = bound("response_timeout_ms = 300").await;
    let id = send_sms(&daemon, "+31611000073", "refused oddly").await;
    let submit = peer.next_submit().await;
    peer.respond_raw(
        id::SUBMIT_SM_RESP,
        u32::from(CommandStatus::EsmeRinvdstadr),
        submit.seq,
        &[0xff, 0xfe, 0xfd],
    );
    let record = wait_state(&daemon, &id, "failed", SOON).await;
    assert_eq!(record["error"], "ESME_RINVDSTADR");
    barrier(&daemon, &mut peer, "+31611000074", "barrier-8").await;
    assert_eq!(smsc.submits_to("31611000073").len(), 1, "not resent");
    daemon.stop().await;
}

#[tokio::test]
async fn a_bind_resp_with_an_over_long_system_id_binds() {
    let smsc = Hostile::start().await;
    let daemon = Daemon::start(options(&smsc, "")).await;
    let mut peer = smsc.accept().await;
    peer.answer_bind_with(CommandStatus::EsmeRok, &"L".repeat(40))
        .await;
    tokio::time::timeout(SOON, daemon.wait_bound(true))
        .await
        .expect("the session binds despite the 40-character system_id");
    send_sms(&daemon, "+31611000075", "over this link").await;
    let submit = peer.next_submit().await;
    assert_eq!(submit.destination, "31611000075");
    assert_eq!(smsc.connections(), 1);
    peer.accept(submit.seq, "long-1");
    daemon.stop().await;
}

#[tokio::test]
async fn a_deliver_sm_that_does_not_decode_gets_an_error_deliver_sm_resp() {
    let (_smsc, daemon, mut peer) = bound("").await;
    // service_type without its NUL.
    let seq = peer.request(id::DELIVER_SM, b"abcd");
    let resp = peer.response_to(seq).await;
    assert_eq!(
        resp.command_id,
        id::DELIVER_SM_RESP,
        "not generic_nack: an SMSC redelivers a nacked deliver_sm for ever"
    );
    assert_ne!(resp.command_status, 0);
    daemon.stop().await;
}

#[tokio::test]
async fn a_response_pdu_is_never_answered_with_generic_nack() {
    let (_smsc, daemon, mut peer) = bound("").await;
    // A query_sm_resp and a data_sm_resp for nothing we sent, bodies that do not decode.
    peer.respond_raw(0x8000_0003, 0, 4242, &[0xff]);
    peer.respond_raw(id::DATA_SM_RESP, 0, 4243, &[0x80, 0x81]);
    let enquire = peer.enquire_link();
    let next = peer.next().await;
    assert_eq!(
        (next.command_id, next.sequence_number),
        (id::ENQUIRE_LINK_RESP, enquire),
        "responses are not answered"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_permanent_refusal_is_named_as_the_spec_spells_it() {
    let (_smsc, daemon, mut peer) = bound("").await;
    let id = send_sms(&daemon, "+31611000076", "refused by the application").await;
    let submit = peer.next_submit().await;
    peer.refuse(submit.seq, CommandStatus::EsmeRxPAppn);
    let record = wait_state(&daemon, &id, "failed", SOON).await;
    assert_eq!(record["error"], "ESME_RX_P_APPN");
    daemon.stop().await;
}

// ---- 9: receipts as carriers write them -----------------------------------------------------

/// A message accepted as `rx9`, then the receipt `send` writes; it must end in `expected`.
async fn receipt_gives(send: impl FnOnce(&Peer, &str) -> u32, expected: &str) {
    let (_smsc, daemon, mut peer) = bound("").await;
    let id = send_sms(&daemon, "+31611000090", "receipt spelling").await;
    submit_and_accept(&mut peer, "rx9").await;
    wait_state(&daemon, &id, "submitted", SOON).await;
    let seq = send(&peer, "rx9");
    let resp = peer.response_to(seq).await;
    assert_eq!(
        (resp.command_id, resp.command_status),
        (id::DELIVER_SM_RESP, 0)
    );
    wait_state(&daemon, &id, expected, SOON).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_receipt_saying_stat_failed_is_undeliverable() {
    receipt_gives(
        |peer, id| peer.deliver_receipt_text(&hostile::receipt_text(id, "FAILED")),
        "undeliverable",
    )
    .await;
}

#[tokio::test]
async fn a_receipt_with_tab_separators_is_read() {
    receipt_gives(
        |peer, id| {
            peer.deliver_receipt_text(&format!(
                "id:{id}\tsub:001\tdlvrd:001\tsubmit date:2501011200\tdone date:2501011201\tstat:DELIVRD\terr:000\ttext:"
            ))
        },
        "delivered",
    )
    .await;
}

#[tokio::test]
async fn a_receipt_with_a_quoted_id_is_read() {
    receipt_gives(
        |peer, id| {
            peer.deliver_receipt_text(&format!(
                "id:\"{id}\" sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:"
            ))
        },
        "delivered",
    )
    .await;
}

#[tokio::test]
async fn a_receipt_with_a_space_after_each_colon_is_read() {
    receipt_gives(
        |peer, id| {
            peer.deliver_receipt_text(&format!(
                "id: {id} sub: 001 dlvrd: 001 submit date: 2501011200 done date: 2501011201 stat: DELIVRD err: 000 text:"
            ))
        },
        "delivered",
    )
    .await;
}

#[tokio::test]
async fn a_receipt_in_message_payload_is_read() {
    receipt_gives(
        |peer, id| {
            let text = hostile::receipt_text(id, "DELIVRD");
            peer.deliver_sm(
                0x04,
                0,
                &[],
                &hostile::tlv(tag::MESSAGE_PAYLOAD, text.as_bytes()),
            )
        },
        "delivered",
    )
    .await;
}

#[tokio::test]
async fn a_receipt_in_ucs2_is_read() {
    receipt_gives(
        |peer, id| {
            let text = hostile::receipt_text(id, "UNDELIV");
            peer.deliver_sm(0x04, 8, &hostile::ucs2(&text), &[])
        },
        "undeliverable",
    )
    .await;
}

#[tokio::test]
async fn an_unparseable_receipt_is_acknowledged_and_counted() {
    let (_smsc, daemon, mut peer) = bound("").await;
    let seq = peer.deliver_receipt_text("this is no receipt");
    let resp = peer.response_to(seq).await;
    assert_eq!(resp.command_id, id::DELIVER_SM_RESP);
    let carrier = daemon.carrier_name.clone();
    wait_metric(
        &daemon,
        "otpgate_sms_receipts_unparseable_total",
        &[("carrier", &carrier)],
        1.0,
    )
    .await;
    daemon.stop().await;
}

// ---- from the review of the redesign -------------------------------------------------------

/// The SMSC's unbind gets its unbind_resp before the daemon closes the link (the reply was
/// queued and the writer aborted with the link).
#[tokio::test]
async fn an_unbind_from_the_smsc_is_answered_before_the_link_closes() {
    let (_smsc, daemon, mut peer) = bound("").await;
    let seq = peer.request(id::UNBIND, &[]);
    let response = peer.response_to(seq).await;
    assert_eq!(response.command_id, id::UNBIND_RESP);
    assert_eq!(response.command_status, 0);
    daemon.stop().await;
}

/// Only unanswered writes count toward `max_resends`: a part throttled twice and then lost
/// with its link once is resent, not given up.
#[tokio::test]
async fn throttled_writes_do_not_count_toward_the_resend_cap() {
    let smsc = Hostile::start().await;
    let (daemon, mut peer) = start(
        &smsc,
        options(&smsc, "max_resends = 1\nthrottle_pause_ms = 50"),
    )
    .await;
    let id = send_code(&daemon, "+31611000077").await;
    for _ in 0..2 {
        let submit = peer.next_submit().await;
        peer.refuse(submit.seq, CommandStatus::EsmeRthrottled);
    }
    // The third write goes unanswered: the link drops under it.
    let third = peer.next_submit().await;
    assert_eq!(third.destination, "31611000077");
    peer.close();
    let mut fresh = smsc.accept().await;
    fresh.answer_bind().await;
    let resent = fresh.next_submit().await;
    assert_eq!(resent.destination, "31611000077");
    fresh.accept(resent.seq, "after-throttles");
    fresh.deliver_receipt("after-throttles", "DELIVRD");
    wait_state(&daemon, &id, "delivered", SOON).await;
    drop(fresh);
    daemon.stop().await;
}

/// The resend cap holds across failover: two carriers whose SMSCs both answer binds and
/// enquire_link but never a submit, each breaker opening at the first failure so that the
/// message moves between them. In all, the message is written at most 1 + max_resends times.
#[tokio::test]
async fn the_resend_cap_holds_across_carriers() {
    let first = Hostile::start_with(auto_bind()).await;
    let second = Hostile::start_with(auto_bind()).await;
    let (a, b) = (common::unique_carrier(), common::unique_carrier());
    let lines = "registered_delivery = 1\nresponse_timeout_ms = 300\nenquire_link_interval_ms = 100\n\
                 breaker_failures = 1\nbreaker_open_seconds = 60";
    let mut options = Options::new(first.addr);
    options.carriers = Some(
        [
            common::carrier_entry(&a, first.addr, lines),
            common::carrier_entry(&b, second.addr, lines),
            format!("\n[[routes]]\nprefix = \"\"\ncarrier = \"{a}\"\npriority = 1\n"),
            format!("\n[[routes]]\nprefix = \"\"\ncarrier = \"{b}\"\npriority = 2\n"),
        ]
        .concat(),
    );
    let daemon = Daemon::start(options).await;
    daemon.wait_sessions(2).await;
    let id = send_code(&daemon, "+31611000088").await;
    let record = wait_final(&daemon, &id, Duration::from_secs(10)).await;
    assert_eq!(record["state"], "unknown", "{record}");
    let writes = first.submits_to("31611000088").len() + second.submits_to("31611000088").len();
    assert!(
        (1..=3).contains(&writes),
        "written {writes} times across both carriers (1 + max_resends = 3 at most)"
    );
    daemon.stop().await;
}
