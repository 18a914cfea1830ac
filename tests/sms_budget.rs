//! SMS bombing: anyone who knows a number can ask for codes for it. Within every other limit,
//! one number receives at most `max_sms_per_number_per_day` SMS (10 by default) per day window,
//! codes and `/v1/sms` together, each after the first only once a growing interval (30 s, 1, 2,
//! 4 min, up to 10 % more) has passed. The daemon's clock is moved, not waited for; the
//! per-number send limiter is opened wide so that the budget alone is measured.

mod common;

use std::time::Duration;

use common::{Daemon, Options, SMS_KEY, Sim};
use reqwest::StatusCode;
use serde_json::json;

const PHONE: &str = "+31611000789";

fn options(sim: &Sim) -> Options {
    let mut options = Options::new(sim.smpp);
    options.limits = "send_burst = 100000\nmax_sms_per_number_per_day = 10\n\
                      resend_intervals_seconds = [30, 60, 120, 240]"
        .into();
    options
}

/// The seconds a 429 problem says to wait ("... retry after N s").
fn retry_after(body: &serde_json::Value) -> u64 {
    body["detail"]
        .as_str()
        .and_then(|d| d.split_whitespace().find_map(|w| w.parse().ok()))
        .expect("the problem says how long")
}

#[tokio::test]
async fn a_bomber_who_obeys_every_retry_after_gets_ten_sms_to_a_number_per_day() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(options(&sim)).await;
    let mut accepted = Vec::new();
    let mut waits = Vec::new();
    let mut now = 0u64;
    // Alternating codes and generic SMS, for a simulated day; bounded in requests.
    for request in 0..200 {
        if now >= 86_400 - 1 {
            break;
        }
        let (status, body) = if request % 2 == 0 {
            daemon.send(PHONE).await
        } else {
            daemon
                .post_with(SMS_KEY, "/v1/sms", json!({ "to": PHONE, "text": "hi" }))
                .await
        };
        match status {
            StatusCode::ACCEPTED => accepted.push(now),
            StatusCode::TOO_MANY_REQUESTS => {
                let limit = body["limit"].as_str().unwrap_or_default().to_owned();
                let wait = retry_after(&body);
                waits.push((limit.clone(), wait));
                if limit == "sms_per_number_day" {
                    break;
                }
                assert_eq!(limit, "resend_interval", "{body}");
                daemon.clock.advance(Duration::from_secs(wait));
                now += wait;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(
        accepted.len(),
        10,
        "accepted at {accepted:?}; waits {waits:?}"
    );
    assert_eq!(
        waits.last().map(|(limit, _)| limit.as_str()),
        Some("sms_per_number_day"),
        "{waits:?}"
    );
    // The waits grew: 30 s, then 60, 120 and 240 s (each up to 10 % more).
    let gaps: Vec<u64> = accepted.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, floor) in gaps.iter().zip([30, 60, 120, 240, 240, 240, 240, 240, 240]) {
        assert!(
            (floor..=floor + floor / 10 + 1).contains(gap),
            "gaps {gaps:?}"
        );
    }
    // The phone received what was accepted, no more.
    assert_eq!(sim.messages(PHONE).await.len(), 10);
    // A new day window opens the budget again.
    daemon.clock.advance(Duration::from_secs(86_400));
    assert_eq!(daemon.send(PHONE).await.0, StatusCode::ACCEPTED);
    daemon.stop().await;
}

#[tokio::test]
async fn the_budget_is_per_number() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(options(&sim)).await;
    assert_eq!(daemon.send(PHONE).await.0, StatusCode::ACCEPTED);
    let (status, body) = daemon.send(PHONE).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["limit"], "resend_interval");
    assert_eq!(daemon.send("+31611000790").await.0, StatusCode::ACCEPTED);
    daemon.stop().await;
}
