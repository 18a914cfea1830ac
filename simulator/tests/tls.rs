//! SMPP over TLS (rustls): an ESME that trusts the simulator's certificate binds and submits;
//! plaintext on the TLS port fails its handshake without hurting anyone.

mod common;

use std::sync::Arc;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rusmpp::CommandStatus;
use rustls::pki_types::{CertificateDer, ServerName};
use smpp_wire::{Frame, FrameCodec};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn an_esme_binds_and_submits_over_tls() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let dir = std::env::temp_dir().join(format!("smsc-sim-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");

    let missing = smsc_sim::tls::acceptor(&dir.join("nope.pem"), &key_path)
        .err()
        .expect("a missing file is an error");
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
    let acceptor = smsc_sim::tls::acceptor(&cert_path, &key_path).expect("acceptor");

    let smpp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tls = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tls_addr = tls.local_addr().expect("addr");
    let http_url = format!("http://{}", http.local_addr().expect("addr"));
    let text = format!(
        "[smpp]\nlisten = \"{}\"\n[http]\nlisten = \"{http_url}\"\n[[accounts]]\nsystem_id = \"tester\"\npassword = \"pw\"\n",
        smpp.local_addr().expect("addr")
    )
    .replace("http://", "");
    let config =
        smsc_sim::Config::from_toml(&text, std::path::Path::new("t.toml")).expect("config");
    let shutdown = CancellationToken::new();
    let _running = smsc_sim::start(
        config,
        smsc_sim::Listeners {
            smpp,
            tls: Some((tls, acceptor)),
            http,
        },
        shutdown.clone(),
    );

    // Plaintext SMPP on the TLS port: the handshake fails, the connection closes.
    let mut plain = TcpStream::connect(tls_addr).await.expect("connect");
    plain
        .write_all(&bind(1, "tester", "pw").sequence_number().to_be_bytes())
        .await
        .expect("write");
    plain
        .write_all(b"not a TLS client hello")
        .await
        .expect("write");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut sink),
    )
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(certified.cert.der().to_vec()))
        .expect("trust the test certificate");
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = TcpStream::connect(tls_addr).await.expect("connect");
    let stream = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let mut link = Framed::new(stream, FrameCodec::new(65_536));
    for command in [
        bind(1, "tester", "pw"),
        submit(2, "31612345678", 0, b"tls code 8080".to_vec()),
    ] {
        link.send(&command).await.expect("send");
        match tokio::time::timeout(PATIENCE, link.next())
            .await
            .expect("answer")
        {
            Some(Ok(Frame::Command(answer))) => {
                assert_eq!(answer.status(), CommandStatus::EsmeRok, "{:?}", answer.id())
            }
            other => panic!("expected an answer, got {other:?}"),
        }
    }
    let (_, message) = get(format!("{http_url}/api/messages/latest?to=31612345678")).await;
    assert_eq!(message["otp"], "8080");
    let (_, stats) = get(format!("{http_url}/api/stats")).await;
    assert_eq!(
        stats["binds"], 1,
        "the plaintext client never bound; the TLS one did"
    );
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(dir);
}
