//! otpgate against an SMSC nobody here wrote: node-smpp's server (npm `smpp`, installed by
//! `.ci/run` into .ci/node). It decodes our submit_sm (single and UDH multipart, GSM and UCS-2)
//! and we decode its receipts.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::{Daemon, Options, PATIENCE, SMS_KEY};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// The next JSON line node printed.
async fn next(lines: &mut Lines) -> Value {
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("node printed in time");
    serde_json::from_str(&line.expect("read").expect("a line")).expect("JSON")
}

fn node_modules() -> Option<PathBuf> {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/node/node_modules");
    if local.join("smpp").is_dir() {
        return Some(local);
    }
    if std::env::var_os("CI").is_some() {
        panic!("node-smpp is required under CI (npm install --prefix .ci/node smpp)");
    }
    eprintln!(
        "SKIPPED node-smpp interop: .ci/node/node_modules/smpp missing (npm install --prefix .ci/node smpp@0.5.1)"
    );
    None
}

#[tokio::test]
async fn a_foreign_smsc_takes_our_messages_and_we_take_its_receipts() {
    let Some(modules) = node_modules() else {
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node_smsc.js");
    let mut node = Command::new("node")
        .arg(script)
        .env("NODE_PATH", modules)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let port = next(&mut lines).await["port"].as_u64().expect("port") as u16;

    let mut options = Options::new(format!("127.0.0.1:{port}").parse().expect("addr"));
    options.carrier_extra = "registered_delivery = 1".into();
    let daemon = Daemon::start_bound(options).await;

    let (_, sent) = daemon.send("+31612345678").await;
    let seen = next(&mut lines).await;
    assert_eq!(
        (
            seen["to"].as_str(),
            seen["dest_ton"].as_u64(),
            seen["from"].as_str()
        ),
        (Some("31612345678"), Some(1), Some("OTPGATE"))
    );
    assert_eq!(
        (seen["data_coding"].as_u64(), seen["esm_class"].as_u64()),
        (Some(0), Some(0))
    );
    let text = seen["text"].as_str().expect("text");
    let code: String = text.chars().filter(char::is_ascii_digit).take(6).collect();
    assert_eq!(
        text,
        format!("Your verification code is {code}. It expires in 5 minutes.")
    );
    assert_eq!(
        daemon.verify("+31612345678", &code).await.1["status"],
        "approved"
    );
    // node's receipt (text and receipted_message_id TLV) matched our message.
    let record = daemon
        .wait_for_delivery(sent["id"].as_str().expect("id"), "delivered")
        .await;
    assert_eq!(record["delivery"]["message_id"], seen["id"]);

    // A long UCS-2 text in UDH parts: node decodes each part; joined, they are the text.
    let long = format!("Ваша посылка в пути 😀 {}", "ж".repeat(100));
    let (_, sent) = daemon
        .post_with(
            SMS_KEY,
            "/v1/sms",
            json!({ "to": "+31612345679", "text": long }),
        )
        .await;
    let parts = sent["parts"].as_u64().expect("parts") as usize;
    assert!(parts >= 2);
    let mut received = Vec::new();
    for _ in 0..parts {
        received.push(next(&mut lines).await);
    }
    received.sort_by_key(|part| part["udh"].as_str().map(str::to_owned));
    let joined: String = received
        .iter()
        .map(|part| part["text"].as_str().expect("text"))
        .collect();
    assert_eq!(joined, long);
    assert!(
        received
            .iter()
            .all(|part| part["data_coding"] == 8 && part["esm_class"] == 0x40)
    );
    let record = daemon
        .wait_for_delivery(sent["id"].as_str().expect("id"), "delivered")
        .await;
    assert_eq!(record["delivery"]["parts"], parts);
    daemon.stop().await;
}
