//! A corpus of malformed PDUs, each sent on its own connection, leaves the simulator serving a
//! bystander session and new ones. Every answer is a generic_nack, an error response or a close.

mod common;

use std::time::Duration;

use common::*;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn header(length: u32, id: u32, seq: u32) -> Vec<u8> {
    [length, id, 0, seq]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn frame(id: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut out = header(16 + body.len() as u32, id, seq);
    out.extend_from_slice(body);
    out
}

/// A bind_transceiver body for tester/pw.
fn bind_body() -> Vec<u8> {
    b"tester\0pw\0\0\x34\x00\x00\0".to_vec()
}

/// submit_sm fields up to sm_length, then `rest` (the short message, TLVs, or too little).
fn submit_body(sm_length: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = b"\0\x05\x00TEST\0\x01\x01316123\0\x00\x00\x00\0\0\x00\x00\x00\x00".to_vec();
    body.push(sm_length);
    body.extend_from_slice(rest);
    body
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let bound = |rest: Vec<u8>| {
        let mut bytes = frame(0x09, 1, &bind_body());
        bytes.extend(rest);
        bytes
    };
    let mut entries = vec![
        ("truncated header", header(16, 0x15, 1)[..10].to_vec()),
        ("length below the header", header(12, 0x15, 1)),
        ("length of zero", header(0, 0x15, 1)),
        ("length far above the maximum", header(u32::MAX, 0x04, 1)),
        ("length claims more than arrives", {
            let mut bytes = header(1000, 0x04, 1);
            bytes.extend_from_slice(&[0u8; 40]);
            bytes
        }),
        ("length claims less than the body", {
            let mut bytes = header(16, 0x09, 1);
            bytes.extend_from_slice(&bind_body());
            bytes
        }),
        (
            "bind with an unterminated system_id",
            frame(0x09, 1, b"testertestertestertester"),
        ),
        (
            "bind with non-ASCII system_id",
            frame(0x09, 1, b"\xff\xfe\0pw\0\0\x34\0\0\0"),
        ),
        ("unknown command id", frame(0x0000_7777, 1, b"")),
        (
            "response id nobody asked for",
            frame(0x8000_0004, 1, b"1\0"),
        ),
        (
            "submit_sm with sm_length past the frame",
            bound(frame(0x04, 2, &submit_body(200, b"short"))),
        ),
        (
            "submit_sm with an unknown TLV",
            bound(frame(0x04, 2, &submit_body(2, b"hi\x14\x00\x00\x02ab"))),
        ),
        (
            "submit_sm with a TLV longer than the frame",
            bound(frame(0x04, 2, &submit_body(2, b"hi\x04\x24\x01\x00ab"))),
        ),
        (
            "submit_sm with a bad C-string address",
            bound(frame(0x04, 2, b"\0\x05\x00TE\xffST\0")),
        ),
        ("enquire_link with a body", frame(0x15, 1, b"unexpected")),
    ];
    // Random garbage, seeded so a failure reproduces.
    let mut rng = fastrand::Rng::with_seed(0x5EED);
    for _ in 0..50 {
        let length = rng.usize(0..64);
        let mut bytes: Vec<u8> = (0..length).map(|_| rng.u8(..)).collect();
        if rng.bool() && bytes.len() >= 4 {
            // A plausible length field makes the decoder look further.
            let declared = (bytes.len() as u32).to_be_bytes();
            bytes[..4].copy_from_slice(&declared);
        }
        entries.push(("random bytes", bytes));
    }
    entries
}

/// Every answer on a connection that got `bytes`, until it closes or goes quiet.
async fn answers_to(sim: &Sim, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(sim.smpp).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    answer
}

#[tokio::test]
async fn no_malformed_pdu_hurts_other_sessions() {
    let sim = start_with("").await;
    let mut bystander = connect(sim.smpp).await;
    request(&mut bystander, bind(1, "tester", "pw")).await;
    let mut seq = 1;
    for (name, bytes) in corpus() {
        let answer = answers_to(&sim, &bytes).await;
        // What came back is whole SMPP frames, each an answer the spec allows.
        let mut rest = &answer[..];
        while rest.len() >= 16 {
            let length = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            assert!(
                length >= 16 && length <= rest.len(),
                "{name}: cut answer {answer:?}"
            );
            let id = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
            assert!(
                id & 0x8000_0000 != 0,
                "{name}: the simulator only answers, got command_id {id:#x}"
            );
            rest = &rest[length..];
        }
        assert!(rest.is_empty(), "{name}: trailing bytes {rest:?}");
        seq += 1;
        let pong = request(
            &mut bystander,
            Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink),
        )
        .await;
        assert_eq!(
            pong.id(),
            CommandId::EnquireLinkResp,
            "bystander after {name}"
        );
    }
    let mut fresh = connect(sim.smpp).await;
    assert_eq!(
        request(&mut fresh, bind(1, "tester", "pw")).await.status(),
        CommandStatus::EsmeRok
    );
    let accepted = request(
        &mut fresh,
        submit(2, "31612345678", 0, b"still fine".to_vec()),
    )
    .await;
    assert_eq!(accepted.status(), CommandStatus::EsmeRok);
    let (_, stats) = sim.get("/api/stats").await;
    assert!(stats["generic_nacks"].as_u64().unwrap_or(0) >= 5, "{stats}");
}
