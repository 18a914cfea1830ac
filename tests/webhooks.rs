//! `callback_url`: delivery state changes are POSTed to the caller, retried when refused.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use common::{Daemon, Options, Sim};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<AtomicU32>,
    received: Arc<Mutex<Vec<Value>>>,
}

async fn receive(State(receiver): State<Receiver>, Json(body): Json<Value>) -> StatusCode {
    // The very first notification is refused: it must come again.
    if receiver.calls.fetch_add(1, Ordering::SeqCst) == 0 {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    receiver.received.lock().expect("lock").push(body);
    StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_states_reach_the_callback_url_with_retries() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let callback = format!("http://{}/sms-status", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/sms-status", axum::routing::post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.carrier_extra = "registered_delivery = 1".into();
    let daemon = Daemon::start_bound(options).await;

    let (status, problem) = daemon
        .post(
            "/v1/otp/send",
            json!({ "phone": "+31612345678", "callback_url": "ftp://x/y" }),
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem["type"].as_str()),
        (400, Some("urn:otpgate:problem:invalid-callback"))
    );

    let (_, sent) = daemon
        .post(
            "/v1/otp/send",
            json!({ "phone": "+31612345678", "callback_url": callback }),
        )
        .await;
    let id = sent["id"].as_str().expect("id").to_owned();
    // The refused "submitted" comes again after 0.5 s, so it may arrive after "delivered": each
    // notification carries a per-message sequence for the receiver to order them by.
    let mut received = Vec::new();
    for _ in 0..1000 {
        received = receiver.received.lock().expect("lock").clone();
        if received.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    received.sort_by_key(|b| b["sequence"].as_u64());
    let states: Vec<&str> = received
        .iter()
        .map(|b| b["delivery"]["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["submitted", "delivered"], "{received:?}");
    let sequences: Vec<Option<u64>> = received.iter().map(|b| b["sequence"].as_u64()).collect();
    assert_eq!(sequences, [Some(1), Some(2)]);
    assert!(received.iter().all(|b| b["id"] == id.as_str()));
    assert!(received[1]["delivery"]["done_at"].is_string());
    assert_eq!(
        receiver.calls.load(Ordering::SeqCst),
        3,
        "one refusal, then two deliveries"
    );
    daemon.stop().await;
}
