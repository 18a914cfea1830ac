//! `/metrics` is valid Prometheus text (promtool agrees) and its counters move with traffic.

mod common;
// Shared with the simulator's tests, which check its /metrics the same way.
#[path = "../simulator/tests/common/promtool.rs"]
mod promtool;

use common::{Daemon, Options, Sim, sample, wrong_code};
use otpgate::metrics as m;
use reqwest::StatusCode;

#[tokio::test]
async fn metrics_pass_promtool_and_count_what_happened() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;
    let carrier = daemon.carrier_name.clone();
    let (status, before) = daemon.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let value =
        |text: &str, name: &str, labels: &[(&str, &str)]| sample(text, name, labels).unwrap_or(0.0);

    daemon.send("+31612345678").await;
    let code = sim.code_for("+31612345678").await;
    daemon.verify("+31612345678", &wrong_code(&code)).await;
    daemon.verify("+31612345678", &code).await;
    for _ in 0..3 {
        daemon.send("+31600000000").await;
    }
    let limited = daemon.send("+31600000000").await;
    assert_eq!(limited.0, StatusCode::TOO_MANY_REQUESTS);
    for n in 0..3 {
        sim.latest("+31600000000")
            .await
            .unwrap_or_else(|| panic!("send {n} delivered"));
    }

    let (_, after) = daemon.get_text("/metrics").await;
    promtool::promtool_check(&after);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(delta(m::OTP_ISSUED_TOTAL, &[]), 4.0);
    assert_eq!(
        delta(m::OTP_VERIFICATIONS_TOTAL, &[(m::LABEL_RESULT, "approved")]),
        1.0
    );
    assert_eq!(
        delta(m::OTP_VERIFICATIONS_TOTAL, &[(m::LABEL_RESULT, "denied")]),
        1.0
    );
    assert_eq!(
        delta(
            m::RATE_LIMITED_TOTAL,
            &[(m::LABEL_LIMIT, "send_per_number")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            m::HTTP_REQUESTS_TOTAL,
            &[(m::LABEL_ROUTE, "/v1/otp/send"), (m::LABEL_STATUS, "202")]
        ),
        4.0
    );
    assert_eq!(
        delta(
            m::HTTP_REQUESTS_TOTAL,
            &[(m::LABEL_ROUTE, "/v1/otp/send"), (m::LABEL_STATUS, "429")]
        ),
        1.0
    );
    assert!(
        delta(
            &format!("{}_count", m::HTTP_REQUEST_DURATION_SECONDS),
            &[(m::LABEL_ROUTE, "/v1/otp/verify")]
        ) >= 2.0
    );
    // The last SMS was recorded by the simulator before its submit_sm_resp went out; wait for the
    // daemon to have counted all four responses.
    let mut ok = 0.0;
    for _ in 0..200 {
        let (_, now) = daemon.get_text("/metrics").await;
        ok = value(
            &now,
            m::SMS_SUBMITTED_TOTAL,
            &[(m::LABEL_CARRIER, &carrier), (m::LABEL_RESULT, "ok")],
        );
        if ok >= 4.0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(ok, 4.0);
    assert_eq!(
        value(
            &after,
            m::SMPP_SESSIONS_BOUND,
            &[(m::LABEL_CARRIER, &carrier)]
        ),
        1.0
    );
    assert!(
        value(
            &after,
            &format!("{}_count", m::SMS_SUBMIT_DURATION_SECONDS),
            &[(m::LABEL_CARRIER, &carrier)]
        ) >= 1.0
    );
    assert!(after.contains(&format!(
        "# TYPE {} histogram",
        m::SMS_SUBMIT_DURATION_SECONDS
    )));
    assert!(after.contains(&format!("# TYPE {} gauge", m::OTP_PENDING)));
    // Nothing secret or personal leaks into metrics.
    assert!(!after.contains(&code));
    assert!(!after.contains("31612345678"));
    daemon.stop().await;
}

#[tokio::test]
async fn a_separate_metrics_listener_takes_metrics_off_the_api_port() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.metrics_listener = true;
    let daemon = Daemon::start_bound(options).await;
    let metrics_url = daemon.metrics_url.clone().expect("metrics listener");
    assert_eq!(daemon.get_text("/metrics").await.0, StatusCode::NOT_FOUND);
    let response = reqwest::get(format!("{metrics_url}/metrics"))
        .await
        .expect("metrics answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains(m::SMPP_SESSIONS_BOUND)
    );
    daemon.stop().await;
}

#[tokio::test]
async fn metrics_can_require_a_key_with_the_metrics_scope() {
    const SCRAPER_KEY: &str = "test-scraper-key-0123";
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.metrics_listener = true;
    options.server_extra = "metrics_require_key = true".into();
    options.sections = format!(
        "\n[[api.clients]]\nname = \"prometheus\"\nkey_sha256 = \"{}\"\nscopes = [\"metrics\"]\n",
        otpgate::config::clients::hex(&otpgate::config::clients::key_sha256(SCRAPER_KEY))
    );
    let daemon = Daemon::start_bound(options).await;
    let url = format!("{}/metrics", daemon.metrics_url.clone().expect("listener"));
    let client = reqwest::Client::new();
    let anonymous = client.get(&url).send().await.expect("answer");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // A key without the scope is refused too: an OTP key cannot read the metrics.
    let otp_key = client
        .get(&url)
        .bearer_auth(common::API_KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(otp_key.status(), StatusCode::FORBIDDEN);
    let scraper = client
        .get(&url)
        .bearer_auth(SCRAPER_KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(scraper.status(), StatusCode::OK);
    assert!(
        scraper
            .text()
            .await
            .expect("body")
            .contains(m::SMPP_SESSIONS_BOUND)
    );
    // The scraper's key does nothing else.
    let (status, _) = daemon
        .post_with(
            SCRAPER_KEY,
            "/v1/otp/send",
            serde_json::json!({ "phone": "+31612345678" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    daemon.stop().await;
}
