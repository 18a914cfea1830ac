//! Clients nobody here wrote, against the simulator. python smpplib (PyPI, installed by
//! `.ci/run`) binds, sends a short GSM message and a long UCS-2 message it splits itself, and
//! receives a receipt for every part.

mod common;

use std::path::Path;
use std::process::Command as Process;

use common::*;
use serde_json::Value;

fn smpplib_available() -> bool {
    let found = Process::new("python3")
        .args(["-c", "import smpplib"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("CI").is_some() {
        panic!("python3 with smpplib is required under CI (pip install smpplib)");
    }
    if !found {
        eprintln!(
            "SKIPPED smpplib interop: python3 -c 'import smpplib' failed (pip install smpplib)"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpplib_submits_short_and_long_ucs2_messages_and_gets_every_receipt() {
    if !smpplib_available() {
        return;
    }
    let sim = start_with("").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/smpplib_client.py");
    let (host, port) = (sim.smpp.ip().to_string(), sim.smpp.port().to_string());
    let output = tokio::task::spawn_blocking(move || {
        Process::new("python3")
            .arg(script)
            .args([&host, &port, "31612345678", "31612345679"])
            .output()
    })
    .await
    .expect("join")
    .expect("run python3");
    assert!(
        output.status.success(),
        "smpplib client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON summary");

    let parts_sent = summary["parts_sent"].as_u64().expect("count") as usize;
    assert!(parts_sent >= 3, "the long message was split: {summary}");
    let submitted: Vec<&str> = summary["submitted"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(submitted.len(), parts_sent, "every part got a message_id");
    let receipts = summary["receipts"].as_array().expect("receipts");
    assert_eq!(
        receipts.len(),
        parts_sent,
        "a receipt for every part: {summary}"
    );
    for receipt in receipts {
        assert_eq!(receipt["esm_class"], 4);
        let id = receipt["receipted_message_id"].as_str().expect("id");
        assert!(submitted.contains(&id), "receipt for {id} matches a submit");
        assert!(
            receipt["text"]
                .as_str()
                .is_some_and(|t| t.contains("stat:DELIVRD"))
        );
    }

    let (_, short) = sim.get("/api/messages/latest?to=31612345678").await;
    assert_eq!(short["text"], summary["short_text"]);
    assert_eq!(short["otp"], "123456");
    let (_, long) = sim.get("/api/messages/latest?to=31612345679").await;
    assert_eq!(
        long["text"], summary["long_text"],
        "reassembled from smpplib's UDH parts"
    );
    assert_eq!(long["data_coding"], 8);
    assert_eq!(long["parts"].as_array().map(Vec::len), Some(parts_sent - 1));
}
