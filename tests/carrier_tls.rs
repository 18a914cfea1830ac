//! SMPP over TLS to the carrier: the daemon verifies the SMSC's certificate against the CA it
//! is told to trust, and refuses one it cannot verify.

mod common;

use std::time::Duration;

use common::{Daemon, Options, sim_config};
use otpgate::metrics as m;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct TlsSim {
    tls: std::net::SocketAddr,
    http: String,
    shutdown: CancellationToken,
}

impl Drop for TlsSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn tls_sim(dir: &std::path::Path) -> TlsSim {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    std::fs::write(dir.join("smsc.crt"), certified.cert.pem()).expect("write cert");
    std::fs::write(dir.join("smsc.key"), certified.signing_key.serialize_pem()).expect("write key");
    let acceptor =
        smsc_sim::tls::acceptor(&dir.join("smsc.crt"), &dir.join("smsc.key")).expect("acceptor");
    let smpp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tls = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (smpp_addr, tls_addr) = (
        smpp.local_addr().expect("addr"),
        tls.local_addr().expect("addr"),
    );
    let http_url = format!("http://{}", http.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    smsc_sim::start(
        sim_config(smpp_addr, ""),
        smsc_sim::Listeners {
            smpp,
            tls: Some((tls, acceptor)),
            http,
        },
        shutdown.clone(),
    );
    TlsSim {
        tls: tls_addr,
        http: http_url,
        shutdown,
    }
}

#[tokio::test]
async fn codes_travel_over_tls_to_a_verified_smsc() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = tls_sim(dir.path()).await;
    let mut options = Options::new(sim.tls);
    options.carrier_extra = format!(
        "tls = true\ntls_ca_file = \"{}\"\ntls_server_name = \"localhost\"",
        dir.path().join("smsc.crt").display()
    );
    let daemon = Daemon::start_bound(options).await;
    daemon.send("+31612345678").await;
    let message: serde_json::Value = reqwest::get(format!(
        "{}/api/messages/latest?to=31612345678&wait_ms=5000",
        sim.http
    ))
    .await
    .expect("simulator answers")
    .json()
    .await
    .expect("message");
    let code = message["otp"].as_str().expect("a code").to_owned();
    assert_eq!(
        daemon.verify("+31612345678", &code).await.1["status"],
        "approved"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn an_smsc_the_daemon_cannot_verify_is_never_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = tls_sim(dir.path()).await;
    // Trust some other CA.
    let stranger =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    std::fs::write(dir.path().join("other.crt"), stranger.cert.pem()).expect("write");
    let mut options = Options::new(sim.tls);
    options.carrier_extra = format!(
        "tls = true\ntls_ca_file = \"{}\"\ntls_server_name = \"localhost\"",
        dir.path().join("other.crt").display()
    );
    let daemon = Daemon::start(options).await;
    let carrier = format!("carrier=\"{}\"", daemon.carrier_name);
    let mut failures = 0.0;
    for _ in 0..500 {
        let (_, metrics) = daemon.get_text("/metrics").await;
        failures = metrics
            .lines()
            .find(|l| l.starts_with(m::SMPP_BIND_FAILURES_TOTAL) && l.contains(&carrier))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0);
        if failures >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        failures >= 1.0,
        "the failed handshake is counted as a bind failure"
    );
    assert!(!daemon.carriers.any_available());
    daemon.stop().await;
}
