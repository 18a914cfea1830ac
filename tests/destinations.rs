//! SMS pumping and toll fraud at the door: a denied country, an unassigned range and a
//! premium-rate line are refused before any carrier sees them (the simulator counts no submit),
//! a safe-listed number passes every rule, and every spelling of a number with its trunk prefix
//! is one number (one code, one budget).

mod common;

use std::time::Duration;

use common::{Daemon, Options, SIGNIN_KEY, SMS_KEY, Sim, sample};
use otpgate::metrics as m;
use reqwest::StatusCode;
use serde_json::json;

fn options(sim: &Sim, destinations: &str) -> Options {
    let mut options = Options::new(sim.smpp);
    options.limits = "send_burst = 1000".into();
    options.sections = format!("[destinations]\n{destinations}\n");
    options
}

#[tokio::test]
async fn denied_unassigned_and_premium_destinations_never_reach_the_carrier() {
    let sim = Sim::start().await;
    let mut options = options(
        &sim,
        r#"deny = ["+7", "+881"]
safe = ["+79991234567"]"#,
    );
    options.signin = true;
    let daemon = Daemon::start_bound(options).await;
    // Each refusal on both SMS routes and on sign-in starts: (number, status, problem).
    let refused = [
        ("+74951234567", 422, "destination-not-permitted"),
        ("+8816123456789", 422, "destination-not-permitted"),
        // No country has calling code 999; +31 69 is no Dutch range.
        ("+99912345678", 400, "invalid-phone"),
        ("+3169123456789", 400, "invalid-phone"),
        // International premium rate, and Dutch 0900.
        ("+979123456789", 422, "line-type-not-permitted"),
        ("+319001234567", 422, "line-type-not-permitted"),
    ];
    for (number, status, problem) in refused {
        let answers = [
            daemon.send(number).await,
            daemon
                .post_with(SMS_KEY, "/v1/sms", json!({ "to": number, "text": "hi" }))
                .await,
            daemon.start_raw(SIGNIN_KEY, "contoso", number).await,
        ];
        for (got, body) in answers {
            assert_eq!(got.as_u16(), status, "{number}: {body}");
            assert_eq!(
                body["type"],
                format!("urn:otpgate:problem:{problem}"),
                "{number}: {body}"
            );
        }
    }
    assert_eq!(
        sim.stats_now().submits,
        0,
        "a refused send reached the SMSC"
    );
    // The safe list opens a denied country for testers; an allowed number goes as ever.
    for number in ["+79991234567", "+447911123456"] {
        let (status, body) = daemon.send(number).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{number}: {body}");
        assert_eq!(sim.code_for(number).await.len(), 6);
    }
    // Metrics are one registry per test process: the allow-list test counts geo refusals too.
    let (_, metrics) = daemon.get_text("/metrics").await;
    let refused = |rule| sample(&metrics, m::DESTINATION_REFUSED_TOTAL, &[("rule", rule)]);
    assert!(refused("geo") >= Some(6.0), "{metrics}");
    assert_eq!(refused("unassigned"), Some(6.0));
    assert_eq!(refused("line_type"), Some(6.0));
    daemon.stop().await;
}

#[tokio::test]
async fn an_allow_list_refuses_every_other_country_and_the_longest_prefix_decides() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(options(
        &sim,
        r#"allow = ["+31", "+447"]
deny = ["+3197"]"#,
    ))
    .await;
    for (number, status) in [
        ("+31612345678", StatusCode::ACCEPTED),
        ("+447911123456", StatusCode::ACCEPTED),
        ("+442079460000", StatusCode::UNPROCESSABLE_ENTITY),
        ("+14158675309", StatusCode::UNPROCESSABLE_ENTITY),
        ("+3197010000001", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (got, body) = daemon.send(number).await;
        assert_eq!(got, status, "{number}: {body}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn trunk_prefix_spellings_are_one_number_for_codes_and_budgets() {
    let sim = Sim::start().await;
    let mut options = options(&sim, "");
    options.limits =
        "send_burst = 1000\nmax_sms_per_number_per_day = 10\nresend_intervals_seconds = [30]"
            .into();
    let daemon = Daemon::start_bound(options).await;
    let (status, body) = daemon.send("+31 (0)6 1100 0123").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["phone"], "+31611000123");
    let code = sim.code_for("+31611000123").await;
    // Another spelling is the same number: its resend waits like the first one's.
    let (status, body) = daemon.send("+31 06 11000123").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["limit"], "resend_interval");
    daemon.clock.advance(Duration::from_secs(40));
    let (status, body) = daemon.send("+44 (0)7911 123456").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["phone"], "+447911123456");
    // The code verifies under a third spelling.
    let (status, body) = daemon.verify("+310611000123", &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved", "{body}");
    daemon.stop().await;
}
