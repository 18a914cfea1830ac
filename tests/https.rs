//! HTTPS on the API listener: `[server.tls]` serves the API over rustls with the configured
//! certificate; a plain HTTP request to that port gets no API answer; a client that opens a
//! socket and never says hello is cut off at the header deadline; a bad certificate file is a
//! configuration error that names its setting.

mod common;

use std::net::SocketAddr;

use common::{Daemon, Options, Sim};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

struct Tls {
    _dir: tempfile::TempDir,
    sections: String,
    ca: reqwest::Certificate,
}

/// A self-signed certificate for `localhost` in files the config names.
fn certificate() -> Tls {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert_path = dir.path().join("api.crt");
    let key_path = dir.path().join("api.key");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    let sections = format!(
        "\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let ca = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("CA");
    Tls {
        _dir: dir,
        sections,
        ca,
    }
}

fn addr(daemon: &Daemon) -> SocketAddr {
    daemon
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("daemon address")
}

#[tokio::test]
async fn the_api_is_served_over_https_and_plain_http_gets_no_answer() {
    let sim = Sim::start().await;
    let tls = certificate();
    let mut options = Options::new(sim.smpp);
    options.sections = tls.sections.clone();
    options.server_extra = "header_read_timeout_seconds = 1".into();
    let daemon = Daemon::start_bound(options).await;
    let addr = addr(&daemon);
    let https = reqwest::Client::builder()
        .add_root_certificate(tls.ca.clone())
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .build()
        .expect("client");
    let base = format!("https://localhost:{}", addr.port());

    let response = https
        .post(format!("{base}/v1/otp/send"))
        .bearer_auth(common::API_KEY)
        .json(&json!({ "phone": "+31611223344" }))
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let code = sim.code_for("+31611223344").await;
    let response = https
        .post(format!("{base}/v1/otp/verify"))
        .bearer_auth(common::API_KEY)
        .json(&json!({ "phone": "+31611223344", "code": code }))
        .send()
        .await
        .expect("an HTTPS answer");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["status"], "approved");

    // Plain HTTP on the TLS port: no HTTP answer (the handshake fails, the socket closes).
    let plain = daemon
        .client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // A client that trusts another CA refuses the daemon's certificate.
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(certificate().ca)
        .resolve("localhost", addr)
        .build()
        .expect("client");
    assert!(
        stranger
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );

    // A socket that never says hello is closed at the header deadline (1 s), bounded here.
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("the daemon closes a silent socket");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // The API still answers.
    let health = https
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("HTTPS");
    assert_eq!(health.status(), StatusCode::OK);
    daemon.stop().await;
}

#[test]
fn an_unreadable_certificate_is_a_config_error_naming_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = certificate();
    let mut options = Options::new("127.0.0.1:1".parse().expect("addr"));
    // The key file is not a key.
    options.sections = tls.sections.replace("api.key", "api.crt");
    let path = common::write_daemon_config(dir.path(), &options, "c", "127.0.0.1:0");
    let err = otpgate::config::Config::load(&path).expect_err("a certificate is not a key");
    let text = err.to_string();
    assert!(text.contains("server.tls"), "{text}");
    assert!(text.contains("private key"), "{text}");
}
