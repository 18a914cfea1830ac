//! Isolation between clients: each API client has a send budget of its own and each source
//! address another (the end user's, told by a trusted proxy's `X-Forwarded-For`), checked
//! before the per-number limits and the global ceiling, so that one client's flood spends its
//! own budget and not the one every client shares. The daemon's clock is frozen: no budget
//! refills unless a test moves time.

mod common;

use std::time::Duration;

use common::{Daemon, Options, Sim};
use reqwest::StatusCode;
use serde_json::{Value, json};

const NOISY_KEY: &str = "test-noisy-key-0123";
const QUIET_KEY: &str = "test-quiet-key-0123";

fn client(name: &str, key: &str, extra: &str) -> String {
    format!(
        "\n[[api.clients]]\nname = \"{name}\"\nkey_sha256 = \"{}\"\nscopes = [\"otp:send\", \"sms:send\"]\n{extra}\n",
        otpgate::config::clients::hex(&otpgate::config::clients::key_sha256(key))
    )
}

/// One send of a code to `phone` with `key`, through `forwarded_for` when given.
async fn send(
    daemon: &Daemon,
    key: &str,
    phone: &str,
    forwarded_for: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = daemon
        .client
        .post(format!("{}/v1/otp/send", daemon.url))
        .bearer_auth(key)
        .json(&json!({ "phone": phone }));
    if let Some(hops) = forwarded_for {
        request = request.header("X-Forwarded-For", hops);
    }
    let response = request.send().await.expect("daemon answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn limit(body: &Value) -> &str {
    body["limit"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn one_clients_flood_leaves_another_clients_sends_untouched() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    // A ceiling of 20 for all; the noisy client may take 5 of it, the quiet one all of it.
    options.limits = "global_sends_per_second = 20\nsend_burst = 1000".into();
    options.sections = client("noisy", NOISY_KEY, "sends_per_second = 5")
        + &client("quiet", QUIET_KEY, "sends_per_second = 20");
    let daemon = Daemon::start_bound(options).await;

    // The flood: 60 codes to 60 numbers, far past the global ceiling.
    let mut accepted = 0;
    for n in 0..60 {
        let (status, body) = send(&daemon, NOISY_KEY, &format!("+3161100{n:04}"), None).await;
        match status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(limit(&body), "client_send", "{body}"),
            other => panic!("flood send {n}: {other} {body}"),
        }
    }
    assert_eq!(accepted, 5, "the noisy client's own budget");

    // The quiet client still has the 15 the flood did not take from the ceiling.
    for n in 0..15 {
        let (status, body) = send(&daemon, QUIET_KEY, &format!("+3161200{n:04}"), None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "quiet send {n}: {body}");
    }
    // And the global ceiling is still the last guard.
    let (status, body) = send(&daemon, QUIET_KEY, "+31612009999", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limit(&body), "global_send", "{body}");

    // Generic SMS draw on the same client budget.
    let (status, body) = daemon
        .post_with(
            NOISY_KEY,
            "/v1/sms",
            json!({ "to": "+31613000001", "text": "hi" }),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limit(&body), "client_send", "{body}");

    // A second later each budget has refilled (5/s and 20/s).
    daemon.clock.advance(Duration::from_secs(1));
    let (status, body) = send(&daemon, NOISY_KEY, "+31611009999", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, metrics) = daemon.get_text("/metrics").await;
    assert_eq!(
        common::sample(
            &metrics,
            otpgate::metrics::RATE_LIMITED_TOTAL,
            &[("limit", "client_send")]
        ),
        Some(56.0)
    );
    daemon.stop().await;
}

#[tokio::test]
async fn an_address_behind_a_trusted_proxy_has_its_own_budget() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.limits = "ip_send_burst = 3\nip_send_period_seconds = 60\nsend_burst = 1000".into();
    options.sections =
        "\n[server.client_ip]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n".into();
    let daemon = Daemon::start_bound(options).await;
    let key = common::API_KEY;

    for n in 0..3 {
        let (status, body) = send(
            &daemon,
            key,
            &format!("+3161400{n:04}"),
            Some("198.51.100.1"),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = send(&daemon, key, "+31614009999", Some("198.51.100.1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limit(&body), "ip_send", "{body}");
    // A forged entry on the left changes nothing: the proxies appended the real address, and
    // so does a second proxy hop that is trusted.
    for hops in [
        "203.0.113.50, 198.51.100.1",
        "198.51.100.1, 10.1.2.3",
        "198.51.100.1:51234",
    ] {
        let (status, body) = send(&daemon, key, "+31614009998", Some(hops)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{hops}: {body}");
        assert_eq!(limit(&body), "ip_send", "{body}");
    }
    // Another end user, and the proxy's own requests, are not held by that address's budget.
    let (status, body) = send(&daemon, key, "+31614000100", Some("198.51.100.2")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = send(&daemon, key, "+31614000101", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The budget refills on the daemon's clock: one more per period (60 s).
    daemon.clock.advance(Duration::from_secs(59));
    let (status, _) = send(&daemon, key, "+31614000103", Some("198.51.100.1")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    daemon.clock.advance(Duration::from_secs(1));
    let (status, body) = send(&daemon, key, "+31614000102", Some("198.51.100.1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    daemon.stop().await;
}

#[tokio::test]
async fn the_header_of_an_untrusted_peer_is_ignored() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.limits = "ip_send_burst = 3\nip_send_period_seconds = 60\nsend_burst = 1000".into();
    // No proxy is trusted: the connection's own address (127.0.0.1) is the client.
    options.sections = "\n[server.client_ip]\ntrusted_proxies = []\n".into();
    let daemon = Daemon::start_bound(options).await;
    for n in 0..5 {
        // An attacker rotating a made-up header gets no fresh budget.
        let hops = format!("198.51.100.{n}");
        let (status, body) = send(
            &daemon,
            common::API_KEY,
            &format!("+3161500{n:04}"),
            Some(&hops),
        )
        .await;
        if n < 3 {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
            assert_eq!(limit(&body), "ip_send", "{body}");
        }
    }
    daemon.stop().await;
}
