//! Delivery state over the wire: receipts from the simulator (whose rules pick the outcome by
//! number) and refusals reach `GET /v1/otp/{id}`.

mod common;

use common::{Daemon, Options, Sim};
use otpgate::metrics as m;
use reqwest::StatusCode;

const RULES: &str = r#"
[[rules]]
to_prefix = "+3160000"
stat = "UNDELIV"
[[rules]]
to_suffix = "0013"
submit_status = "ESME_RINVDSTADR"
"#;

#[tokio::test]
async fn receipts_and_refusals_reach_the_status_api() {
    let sim = Sim::start_with(RULES).await;
    let mut options = Options::new(sim.smpp);
    options.carrier_extra = "registered_delivery = 1".into();
    let daemon = Daemon::start_bound(options).await;

    let (_, sent) = daemon.send("+31612345678").await;
    let id = sent["id"].as_str().expect("id").to_owned();
    let delivered = daemon.wait_for_delivery(&id, "delivered").await;
    let delivery = &delivered["delivery"];
    assert_eq!(delivered["id"], id.as_str());
    for field in ["queued_at", "submitted_at", "done_at"] {
        assert!(
            delivery[field].as_str().is_some_and(|t| t.ends_with('Z')),
            "{field}: {delivered}"
        );
    }
    let message = sim.latest("+31612345678").await.expect("delivered");
    assert_eq!(
        delivery["message_id"], message["id"],
        "the carrier's id for it"
    );
    assert!(delivery["error"].is_null());

    let (_, sent) = daemon.send("+31600001234").await;
    let undeliverable = daemon
        .wait_for_delivery(sent["id"].as_str().expect("id"), "undeliverable")
        .await;
    assert!(undeliverable["delivery"]["done_at"].is_string());

    let (_, sent) = daemon.send("+31612340013").await;
    let failed = daemon
        .wait_for_delivery(sent["id"].as_str().expect("id"), "failed")
        .await;
    assert_eq!(failed["delivery"]["error"], "ESME_RINVDSTADR");
    assert!(failed["delivery"]["submitted_at"].is_null());

    let (status, problem) = daemon
        .get_json("/v1/otp/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("urn:otpgate:problem:not-found"))
    );
    let unauthorised = daemon
        .client
        .get(format!("{}/v1/otp/{id}", daemon.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(unauthorised.status(), StatusCode::UNAUTHORIZED);

    let (_, metrics) = daemon.get_text("/metrics").await;
    let carrier = format!("carrier=\"{}\"", daemon.carrier_name);
    let receipts = |state: &str| {
        metrics.lines().any(|l| {
            l.starts_with(m::SMS_RECEIPTS_TOTAL)
                && l.contains(&carrier)
                && l.contains(&format!("state=\"{state}\""))
                && l.ends_with(" 1")
        })
    };
    assert!(
        receipts("delivered") && receipts("undeliverable"),
        "{metrics}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn without_receipts_acceptance_is_final_and_a_missing_receipt_ends_as_unknown() {
    // registered_delivery 0: no receipt will come, so the carrier's acceptance is final.
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;
    let (_, sent) = daemon.send("+31612345678").await;
    let delivery = daemon.final_state(sent["id"].as_str().expect("id")).await;
    assert_eq!(delivery["state"], "submitted");
    let (_, ready) = daemon.get_json("/readyz").await;
    assert_eq!(ready["messages_in_progress"], 0);
    daemon.stop().await;

    // Receipts asked for, but the SMSC holds them back longer than the daemon waits.
    let sim = Sim::start_with("[receipts]\ndelay_ms = 600000").await;
    let mut options = Options::new(sim.smpp);
    options.carrier_extra = "registered_delivery = 1".into();
    options.otp_extra = "sweep_interval_seconds = 1".into();
    options.delivery_extra = "receipt_wait_seconds = 1".into();
    let daemon = Daemon::start_bound(options).await;
    let (_, sent) = daemon.send("+31612345678").await;
    let delivery = daemon.final_state(sent["id"].as_str().expect("id")).await;
    assert_eq!(delivery["state"], "unknown");
    assert!(
        delivery["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no final receipt within 1 s")),
        "{delivery}"
    );
    daemon.stop().await;
}
