//! The pcap export, read back by tshark (Debian `tshark`) as SMPP: over the tester API (all
//! sessions, or one) and through `smsc-sim pcap`. Under CI=true a missing tshark fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use common::*;
use futures_util::SinkExt;
use rusmpp::pdus::DeliverSmResp;
use rusmpp::{Command, CommandStatus, Pdu};
use serde_json::Value;

/// tshark's path, or None (outside CI) to skip.
fn tshark() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tshark"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tshark is missing (apt-get install tshark); CI=true requires it"
        );
        eprintln!("skipped: tshark is not installed");
    }
    found
}

/// A file in the temp folder, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!(
            "smsc-sim-{}-{name}-{}.pcap",
            std::process::id(),
            fastrand_suffix()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// `tshark -r file -d tcp.port==PORT,smpp -Y filter -T fields -e ...`, one Vec per packet.
fn tshark_fields(
    tshark: &Path,
    file: &Path,
    port: u16,
    filter: &str,
    fields: &[&str],
) -> Vec<Vec<String>> {
    let mut command = Process::new(tshark);
    command
        .arg("-r")
        .arg(file)
        .args(["-d", &format!("tcp.port=={port},smpp")])
        .args([
            "-Y",
            filter,
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = command.output().expect("tshark runs");
    assert!(
        output.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.split('|').map(str::to_owned).collect())
        .collect()
}

/// The SMPP command_ids tshark reads, in order, flattening packets that carry several PDUs.
fn command_ids(tshark: &Path, file: &Path, port: u16, filter: &str) -> Vec<String> {
    tshark_fields(tshark, file, port, filter, &["smpp.command_id"])
        .into_iter()
        .flat_map(|packet| packet[0].split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

async fn download(sim: &Sim, path: &str, file: &Path) {
    let response = sim
        .client
        .get(format!("{}{path}", sim.http))
        .send()
        .await
        .expect("HTTP answers");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/vnd.tcpdump.pcap")
    );
    let bytes = response.bytes().await.expect("body");
    std::fs::write(file, &bytes).expect("write pcap");
}

#[tokio::test]
async fn tshark_decodes_the_export_as_smpp_per_session_and_for_all() {
    let Some(tshark) = tshark() else { return };
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let (_, mut receipts) = request_with_deliveries(
        &mut link,
        submit_with(2, "31612345678", 0, b"code 4711".to_vec(), 1),
    )
    .await;
    if receipts.is_empty() {
        receipts.push(next_deliver_sm(&mut link).await.1);
    }
    // The receipt's sequence number: the simulator numbers its own requests from 1.
    link.send(&Command::new(
        CommandStatus::EsmeRok,
        1,
        DeliverSmResp::default(),
    ))
    .await
    .expect("ack");
    request(
        &mut link,
        Command::new(CommandStatus::EsmeRok, 3, Pdu::Unbind),
    )
    .await;
    // A second session that only binds and fails.
    let mut other = connect(sim.smpp).await;
    request(&mut other, bind(1, "tester", "wrong")).await;

    let (_, sessions) = sim.get("/api/sessions").await;
    let sessions = sessions.as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let first: &Value = &sessions[0];
    assert_eq!(first["account"], "tester");
    assert!(first["bytes"].as_u64().unwrap_or(0) > 0);
    let id = first["id"].as_u64().expect("an id");

    let port = sim.smpp.port();
    let one = TempFile::new("one");
    download(&sim, &format!("/api/pcap?session={id}"), &one.0).await;
    assert_eq!(
        command_ids(&tshark, &one.0, port, "smpp"),
        [
            "0x00000009", // bind_transceiver
            "0x80000009",
            "0x00000004", // submit_sm
            "0x80000004",
            "0x00000005", // deliver_sm (the receipt)
            "0x80000005",
            "0x00000006", // unbind
            "0x80000006",
        ]
        .map(str::to_owned)
        .to_vec()
    );
    // The submit's fields, as tshark reads them from our synthesised segments.
    let submit = tshark_fields(
        &tshark,
        &one.0,
        port,
        "smpp.command_id == 0x00000004",
        &[
            "smpp.destination_addr",
            "smpp.sequence_number",
            "tcp.dstport",
        ],
    );
    assert_eq!(
        submit,
        [vec![
            "31612345678".to_owned(),
            "2".to_owned(),
            port.to_string()
        ]]
    );
    // Sequence and acknowledgement numbers are consistent: no TCP analysis warnings.
    assert!(
        tshark_fields(
            &tshark,
            &one.0,
            port,
            "tcp.analysis.flags",
            &["frame.number"]
        )
        .is_empty(),
        "tshark found TCP problems"
    );

    let all = TempFile::new("all");
    download(&sim, "/api/pcap", &all.0).await;
    let ids = command_ids(&tshark, &all.0, port, "smpp");
    assert_eq!(ids.len(), 10, "both sessions: {ids:?}");
    let streams = tshark_fields(
        &tshark,
        &all.0,
        port,
        "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        &["tcp.stream"],
    );
    assert_eq!(streams.len(), 2, "one TCP stream per session");

    let (status, problem) = sim.get("/api/pcap?session=424242").await;
    assert_eq!((status, problem["status"].as_u64()), (404, Some(404)));
}

#[tokio::test]
async fn the_cli_writes_the_pcap_file() {
    let Some(tshark) = tshark() else { return };
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    request(&mut link, submit(2, "31612345678", 0, b"code 1".to_vec())).await;
    let file = TempFile::new("cli");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_smsc-sim"))
        .args(["pcap", "--url", &sim.http, "--output"])
        .arg(&file.0)
        .output()
        .await
        .expect("smsc-sim runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("wrote "));
    let ids = command_ids(&tshark, &file.0, sim.smpp.port(), "smpp");
    assert_eq!(
        ids,
        ["0x00000009", "0x80000009", "0x00000004", "0x80000004"]
    );
    // An unknown session is an error with the API's reason.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_smsc-sim"))
        .args([
            "pcap",
            "--url",
            &sim.http,
            "--session",
            "999999",
            "--output",
        ])
        .arg(&file.0)
        .output()
        .await
        .expect("smsc-sim runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no such session"));
}
