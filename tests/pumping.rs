//! SMS pumping: a ring that sends codes to a range it is paid for never enters them. With the
//! conversion breaker in `block` mode such a burst to one prefix trips it and the prefix is
//! refused (`destination-blocked`) before the carrier, while other prefixes keep working; an
//! admin lists and lifts the block. In `shadow` mode the trip is only recorded. Velocity caps
//! sends per prefix and per country and day. On the daemon's clock, moved not waited for.

mod common;

use std::time::Duration;

use common::{API_KEY, Daemon, OPERATOR_KEY, Options, SIGNIN_KEY, Sim, sample};
use otpgate::metrics as m;
use reqwest::{Method, StatusCode};

/// A healthy prefix (+31 612: Dutch mobiles) and the ring's (+44 7911).
const HEALTHY: &str = "+31612";
const RING: &str = "+447911";

fn options(sim: &Sim, pumping: &str) -> Options {
    let mut options = Options::new(sim.smpp);
    options.limits = "send_burst = 100000".into();
    options.sections = format!("[pumping]\nprefix_burst = 100000\n{pumping}\n");
    options
}

const BREAKER: &str = r#"[pumping.breaker]
min_sent = 20
min_conversion = 0.3
window_seconds = 600
block_seconds = 900
"#;

/// Sends a code to `prefix` + `n` (six more digits) and, when `enter` is set, verifies it.
async fn sign_in(daemon: &Daemon, sim: &Sim, prefix: &str, n: u32, enter: bool) -> StatusCode {
    let number = format!("{prefix}{n:06}");
    let (status, body) = daemon.send(&number).await;
    if status == StatusCode::ACCEPTED && enter {
        let code = sim.code_for(&number).await;
        let (verified, result) = daemon.verify(&number, &code).await;
        assert_eq!(verified, StatusCode::OK, "{result}");
        assert_eq!(result["status"], "approved");
    } else if status != StatusCode::ACCEPTED {
        assert_eq!(
            body["type"], "urn:otpgate:problem:destination-blocked",
            "{body}"
        );
    }
    status
}

/// `GET /v1/pumping/blocks` with `key`.
async fn blocks(daemon: &Daemon, key: &str) -> (StatusCode, serde_json::Value) {
    daemon
        .call(Method::GET, key, "/v1/pumping/blocks", None)
        .await
}

#[tokio::test]
async fn a_pumping_burst_trips_its_prefix_and_other_prefixes_keep_working() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(options(&sim, BREAKER)).await;
    // Real users on one prefix: every code entered.
    for n in 0..30 {
        assert_eq!(
            sign_in(&daemon, &sim, HEALTHY, n, true).await,
            StatusCode::ACCEPTED
        );
    }
    // The ring: codes to its range, none entered. The 20th trips the breaker.
    let mut accepted = 0;
    for n in 0..100 {
        if sign_in(&daemon, &sim, RING, n, false).await == StatusCode::ACCEPTED {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 20, "sends before the trip");
    let before = sim.stats_now().submits;
    assert_eq!(
        sign_in(&daemon, &sim, RING, 500, false).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sim.stats_now().submits,
        before,
        "a blocked send reached the SMSC"
    );
    // The healthy prefix does not notice.
    for n in 30..40 {
        assert_eq!(
            sign_in(&daemon, &sim, HEALTHY, n, true).await,
            StatusCode::ACCEPTED
        );
    }
    // Listed for admins only.
    let (status, _) = blocks(&daemon, API_KEY).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, listed) = blocks(&daemon, OPERATOR_KEY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["mode"], "block");
    let blocks = listed["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 1, "{listed}");
    assert_eq!(blocks[0]["prefix"], "+44791");
    assert_eq!(blocks[0]["sent"], 20);
    assert_eq!(blocks[0]["verified"], 0);
    assert_eq!(blocks[0]["remaining_seconds"], 900);
    // The block ends on time ...
    daemon.clock.advance(Duration::from_secs(901));
    assert_eq!(
        sign_in(&daemon, &sim, RING, 600, false).await,
        StatusCode::ACCEPTED
    );
    // ... and an admin can lift one early.
    for n in 601..640 {
        sign_in(&daemon, &sim, RING, n, false).await;
    }
    assert_eq!(
        sign_in(&daemon, &sim, RING, 700, false).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let lift = || {
        daemon.call(
            Method::DELETE,
            OPERATOR_KEY,
            "/v1/pumping/blocks/+44791",
            None,
        )
    };
    assert_eq!(lift().await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        lift().await.0,
        StatusCode::NOT_FOUND,
        "nothing left to lift"
    );
    assert_eq!(
        sign_in(&daemon, &sim, RING, 701, false).await,
        StatusCode::ACCEPTED
    );
    let (_, metrics) = daemon.get_text("/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            m::PUMPING_BREAKER_TRIPS_TOTAL,
            &[("mode", "block")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&metrics, m::PUMPING_BREAKER_LIFTS_TOTAL, &[]),
        Some(1.0)
    );
    assert!(sample(&metrics, m::PUMPING_FIRST_SEEN_COUNTRIES_TOTAL, &[]) >= Some(2.0));
    daemon.stop().await;
}

#[tokio::test]
async fn in_shadow_mode_a_trip_is_recorded_and_nothing_refused() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(options(
        &sim,
        &BREAKER.replace("[pumping.breaker]", "[pumping.breaker]\nmode = \"shadow\""),
    ))
    .await;
    for n in 0..60 {
        assert_eq!(
            sign_in(&daemon, &sim, RING, n, false).await,
            StatusCode::ACCEPTED
        );
    }
    let (_, listed) = blocks(&daemon, OPERATOR_KEY).await;
    assert_eq!(listed["mode"], "shadow");
    assert_eq!(listed["blocks"][0]["mode"], "shadow", "{listed}");
    assert_eq!(listed["blocks"][0]["sent"], 20);
    let (_, metrics) = daemon.get_text("/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            m::PUMPING_BREAKER_TRIPS_TOTAL,
            &[("mode", "shadow")]
        ),
        Some(1.0)
    );
    daemon.stop().await;
}

#[tokio::test]
async fn velocity_caps_a_prefix_and_a_country_per_day() {
    let sim = Sim::start().await;
    let mut options = options(&sim, "");
    options.sections = r#"[pumping]
prefix_burst = 5
prefix_period_ms = 60000
country_daily_default = 1000
[pumping.country_daily]
"+32" = 3
[pumping.breaker]
mode = "off"
"#
    .into();
    options.signin = true;
    let daemon = Daemon::start_bound(options).await;
    let limit = |body: &serde_json::Value| body["limit"].as_str().unwrap_or_default().to_owned();
    for n in 0..5 {
        let (status, body) = daemon.send(&format!("+31612{n:06}")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    // Sixth to the prefix: refused, whichever route (sign-in starts draw too).
    let (status, body) = daemon.send("+31612000099").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limit(&body), "prefix_velocity");
    let (status, body) = daemon
        .start_raw(SIGNIN_KEY, "contoso", "+31612000098")
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(limit(&body), "prefix_velocity");
    // Another prefix is not slowed; one period later the first gets one more.
    let (status, _) = daemon.send("+31613000001").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    daemon.clock.advance(Duration::from_secs(60));
    let (status, _) = daemon.send("+31612000097").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Belgium has 3 a day, across its prefixes.
    for prefix in ["+32470", "+32471", "+32472"] {
        let (status, body) = daemon.send(&format!("{prefix}123456")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = daemon.send("+32473123456").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limit(&body), "country_daily");
    daemon.clock.advance(Duration::from_secs(86_400));
    let (status, _) = daemon.send("+32473123456").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    daemon.stop().await;
}
