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

/// What one POST brought: its headers and raw body.
type Post = (axum::http::HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Recorder {
    posts: Arc<Mutex<Vec<Post>>>,
}

async fn record(
    State(recorder): State<Recorder>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    recorder
        .posts
        .lock()
        .expect("lock")
        .push((headers, body.to_vec()));
    StatusCode::NO_CONTENT
}

/// A receiver on 127.0.0.1; returns its port.
async fn recorder() -> (Recorder, u16) {
    let recorder = Recorder::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new()
        .route("/cb", axum::routing::post(record))
        .with_state(recorder.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (recorder, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_to_private_addresses_are_refused_at_request_and_at_connect_time() {
    let (recorder, port) = recorder().await;
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    // The shipped default: no host opened.
    options.sections = "[callbacks]\nmax_attempts = 1\n".into();
    let daemon = Daemon::start_bound(options).await;
    for url in [
        format!("http://127.0.0.1:{port}/cb"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]/cb".to_owned(),
        "http://10.0.0.8/cb".to_owned(),
    ] {
        let (status, problem) = daemon
            .post(
                "/v1/otp/send",
                json!({ "phone": "+31612345678", "callback_url": url }),
            )
            .await;
        assert_eq!(status.as_u16(), 400, "{url}: {problem}");
        assert_eq!(problem["type"], "urn:otpgate:problem:invalid-callback");
    }
    // A name is checked on what it resolves to, when the callback connects: localhost is
    // 127.0.0.1, so the POST never leaves.
    let (status, sent) = daemon
        .post(
            "/v1/otp/send",
            json!({ "phone": "+31612345670", "callback_url": format!("http://localhost:{port}/cb?token=secret") }),
        )
        .await;
    assert_eq!(status.as_u16(), 202, "{sent}");
    let mut failed = None;
    for _ in 0..1000 {
        let (_, metrics) = daemon.get_text("/metrics").await;
        failed = common::sample(
            &metrics,
            otpgate::metrics::WEBHOOKS_TOTAL,
            &[("result", "failed")],
        );
        if failed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(failed >= Some(1.0), "the callback was never given up");
    assert!(
        recorder.posts.lock().expect("lock").is_empty(),
        "a POST reached 127.0.0.1"
    );
    daemon.stop().await;
}

/// Verifies a Standard Webhooks signature as a receiver would (the spec's algorithm, written
/// out here rather than taken from the daemon).
fn verifies(secret: &[u8], headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let signed = format!("{}.{}.", header("webhook-id"), header("webhook-timestamp"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("key");
    mac.update(signed.as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header("webhook-signature")
        .split(' ')
        .any(|sig| sig == format!("v1,{expected}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_signed_with_the_clients_secret_in_the_standard_webhooks_format() {
    let (recorder, port) = recorder().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (client_secret, default_secret) = ([7u8; 32], [9u8; 32]);
    let write = |name: &str, bytes: &[u8]| {
        use base64::Engine;
        let path = dir.path().join(name);
        let text = format!(
            "whsec_{}\n",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
        std::fs::write(&path, text).expect("write secret");
        path
    };
    let (client_file, default_file) = (
        write("client", &client_secret),
        write("default", &default_secret),
    );
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.carrier_extra = "registered_delivery = 1".into();
    options.sections = format!(
        "[callbacks]\nprivate_hosts = [\"127.0.0.1\"]\nsecret_file = \"{}\"\n\
         [[api.clients]]\nname = \"signed\"\nkey_sha256 = \"{}\"\nscopes = [\"otp:send\"]\n\
         webhook_secret_file = \"{}\"\n",
        default_file.display(),
        otpgate::config::clients::hex(&otpgate::config::clients::key_sha256("signed-key-0123")),
        client_file.display(),
    );
    let daemon = Daemon::start_bound(options).await;
    let callback = format!("http://127.0.0.1:{port}/cb");
    let (status, sent) = daemon
        .post_with(
            "signed-key-0123",
            "/v1/otp/send",
            json!({ "phone": "+31612345678", "callback_url": callback }),
        )
        .await;
    assert_eq!(status.as_u16(), 202, "{sent}");
    // A client without a secret of its own signs with the default one.
    let (status, _) = daemon
        .post(
            "/v1/otp/send",
            json!({ "phone": "+31612345679", "callback_url": callback }),
        )
        .await;
    assert_eq!(status.as_u16(), 202);
    let mut posts = Vec::new();
    for _ in 0..1000 {
        posts = recorder.posts.lock().expect("lock").clone();
        if posts.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(posts.len(), 4, "submitted and delivered for each");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    for (headers, body) in &posts {
        let value: Value = serde_json::from_slice(body).expect("JSON body");
        let ours = value["id"] == sent["id"];
        let secret: &[u8] = if ours {
            &client_secret
        } else {
            &default_secret
        };
        assert!(verifies(secret, headers, body), "{headers:?}");
        let other: &[u8] = if ours {
            &default_secret
        } else {
            &client_secret
        };
        assert!(!verifies(other, headers, body));
        let stamp: u64 = headers["webhook-timestamp"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!(stamp.abs_diff(now) < 60);
        let id = headers["webhook-id"].to_str().expect("ascii");
        assert_eq!(
            id,
            format!(
                "{}-{}",
                value["id"].as_str().expect("id"),
                value["sequence"]
            )
        );
        // A tampered body does not verify.
        assert!(!verifies(
            secret,
            headers,
            &[body.as_slice(), b" "].concat()
        ));
    }
    daemon.stop().await;
}
