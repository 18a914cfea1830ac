//! The carrier side under the simulator's scripted faults: every message ends in exactly one
//! final state, and the states are the right ones.

mod common;

use std::collections::BTreeMap;

use common::{Daemon, Options, Sim};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Sends `count` SMS to distinct numbers; returns their ids.
/// Every message's final state, counted.
async fn final_states(daemon: &Daemon, ids: &[String]) -> BTreeMap<String, usize> {
    let mut states = BTreeMap::new();
    for id in ids {
        let delivery: Value = daemon.final_state(id).await;
        let key = match delivery["error"].as_str() {
            Some(error) if delivery["state"] == "failed" => format!("failed:{error}"),
            _ => delivery["state"].as_str().unwrap_or("?").to_owned(),
        };
        *states.entry(key).or_default() += 1;
    }
    states
}

fn options(sim: &Sim, extra: &str) -> Options {
    let mut options = Options::new(sim.smpp);
    options.carrier_extra =
        format!("registered_delivery = 1\nwindow = 20\nresponse_timeout_ms = 500\n{extra}");
    options
}

#[tokio::test]
async fn throttled_and_temporary_refusals_are_retried_until_delivered() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(options(&sim, "")).await;
    sim.put_faults(json!({ "max_submits_per_second": 25, "queue_full_percent": 10 }))
        .await;
    let ids = daemon.send_many(60, "+3161000").await;
    let states = final_states(&daemon, &ids).await;
    assert_eq!(states, BTreeMap::from([("delivered".to_owned(), 60)]));
    // Refused submits were resent, never lost: the SMSC accepted each message exactly once.
    assert_eq!(sim.stats_now().submits, 60);
    daemon.stop().await;
}

#[tokio::test]
async fn permanent_errors_fail_their_message_and_only_it() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(options(&sim, "")).await;
    sim.put_faults(json!({ "error_percent": 30, "error_status": "ESME_RSUBMITFAIL" }))
        .await;
    let ids = daemon.send_many(60, "+3161001").await;
    let states = final_states(&daemon, &ids).await;
    let delivered = states.get("delivered").copied().unwrap_or(0);
    let failed = states.get("failed:ESME_RSUBMITFAIL").copied().unwrap_or(0);
    assert_eq!(delivered + failed, 60, "{states:?}");
    assert!(failed > 0 && delivered > 0, "{states:?}");
    assert_eq!(
        sim.stats_now().submits,
        delivered as u64,
        "what the SMSC accepted is what was delivered"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_link_dropped_mid_window_loses_nothing() {
    let sim = Sim::start().await;
    // With receipts: on a link that drops with a full window, receipts overtake their
    // submit_sm_resp; they are held until the id is known, so every message ends delivered.
    // Resends are capped (`max_resends`); this test is about losing nothing, so it allows more.
    let daemon = Daemon::start_bound(options(&sim, "max_resends = 10")).await;
    // Every session dies after answering 30 PDUs; the window keeps 20 in flight.
    sim.put_faults(json!({ "drop_after_pdus": 30 })).await;
    // All at once: sent one by one, HTTP is slower than the SMSC's answers, the window holds one
    // submit at most, and a drop right after an answer finds nothing in flight to resend.
    let ids = daemon.send_many_at_once(100, "+3161002").await;
    let states = final_states(&daemon, &ids).await;
    assert_eq!(states, BTreeMap::from([("delivered".to_owned(), 100)]));
    let stats = sim.stats_now();
    assert!(stats.binds > 1, "the daemon rebound after drops: {stats:?}");
    assert!(stats.submits >= 100, "at least once: {stats:?}");
    // What was in flight when a link dropped was written again, and counted as possible duplicates.
    let (_, metrics) = daemon.get_text("/metrics").await;
    let carrier = format!("carrier=\"{}\"", daemon.carrier_name);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("otpgate_sms_resubmitted_total")
                && l.contains(&carrier)
                && l.contains("reason=\"link_lost\"")),
        "{metrics}"
    );
    let (_, ready) = daemon.get_json("/readyz").await;
    assert_eq!(
        ready["messages_in_progress"], 0,
        "every message is final: {ready}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_hung_smsc_times_responses_out_and_the_messages_still_go() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(options(&sim, "enquire_link_interval_ms = 200")).await;
    sim.put_faults(json!({ "hang_seconds": 1.5 })).await;
    let ids = daemon.send_many(10, "+3161003").await;
    let states = final_states(&daemon, &ids).await;
    assert_eq!(states, BTreeMap::from([("delivered".to_owned(), 10)]));
    daemon.stop().await;
}

#[tokio::test]
async fn refused_binds_hold_messages_until_the_smsc_accepts_again() {
    let sim = Sim::start().await;
    sim.put_faults(json!({ "refuse_binds": "ESME_RBINDFAIL" }))
        .await;
    let daemon = Daemon::start(options(&sim, "")).await;
    let ids = daemon.send_many(5, "+3161004").await;
    assert_eq!(
        daemon.get_text("/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    sim.put_faults(json!({})).await;
    daemon.wait_bound(true).await;
    let states = final_states(&daemon, &ids).await;
    assert_eq!(states, BTreeMap::from([("delivered".to_owned(), 5)]));
    daemon.stop().await;
}

#[tokio::test]
async fn every_receipt_outcome_reaches_its_message() {
    let rules = r#"
[[rules]]
to_prefix = "+3161005001"
stat = "UNDELIV"
[[rules]]
to_prefix = "+3161005002"
stat = "EXPIRED"
[[rules]]
to_prefix = "+3161005003"
stat = "REJECTD"
[[rules]]
to_prefix = "+3161005004"
stat = "DELETED"
[[rules]]
to_prefix = "+3161005005"
stat = "UNKNOWN"
[[rules]]
to_prefix = "+3161005006"
submit_status = "ESME_RINVDSTADR"
"#;
    let sim = Sim::start_with(rules).await;
    let daemon = Daemon::start_bound(options(&sim, "")).await;
    let mut expected = BTreeMap::new();
    for (digit, state) in [
        ("0", "delivered"),
        ("1", "undeliverable"),
        ("2", "expired"),
        ("3", "rejected"),
        ("4", "deleted"),
        ("5", "unknown"),
        ("6", "failed:ESME_RINVDSTADR"),
    ] {
        let ids = daemon.send_many(3, &format!("+316100500{digit}")).await;
        let states = final_states(&daemon, &ids).await;
        expected.insert(state, states);
    }
    for (state, states) in expected {
        assert_eq!(states, BTreeMap::from([(state.to_owned(), 3)]), "{state}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_dead_link_is_found_within_twice_the_enquire_link_interval() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(options(
        &sim,
        "enquire_link_interval_ms = 200\nenquire_link_timeout_ms = 200",
    ))
    .await;
    sim.put_faults(json!({ "hang_seconds": 5 })).await;
    let started = std::time::Instant::now();
    daemon.wait_bound(false).await;
    let elapsed = started.elapsed();
    // 200 ms idle, then 200 ms for the enquire_link_resp, plus the 50 ms tick: well under 1 s,
    // while the hang lasts 5 s.
    assert!(
        elapsed < std::time::Duration::from_millis(1000),
        "dead link found after {elapsed:?}"
    );
    sim.put_faults(json!({})).await;
    daemon.stop().await;
}
