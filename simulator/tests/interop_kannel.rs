//! Kannel (Debian `kannel`, installed by `.ci/run`) against the simulator: bearerbox binds as a
//! transceiver, smsbox's sendsms submits a short GSM message and a long UCS-2 message that Kannel
//! splits itself, and Kannel reports delivery to our dlr-url after the simulator's receipts.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command as Process};
use tokio::sync::mpsc;

/// A port the OS reports free. Kannel cannot listen on port 0 and tell us the port, so this is
/// the one place a port is chosen before use; the window for a clash is tiny.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn kannel_available() -> bool {
    let found = std::process::Command::new("bearerbox")
        .arg("--version")
        .output()
        .is_ok();
    if !found && std::env::var_os("CI").is_some() {
        panic!("Kannel's bearerbox is required under CI (apt-get install kannel)");
    }
    if !found {
        eprintln!("SKIPPED Kannel interop: bearerbox not found (apt-get install kannel)");
    }
    found
}

fn spawn(program: &str, config: &Path) -> Child {
    Process::new(program)
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("start {program}: {err}"))
}

/// Accepts Kannel's dlr-url calls and forwards each request line.
async fn dlr_receiver() -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                if let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send(line);
                }
                let _ = write
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, rx)
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kannel_submits_short_and_long_ucs2_messages_and_reports_delivery() {
    if !kannel_available() {
        return;
    }
    let sim = start_with("").await;
    let (dlr_port, mut dlrs) = dlr_receiver().await;
    let (admin, smsbox, sendsms) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("kannel-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("kannel.conf");
    std::fs::write(
        &config,
        format!(
            r#"group = core
admin-port = {admin}
admin-password = adminpw
smsbox-port = {smsbox}
log-level = 1
log-file = "{dir}/bearerbox.log"
dlr-storage = internal
box-allow-ip = 127.0.0.1

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {smpp}
transceiver-mode = true
smsc-username = tester
smsc-password = pw
system-type = ""
source-addr-ton = 5
source-addr-npi = 0
dest-addr-ton = 1
dest-addr-npi = 1
msg-id-type = 0x03

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
log-level = 1
log-file = "{dir}/smsbox.log"

group = sendsms-user
username = tester
password = sendpw
max-messages = 10
concatenation = true
"#,
            dir = dir.display(),
            smpp = sim.smpp.port(),
        ),
    )
    .expect("write kannel.conf");
    let _bearerbox = spawn("bearerbox", &config);

    // Kannel is an outside process: wait (bounded) for its bind and its HTTP port.
    let mut bound = false;
    for _ in 0..200 {
        if sim.get("/api/stats").await.1["binds"] == 1 {
            bound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bound, "bearerbox never bound");
    let _smsbox = spawn("smsbox", &config);
    let long = ("Ваш код подтверждения 654321. ".repeat(4))
        .trim()
        .to_owned();
    let dlr_url = percent_encode(&format!("http://127.0.0.1:{dlr_port}/dlr?status=%d&to=%p"));
    let send = |to: &str, text: &str, coding: &str| {
        format!(
            "http://127.0.0.1:{sendsms}/cgi-bin/sendsms?username=tester&password=sendpw&from=KANNEL&to={to}\
             &text={}&coding={coding}&charset=UTF-8&dlr-mask=3&dlr-url={dlr_url}",
            percent_encode(text)
        )
    };
    let mut accepted = false;
    for _ in 0..200 {
        if let Ok(response) = sim
            .client
            .get(send("31612345678", "Your code is 123456", "0"))
            .send()
            .await
        {
            assert_eq!(response.status(), 202, "{:?}", response.text().await);
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(accepted, "smsbox never listened");
    let response = sim
        .client
        .get(send("31612345679", &long, "2"))
        .send()
        .await
        .expect("sendsms");
    assert_eq!(response.status(), 202);

    let (_, short) = sim
        .get("/api/messages/latest?to=31612345678&wait_ms=10000")
        .await;
    assert_eq!(
        (short["text"].as_str(), short["otp"].as_str()),
        (Some("Your code is 123456"), Some("123456"))
    );
    let (_, whole) = sim
        .get("/api/messages/latest?to=31612345679&wait_ms=10000")
        .await;
    assert_eq!(
        whole["text"].as_str(),
        Some(long.as_str()),
        "reassembled from Kannel's parts: {whole}"
    );
    assert_eq!(whole["data_coding"], 8);
    assert!(
        whole["parts"].as_array().is_some_and(|p| p.len() >= 2),
        "{whole}"
    );

    // Kannel matched the simulator's receipts to its messages and reports them delivered (1).
    let mut delivered = Vec::new();
    while delivered.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(15), dlrs.recv())
            .await
            .expect("a delivery report in time")
            .expect("receiver alive");
        assert!(line.contains("status=1"), "{line}");
        delivered.push(line);
    }
    assert!(
        delivered.iter().any(|l| l.contains("31612345678"))
            && delivered.iter().any(|l| l.contains("31612345679")),
        "{delivered:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
