//! `/v1/sms`: any text, split into parts as the carrier wants, with its own key scope; paced per
//! carrier; its delivery state at `/v1/sms/{id}`.

mod common;

use std::time::Instant;

use common::{Daemon, Options, SMS_KEY, Sim};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn long_texts_go_out_in_parts_and_are_tracked_until_delivered() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.carrier_extra = "registered_delivery = 1".into();
    let daemon = Daemon::start_bound(options).await;

    let text = "Your parcel is on its way. ".repeat(15).trim().to_owned(); // 404 GSM characters
    let (status, body) = daemon
        .post("/v1/sms", json!({ "to": "+31612345678", "text": text }))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an OTP key cannot send arbitrary text (a known key without sms:send)"
    );
    let (status, body_ok) = daemon
        .post_with(
            SMS_KEY,
            "/v1/sms",
            json!({ "to": "+31 6 1234 5678", "text": text }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body} {body_ok}");
    assert_eq!(
        (
            body_ok["parts"].as_u64(),
            body_ok["to"].as_str(),
            body_ok["status"].as_str()
        ),
        (Some(3), Some("+31612345678"), Some("queued"))
    );
    let id = body_ok["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("sms-"));

    let whole = sim.latest("+31612345678").await.expect("delivered");
    assert_eq!(
        whole["text"].as_str(),
        Some(text.as_str()),
        "the simulator reassembled our UDH parts"
    );
    assert_eq!(whole["parts"].as_array().map(Vec::len), Some(3));
    let record = daemon.wait_for_delivery(&id, "delivered").await;
    assert_eq!(record["delivery"]["parts"], 3);
    let (status, _) = daemon.get_json(&format!("/v1/otp/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "SMS ids are not codes");

    // UCS-2 with a character outside the BMP, from an alphanumeric sender.
    let text = format!("Привет 😀 {}", "ж".repeat(80));
    let (status, body) = daemon
        .post_with(
            SMS_KEY,
            "/v1/sms",
            json!({ "to": "+31612345679", "text": text, "from": "Contoso" }),
        )
        .await;
    assert_eq!(
        (status, body["parts"].as_u64()),
        (StatusCode::ACCEPTED, Some(2))
    );
    let whole = sim.latest("+31612345679").await.expect("delivered");
    assert_eq!(
        (
            whole["text"].as_str(),
            whole["from"].as_str(),
            whole["data_coding"].as_u64()
        ),
        (Some(text.as_str()), Some("Contoso"), Some(8))
    );
    daemon.stop().await;
}

#[tokio::test]
async fn an_otp_text_over_one_sms_goes_out_in_parts_when_max_parts_allows() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    let filler = "Never share this code with anyone, not even our support staff. ".repeat(3);
    options.otp_extra =
        format!("max_parts = 2\nsms_template = \"{{code}} is your code. {filler}\"");
    options.carrier_extra = "registered_delivery = 1".into();
    let daemon = Daemon::start_bound(options).await;

    let (status, body) = daemon.send("+31612345678").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    let whole = sim.latest("+31612345678").await.expect("delivered");
    assert_eq!(whole["parts"].as_array().map(Vec::len), Some(2));
    let code = sim.code_for("+31612345678").await;
    assert_eq!(
        whole["text"].as_str(),
        Some(format!("{code} is your code. {filler}").as_str()),
        "the simulator reassembled both parts"
    );
    let record = daemon.wait_for_delivery(&id, "delivered").await;
    assert_eq!(record["delivery"]["parts"], 2);
    let (status, body) = daemon.verify("+31612345678", &code).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
    daemon.stop().await;
}

#[tokio::test]
async fn the_carrier_over_sar_tlvs_gets_them() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.carrier_extra = "concatenation = \"sar\"".into();
    let daemon = Daemon::start_bound(options).await;
    let text = "0123456789".repeat(20);
    daemon
        .post_with(
            SMS_KEY,
            "/v1/sms",
            json!({ "to": "+31612345678", "text": text }),
        )
        .await;
    let whole = sim.latest("+31612345678").await.expect("delivered");
    assert_eq!(whole["text"].as_str(), Some(text.as_str()));
    let part = &whole["parts"][0]["id"];
    let messages = sim.messages("+31612345678").await;
    assert_eq!(messages.len(), 1, "only the whole message is listed");
    assert!(part.is_string());
    daemon.stop().await;
}

#[tokio::test]
async fn bad_sms_requests_are_refused_precisely() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;
    let cases = [
        (json!({ "to": "+31612345678", "text": "" }), "invalid-text"),
        (
            json!({ "to": "+31612345678", "text": "hi", "from": "ThisNameIsTooLong" }),
            "invalid-sender",
        ),
        (json!({ "to": "0612345678", "text": "hi" }), "invalid-phone"),
        // A valid sender the client was not given (its senders are ["Contoso"]).
        (
            json!({ "to": "+31612345678", "text": "hi", "from": "MyBank" }),
            "sender-not-allowed",
        ),
        (
            json!({ "to": "+31612345678", "text": "hi", "callback_url": "http://169.254.169.254/" }),
            "invalid-callback",
        ),
        (
            json!({ "to": "+31612345678", "text": "hi", "callback_url": "not a url" }),
            "invalid-callback",
        ),
        (
            json!({ "to": "+31612345678", "text": "hi", "priority": 1 }),
            "invalid-json",
        ),
    ];
    for (body, problem) in cases {
        let (status, answer) = daemon.post_with(SMS_KEY, "/v1/sms", body.clone()).await;
        // (More than 255 parts cannot fit the 16 KiB body limit; the splitter's tests cover it.)
        let expected = if problem == "sender-not-allowed" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status, expected, "{body}");
        assert_eq!(
            answer["type"],
            format!("urn:otpgate:problem:{problem}"),
            "{body}: {answer}"
        );
    }
    let response = daemon
        .client
        .post(format!("{}/v1/otp/send", daemon.url))
        .bearer_auth(SMS_KEY)
        .json(&json!({ "phone": "+31612345678" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "an SMS key cannot issue codes (a known key without otp:send)"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn segments_are_paced_to_the_carrier_rate_across_its_sessions() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    // 10 segments per second (governor lets the first 10 through at once), shared by the
    // carrier's three sessions: three pacers of 10 would let these through in well under 1 s.
    options.carrier_extra = "max_messages_per_second = 10\nbinds = 3".into();
    let daemon = Daemon::start(options).await;
    daemon.wait_sessions(3).await;
    let started = Instant::now();
    for n in 0..8 {
        let text = "x".repeat(400); // 3 parts each: 24 segments
        let (status, _) = daemon
            .post_with(
                SMS_KEY,
                "/v1/sms",
                json!({ "to": format!("+3161234500{n}"), "text": text }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    for n in 0..8 {
        sim.latest(&format!("+3161234500{n}"))
            .await
            .expect("delivered");
    }
    let elapsed = started.elapsed();
    // 24 segments at 10/s after a burst of 10: at least 1.3 s.
    assert!(elapsed.as_millis() >= 1_200, "24 segments in {elapsed:?}");
    daemon.stop().await;
}
