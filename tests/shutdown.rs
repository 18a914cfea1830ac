//! The real `otpgate` binary: SIGTERM while messages are in flight and queued delivers all of
//! them, unbinds, and exits 0.

mod common;

use std::process::Stdio;

use common::proxy::Proxy;
use common::{API_KEY, Options, PATIENCE, Sim, unique_carrier, write_daemon_config};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SUBMIT_SM: u32 = 0x0000_0004;
const UNBIND: u32 = 0x0000_0006;

/// Reads the daemon's log until `needle` appears; returns that line.
async fn wait_for_log(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    needle: &str,
) -> String {
    let find = async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("daemon exited before logging {needle:?}");
    };
    tokio::time::timeout(PATIENCE, find)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in the log"))
}

fn terminate(child: &Child) {
    let pid = child.id().expect("child is running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_delivers_everything_in_flight_and_queued_then_unbinds_and_exits_0() {
    let sim = Sim::start().await;
    let proxy = Proxy::start(sim.smpp).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = Options::new(proxy.addr);
    options.carrier_extra = "window = 5".into();
    options.limits = "global_sends_per_second = 10000".into();
    let config = write_daemon_config(dir.path(), &options, &unique_carrier(), "127.0.0.1:0");

    let mut child = Command::new(env!("CARGO_BIN_EXE_otpgate"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start otpgate");
    let mut log = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let listening = wait_for_log(&mut log, "http listening").await;
    let addr = listening
        .split("addr=")
        .nth(1)
        .expect("addr field")
        .split_whitespace()
        .next()
        .expect("addr")
        .to_owned();
    wait_for_log(&mut log, "SMPP session bound").await;

    // Hold back what the daemon writes: 5 submits end up in flight, the rest wait in its queue.
    proxy.set_open(false);
    let client = reqwest::Client::new();
    let phones: Vec<String> = (0..20).map(|n| format!("+3160000{n:04}")).collect();
    for phone in &phones {
        let response = client
            .post(format!("http://{addr}/v1/otp/send"))
            .bearer_auth(API_KEY)
            .json(&json!({ "phone": phone }))
            .send()
            .await
            .expect("daemon answers");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    proxy.wait_for(SUBMIT_SM, 5).await;
    assert_eq!(
        sim.stats_now().submits,
        0,
        "nothing has reached the SMSC yet"
    );

    terminate(&child);
    wait_for_log(&mut log, "draining the SMS queue").await;
    proxy.set_open(true);

    // Keep reading the log so the pipe never fills, and wait for the exit.
    let drain_log = tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    drain_log.await.expect("log reader");
    assert_eq!(status.code(), Some(0));

    for phone in &phones {
        assert_eq!(
            sim.messages(phone).await.len(),
            1,
            "{phone} got exactly one SMS"
        );
    }
    assert_eq!(proxy.frames_with(UNBIND).len(), 1);
    let stats = sim.stats_now();
    assert_eq!((stats.submits, stats.unbinds), (20, 1));
}

/// Starts the real binary against `sim` with `RUST_LOG=debug`, the given environment, and the
/// test's standard config; returns the child and its log lines.
async fn start_binary(
    sim: &Sim,
    dir: &std::path::Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> (
    Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
) {
    let config = write_daemon_config(
        dir,
        &Options::new(sim.smpp),
        &unique_carrier(),
        "127.0.0.1:0",
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_otpgate"));
    command
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start otpgate");
    let log = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    (child, log)
}

#[tokio::test]
async fn the_daemon_tells_systemd_ready_and_stopping() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).expect("bind notify socket");
    let (child, mut log) = start_binary(
        &sim,
        dir.path(),
        &[("NOTIFY_SOCKET", socket_path.as_os_str())],
    )
    .await;
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(PATIENCE, socket.recv(&mut buf))
        .await
        .expect("READY in time")
        .expect("recv");
    assert_eq!(&buf[..read], b"READY=1\n");
    wait_for_log(&mut log, "SMPP session bound").await;
    terminate(&child);
    let read = tokio::time::timeout(PATIENCE, socket.recv(&mut buf))
        .await
        .expect("STOPPING in time")
        .expect("recv");
    assert_eq!(&buf[..read], b"STOPPING=1\n");
    let mut child = child;
    let drain_log = tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits")
        .expect("wait");
    drain_log.await.expect("log reader");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn logs_never_carry_codes_keys_secrets_or_full_numbers() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, mut log) = start_binary(&sim, dir.path(), &[]).await;
    let listening = wait_for_log(&mut log, "http listening").await;
    let addr = listening
        .split("addr=")
        .nth(1)
        .expect("addr")
        .split_whitespace()
        .next()
        .expect("addr")
        .to_owned();
    wait_for_log(&mut log, "SMPP session bound").await;
    let collected = tokio::spawn(async move {
        let mut lines = vec![listening];
        while let Ok(Some(line)) = log.next_line().await {
            lines.push(line);
        }
        lines
    });

    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value, key: &str| {
        client
            .post(format!("http://{addr}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let phone = "+31612345678";
    post("/v1/otp/send", json!({ "phone": phone }), API_KEY)
        .await
        .expect("send");
    let code = sim.code_for(phone).await;
    post(
        "/v1/otp/verify",
        json!({ "phone": phone, "code": common::wrong_code(&code) }),
        API_KEY,
    )
    .await
    .expect("verify");
    post(
        "/v1/otp/verify",
        json!({ "phone": phone, "code": code }),
        API_KEY,
    )
    .await
    .expect("verify");
    post(
        "/v1/otp/send",
        json!({ "phone": phone }),
        "not-the-key-0000",
    )
    .await
    .expect("unauthorised send");
    terminate(&child);
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert_eq!(status.code(), Some(0));

    let log = collected.await.expect("log reader").join("\n");
    assert!(
        log.contains("+316******78"),
        "numbers appear masked:\n{log}"
    );
    for secret in [
        code.as_str(),
        "31612345678",
        API_KEY,
        "not-the-key-0000",
        common::SECRET,
        "password",
    ] {
        assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
}
