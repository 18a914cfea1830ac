//! Issue and verify over the wire: daemon HTTP -> SMPP -> simulator -> code -> daemon HTTP.

mod common;

use std::time::Duration;

use common::{Daemon, Options, Sim, sample, wrong_code};
use otpgate::metrics as m;
use reqwest::StatusCode;
use serde_json::json;

const PHONE: &str = "+31 6 1234 5678";
const E164: &str = "+31612345678";

#[tokio::test]
async fn a_delivered_code_verifies_once() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;

    let (status, body) = daemon.send(PHONE).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["phone"], E164);
    assert_eq!(body["status"], "pending");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["id"].as_str().map(str::len), Some(32));

    let sms = sim.latest(E164).await.expect("the phone received an SMS");
    let code = sms["otp"].as_str().expect("code in the text").to_owned();
    assert_eq!(sms["from"], "OTPGATE");
    assert_eq!(
        sms["text"],
        format!("Your verification code is {code}. It expires in 5 minutes.")
    );

    assert_eq!(
        daemon.verify(E164, &code).await,
        (StatusCode::OK, json!({ "status": "approved" }))
    );
    assert_eq!(
        daemon.verify(PHONE, &code).await,
        (StatusCode::OK, json!({ "status": "not_found" }))
    );
    daemon.stop().await;
}

#[tokio::test]
async fn five_wrong_codes_lock_out_even_the_right_one() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;
    daemon.send(PHONE).await;
    let code = sim.code_for(E164).await;
    let wrong = wrong_code(&code);
    for left in (0..5).rev() {
        assert_eq!(
            daemon.verify(E164, &wrong).await,
            (
                StatusCode::OK,
                json!({ "status": "denied", "attempts_left": left })
            )
        );
    }
    assert_eq!(
        daemon.verify(E164, &code).await,
        (StatusCode::OK, json!({ "status": "max_attempts_reached" }))
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_wrong_guesses_count_as_five() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    // The verify limit would answer most of them with 429; this test is about the attempt count.
    options.limits = "verify_burst = 1000".into();
    let daemon = Daemon::start_bound(options).await;
    daemon.send(PHONE).await;
    let wrong = wrong_code(&sim.code_for(E164).await);

    let daemon = std::sync::Arc::new(daemon);
    let guesses: Vec<_> = (0..100)
        .map(|_| {
            let (daemon, wrong) = (daemon.clone(), wrong.clone());
            tokio::spawn(async move { daemon.verify(E164, &wrong).await })
        })
        .collect();
    let mut answers = Vec::new();
    for guess in guesses {
        answers.push(guess.await.expect("no panic"));
    }
    let count = |status: &str| {
        answers
            .iter()
            .filter(|(_, body)| body["status"] == status)
            .count()
    };
    assert!(answers.iter().all(|(code, _)| *code == StatusCode::OK));
    assert_eq!((count("denied"), count("max_attempts_reached")), (5, 95));
    std::sync::Arc::into_inner(daemon)
        .expect("all guesses done")
        .stop()
        .await;
}

#[tokio::test]
async fn a_code_past_its_ttl_is_expired() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;
    daemon.send(PHONE).await;
    let code = sim.code_for(E164).await;
    daemon.clock.advance(Duration::from_secs(300));
    assert_eq!(
        daemon.verify(E164, &code).await,
        (StatusCode::OK, json!({ "status": "expired" }))
    );
    assert_eq!(
        daemon.verify(E164, &code).await,
        (StatusCode::OK, json!({ "status": "not_found" }))
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_fourth_immediate_send_is_rate_limited_and_other_numbers_are_not() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;
    for _ in 0..3 {
        assert_eq!(daemon.send(PHONE).await.0, StatusCode::ACCEPTED);
    }
    // The same number written differently is the same number.
    let response = daemon
        .client
        .post(format!("{}/v1/otp/send", daemon.url))
        .bearer_auth(common::API_KEY)
        .json(&json!({ "phone": "+31-6-12.34.56.78" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (59..=60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().await.expect("problem JSON");
    assert_eq!(problem["limit"], "send_per_number");
    assert_eq!(problem["status"], 429);

    assert_eq!(daemon.send("+31612345679").await.0, StatusCode::ACCEPTED);
    daemon.stop().await;
}

#[tokio::test]
async fn a_new_send_replaces_the_pending_code() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;
    daemon.send(PHONE).await;
    let first = sim.code_for(E164).await;
    let mut second = first.clone();
    while second == first {
        daemon.send(PHONE).await;
        let messages = sim.messages(E164).await;
        second = messages[0]["otp"].as_str().expect("code").to_owned();
        if messages.len() >= 3 {
            break;
        }
    }
    assert_ne!(first, second, "three sends gave the same code");
    assert_eq!(daemon.verify(E164, &first).await.1["status"], "denied");
    assert_eq!(daemon.verify(E164, &second).await.1["status"], "approved");
    daemon.stop().await;
}

#[tokio::test]
async fn a_full_queue_sheds_load_with_503_and_the_unsent_code_is_withdrawn() {
    // No SMSC listens here: the session never binds, so the queue fills.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_end = closed.local_addr().expect("addr");
    drop(closed);
    let mut options = Options::new(dead_end);
    options.carrier_extra = "queue_capacity = 1".into();
    // The queued message can never be delivered; shutdown gives up on it after this long.
    options.shutdown_timeout_seconds = 1;
    let daemon = Daemon::start(options).await;

    assert_eq!(
        daemon.get_text("/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(daemon.send("+31600000001").await.0, StatusCode::ACCEPTED);
    // Every failed bind is followed by a backoff that tries to move waiting messages to another
    // carrier. There is none: the queued message must keep its slot through two of them.
    let failures = || async {
        let (_, text) = daemon.get_text("/metrics").await;
        let labels = [(m::LABEL_CARRIER, daemon.carrier_name.as_str())];
        sample(&text, m::SMPP_BIND_FAILURES_TOTAL, &labels).unwrap_or(0.0)
    };
    let before = failures().await;
    for _ in 0..500 {
        if failures().await >= before + 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        failures().await >= before + 2.0,
        "the session kept retrying its bind"
    );
    let (status, problem) = daemon.send("+31600000002").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "urn:otpgate:problem:unavailable");
    // Had the code stayed, a guess could still hit it.
    assert_eq!(
        daemon.verify("+31600000002", "123456").await.1["status"],
        "not_found"
    );
    assert_eq!(daemon.get_text("/healthz").await.0, StatusCode::OK);
    daemon.stop().await;
}

#[tokio::test]
async fn the_request_locale_picks_the_template_and_its_coding() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.otp_extra = "app_name = \"Contoso\"\nwebotp_domain = \"login.example.com\"\n\
                         [otp.templates]\nru = \"Ваш код {app}: {code}\"\nnl = \"Je code is {code}\""
        .into();
    let daemon = Daemon::start_bound(options).await;

    let (status, _) = daemon
        .post("/v1/otp/send", json!({ "phone": PHONE, "locale": "ru-RU" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let sms = sim.latest(E164).await.expect("delivered");
    let code = sms["otp"].as_str().expect("code").to_owned();
    assert_eq!(
        sms["text"],
        format!("Ваш код Contoso: {code}\n\n@login.example.com #{code}")
    );
    assert_eq!(sms["data_coding"], 8, "Cyrillic goes as UCS-2");
    assert_eq!(daemon.verify(E164, &code).await.1["status"], "approved");

    daemon
        .post(
            "/v1/otp/send",
            json!({ "phone": "+31612345679", "locale": "nl" }),
        )
        .await;
    let sms = sim.latest("+31612345679").await.expect("delivered");
    assert!(
        sms["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Je code is "))
    );
    assert_eq!(sms["data_coding"], 0, "plain text stays GSM 03.38");

    daemon
        .post(
            "/v1/otp/send",
            json!({ "phone": "+31612345670", "locale": "fr" }),
        )
        .await;
    let sms = sim.latest("+31612345670").await.expect("delivered");
    assert!(
        sms["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Your verification code is ")),
        "unknown locale: default"
    );
    daemon.stop().await;
}
