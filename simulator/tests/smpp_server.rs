//! The simulator over real sockets: bind rules, submit, malformed input, the tester API, and the
//! real binary.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::BindTransmitter;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::*;

#[tokio::test]
async fn binds_are_checked_against_the_accounts() {
    let sim = start(100).await;
    let mut link = connect(sim.smpp).await;
    assert_eq!(
        request(&mut link, bind(1, "nobody", "pw")).await.status(),
        CommandStatus::EsmeRinvsysid
    );
    assert_eq!(
        request(&mut link, bind(2, "tester", "wrong"))
            .await
            .status(),
        CommandStatus::EsmeRinvpaswd
    );
    assert_eq!(
        request(&mut link, submit(3, "31612345678", 0, b"early".to_vec()))
            .await
            .status(),
        CommandStatus::EsmeRinvbndsts
    );
    let ok = request(&mut link, bind(4, "tester", "pw")).await;
    assert_eq!(
        (ok.id(), ok.status(), ok.sequence_number()),
        (CommandId::BindTransceiverResp, CommandStatus::EsmeRok, 4)
    );
    assert_eq!(
        request(&mut link, bind(5, "tester", "pw")).await.status(),
        CommandStatus::EsmeRalybnd
    );
    let transmitter = Command::new(
        CommandStatus::EsmeRok,
        6,
        BindTransmitter::builder()
            .system_id(c("tester"))
            .password(c("pw"))
            .build(),
    );
    assert_eq!(
        request(&mut link, transmitter).await.status(),
        CommandStatus::EsmeRalybnd
    );
}

#[tokio::test]
async fn submitted_messages_are_decoded_recorded_and_served_to_testers() {
    let sim = start(100).await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let first = request(
        &mut link,
        submit(2, "31612345678", 0, b"Your code is 012345.".to_vec()),
    )
    .await;
    let second = request(
        &mut link,
        submit(
            3,
            "31612345678",
            8,
            vec![
                0x04, 0x1A, 0x00, 0x20, 0x00, 0x34, 0x00, 0x32, 0x00, 0x34, 0x00, 0x32,
            ],
        ),
    )
    .await;
    request(
        &mut link,
        submit(
            4,
            "4915100000000",
            3,
            vec![0xE9, b' ', b'1', b'2', b'3', b'4'],
        ),
    )
    .await;
    let ids: Vec<String> = [first, second]
        .iter()
        .map(|resp| match resp.pdu() {
            Some(Pdu::SubmitSmResp(body)) => body.message_id().as_str().to_owned(),
            other => panic!("expected submit_sm_resp, got {other:?}"),
        })
        .collect();
    assert_ne!(ids[0], ids[1], "message ids are unique");

    let (status, list) = get(format!("{}/api/messages?to=%2B31612345678", sim.http)).await;
    assert_eq!(status, 200);
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["text"], "К 4242", "newest first, UCS-2 decoded");
    assert_eq!(list[0]["otp"], "4242");
    assert_eq!(list[1]["text"], "Your code is 012345.");
    assert_eq!(list[1]["otp"], "012345");
    assert_eq!(list[1]["id"], ids[0]);
    assert_eq!(list[1]["from"], "TEST");
    assert_eq!(list[1]["to"], "+31612345678");
    assert_eq!(list[1]["account"], "tester");

    let (_, limited) = get(format!("{}/api/messages?limit=1", sim.http)).await;
    assert_eq!(limited.as_array().map(Vec::len), Some(1));
    assert_eq!(limited[0]["text"], "é 1234", "Latin-1 decoded");
    let (status, latest) = get(format!("{}/api/messages/latest?to=31612345678", sim.http)).await;
    assert_eq!((status, latest["otp"].as_str()), (200, Some("4242")));
    let (status, missing) = get(format!("{}/api/messages/latest?to=%2B1555", sim.http)).await;
    assert_eq!((status, missing["status"].as_u64()), (404, Some(404)));

    let deleted: Value = reqwest::Client::new()
        .delete(format!("{}/api/messages", sim.http))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(deleted["deleted"], 3);
    let (_, stats) = get(format!("{}/api/stats", sim.http)).await;
    assert_eq!(
        (stats["submits"].as_u64(), stats["messages_stored"].as_u64()),
        (Some(3), Some(0))
    );
}

#[tokio::test]
async fn the_store_evicts_the_oldest_beyond_its_capacity() {
    let sim = start(2).await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    for (seq, text) in [(2, "one"), (3, "two"), (4, "three")] {
        request(
            &mut link,
            submit(seq, "31600000000", 0, text.as_bytes().to_vec()),
        )
        .await;
    }
    let (_, list) = get(format!("{}/api/messages", sim.http)).await;
    let texts: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["three", "two"]);
    let (_, stats) = get(format!("{}/api/stats", sim.http)).await;
    assert_eq!(stats["messages_evicted"], 1);
}

fn raw(length: u32, id: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

#[tokio::test]
async fn malformed_and_unknown_pdus_get_generic_nack_and_the_session_lives_on() {
    let sim = start(100).await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let bad_frames = [
        // submit_sm cut off inside its mandatory fields.
        (
            raw(20, 0x04, 10, b"\0\x01\x01a"),
            CommandStatus::EsmeRinvcmdlen,
        ),
        // A C-string that never ends within its frame.
        (raw(19, 0x04, 11, b"abc"), CommandStatus::EsmeRinvcmdlen),
        // An unknown command id.
        (raw(16, 0x0000_0999, 12, b""), CommandStatus::EsmeRinvcmdid),
    ];
    for (frame, expected) in bad_frames {
        let seq = u32::from_be_bytes([frame[12], frame[13], frame[14], frame[15]]);
        link.get_mut().write_all(&frame).await.expect("write raw");
        let nack = next_command(&mut link).await;
        assert_eq!(
            (nack.id(), nack.sequence_number()),
            (CommandId::GenericNack, seq)
        );
        assert_eq!(nack.status(), expected, "seq {seq}");
    }
    let ok = request(
        &mut link,
        submit(13, "31612345678", 0, b"still here 1234".to_vec()),
    )
    .await;
    assert_eq!(ok.status(), CommandStatus::EsmeRok);
    let (_, stats) = get(format!("{}/api/stats", sim.http)).await;
    assert_eq!(stats["generic_nacks"], 3);
}

#[tokio::test]
async fn a_lying_length_closes_only_that_session() {
    let sim = start(100).await;
    let mut other = connect(sim.smpp).await;
    request(&mut other, bind(1, "tester", "pw")).await;
    for length in [8u32, 1_000_000] {
        let mut stream = TcpStream::connect(sim.smpp).await.expect("connect");
        stream
            .write_all(&raw(length, 0x15, 1, b""))
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "length {length}: the session is closed"
        );
    }
    let enquire = request(
        &mut other,
        Command::new(CommandStatus::EsmeRok, 2, Pdu::EnquireLink),
    )
    .await;
    assert_eq!(enquire.id(), CommandId::EnquireLinkResp);
}

#[tokio::test]
async fn unbind_is_answered_and_counted() {
    let sim = start(100).await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let resp = request(
        &mut link,
        Command::new(CommandStatus::EsmeRok, 2, Pdu::Unbind),
    )
    .await;
    assert_eq!(
        (resp.id(), resp.status()),
        (CommandId::UnbindResp, CommandStatus::EsmeRok)
    );
    assert!(
        tokio::time::timeout(PATIENCE, link.next())
            .await
            .expect("closed in time")
            .is_none()
    );
    let (_, stats) = get(format!("{}/api/stats", sim.http)).await;
    assert_eq!(
        (stats["binds"].as_u64(), stats["unbinds"].as_u64()),
        (Some(1), Some(1))
    );
}

/// The `addr=` of the first log line containing `needle`.
async fn address_in_log(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    needle: &str,
) -> SocketAddr {
    while let Some(line) = lines.next_line().await.expect("read log") {
        if line.contains(needle) {
            let addr = line
                .split("addr=")
                .nth(1)
                .expect("addr")
                .split_whitespace()
                .next()
                .expect("addr");
            return addr.parse().expect("socket address");
        }
    }
    panic!("no {needle:?} line");
}

#[tokio::test]
async fn the_binary_serves_from_its_config_and_exits_0_on_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let dir = std::env::temp_dir().join(format!("smsc-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("sim.toml");
    std::fs::write(
        &config,
        "[smpp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[[accounts]]\nsystem_id = \"tester\"\npassword = \"pw\"\n",
    )
    .expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_smsc-sim"))
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start smsc-sim");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let smpp = tokio::time::timeout(PATIENCE, address_in_log(&mut lines, "smpp listening"))
        .await
        .expect("smpp line");
    let http = tokio::time::timeout(PATIENCE, address_in_log(&mut lines, "http listening"))
        .await
        .expect("http line");
    let mut link = connect(smpp).await;
    request(&mut link, bind_transmitter(1, "tester", "pw")).await;
    request(
        &mut link,
        submit(2, "31612345678", 0, b"code 987654".to_vec()),
    )
    .await;
    let (_, latest) = get(format!("http://{http}/api/messages/latest?to=31612345678")).await;
    assert_eq!(latest["otp"], "987654");

    // The human CLI reads the same inbox and injects MO.
    let sim_cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_smsc-sim"))
            .args(args)
            .output()
            .expect("run smsc-sim")
    };
    let url = format!("http://{http}");
    let inbox = sim_cli(&["inbox", "--url", &url, "--to", "+31612345678"]);
    let printed = String::from_utf8_lossy(&inbox.stdout);
    assert!(
        inbox.status.success()
            && printed.contains("TEST -> +31612345678")
            && printed.contains("[987654]"),
        "{printed}"
    );
    // The same MO, tried before and after a receiver binds.
    let send_mo = || {
        sim_cli(&[
            "mo",
            "--url",
            &url,
            "--from",
            "+31612345678",
            "--to",
            "TEST",
            "--text",
            "hi",
        ])
    };
    let refused = send_mo();
    assert!(!refused.status.success(), "no receiver is bound yet");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no receiver"),
        "{refused:?}"
    );
    let mut receiver = connect(smpp).await;
    request(&mut receiver, bind_receiver(1, "tester", "pw")).await;
    let sent = send_mo();
    assert!(sent.status.success(), "{sent:?}");
    let (_, deliver) = next_deliver_sm(&mut receiver).await;
    assert_eq!(deliver.short_message().as_ref(), b"hi");

    let pid = child.id().expect("running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    // A graceful SMSC asks its ESMEs to unbind first.
    let unbind = next_command(&mut link).await;
    assert_eq!(unbind.id(), CommandId::Unbind);
    link.send(&Command::new(
        CommandStatus::EsmeRok,
        unbind.sequence_number(),
        Pdu::UnbindResp,
    ))
    .await
    .expect("answer");
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(
        tokio::time::timeout(PATIENCE, link.next())
            .await
            .expect("closed")
            .is_none()
    );
    let _ = std::fs::remove_dir_all(dir);
}
