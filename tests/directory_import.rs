//! `otpgate directory import` and `export`, the real binary on a 10,000-row CSV with bad rows,
//! run while the daemon serves the same SQLite file: every good row lands, each bad row is
//! reported by its line, a second run changes nothing, and the running daemon signs the
//! imported users in without a restart.

mod common;

use std::fmt::Write as _;
use std::process::Command;

use common::*;
use reqwest::{Method, StatusCode};

const ROWS: usize = 10_000;

/// The CSV and the lines (1-based, the header is line 1) that must be refused.
fn csv() -> (String, Vec<(usize, &'static str)>) {
    let mut text =
        String::from("userPrincipalName,displayName,phoneNumber,phoneType,groups,smsSignIn\n");
    let mut bad = Vec::new();
    for n in 0..ROWS {
        let line = n + 2;
        let row = match n % 200 {
            17 => {
                bad.push((line, "phoneNumber"));
                format!("bad{n}@contoso.test,Bad {n},06 1234,mobile,,true")
            }
            42 => {
                bad.push((line, "userPrincipalName"));
                format!(",Nameless {n},+3161{n:07},mobile,,true")
            }
            99 => {
                bad.push((line, "phoneType"));
                format!("bad{n}@contoso.test,Bad {n},+3161{n:07},pager,,true")
            }
            150 => {
                // The number of the row before, for sign-in: the database refuses it.
                bad.push((line, "another user"));
                format!("dup{n}@contoso.test,Dup {n},+3161{:07},mobile,,true", n - 1)
            }
            _ => {
                let group = if n % 2 == 0 {
                    "Frontline"
                } else {
                    "Frontline;Night shift"
                };
                format!("user{n}@contoso.test,User {n},+31 6 1{n:07},mobile,{group},true")
            }
        };
        writeln!(text, "{row}").expect("write to a string");
    }
    (text, bad)
}

fn otpgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_otpgate"))
        .args(args)
        .output()
        .expect("run otpgate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rows_import_beside_a_running_daemon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("directory.db");
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.signin = true;
    options.directory_path = Some(db.clone());
    let config = write_daemon_config(dir.path(), &options, "import", "127.0.0.1:0");
    let daemon = Daemon::start_bound(options).await;
    daemon.create_tenant("contoso").await;
    daemon.policy_all_users("contoso").await;

    let (text, bad) = csv();
    let file = dir.path().join("users.csv");
    std::fs::write(&file, text).expect("write CSV");
    let (config, file) = (
        config.to_str().expect("utf-8"),
        file.to_str().expect("utf-8"),
    );
    let args = [
        "--config",
        config,
        "directory",
        "import",
        "--tenant",
        "contoso",
        file,
    ];
    let first = otpgate(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr),
    );
    assert_eq!(
        first.status.code(),
        Some(1),
        "bad rows make exit 1: {stderr}"
    );
    let good = ROWS - bad.len();
    assert!(
        stdout.contains(&format!("imported {good} of {ROWS} rows")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{good} users created")),
        "{stdout}"
    );
    for (line, reason) in &bad {
        let reported = stderr
            .lines()
            .find(|l| l.starts_with(&format!("{file}:{line}: ")))
            .unwrap_or_else(|| panic!("line {line} not reported: {stderr}"));
        assert!(reported.contains(reason), "{reported} should name {reason}");
    }
    assert!(
        stderr.contains("10000 rows read"),
        "progress is shown: {stderr}"
    );
    assert!(
        !stderr.contains("+31610"),
        "no number of the file in the report"
    );

    // Safe to run twice: nothing changes, the same rows are refused, and the audit log gains
    // nothing but the refusals (no "Add member to group" failures for existing memberships).
    let audits = "/v1/tenants/contoso/auditLogs/directoryAudits?$top=50";
    let before = daemon
        .admin(Method::GET, audits, None, StatusCode::OK)
        .await;
    let second = otpgate(&args);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert_eq!(second.status.code(), Some(1));
    assert!(stdout.contains("0 users created, 0 updated"), "{stdout}");
    let after = daemon
        .admin(Method::GET, audits, None, StatusCode::OK)
        .await;
    let added: Vec<&serde_json::Value> = after["value"]
        .as_array()
        .expect("list")
        .iter()
        .take_while(|a| a["id"] != before["value"][0]["id"])
        .collect();
    assert!(
        added
            .iter()
            .all(|a| a["activityDisplayName"] == "Admin enabled SMS sign-in"
                && a["result"] == "failure"),
        "the second run recorded only the refused duplicates: {added:?}"
    );

    // The running daemon sees the import (another process's commits) without a restart.
    let ready = good;
    let mut seen = 0.0;
    for _ in 0..500 {
        let (_, metrics) = daemon.get_text("/metrics").await;
        seen = sample(&metrics, otpgate::metrics::DIRECTORY_READY_NUMBERS, &[]).unwrap_or(0.0);
        if seen as usize == ready {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen as usize, ready, "ready numbers in the daemon's index");
    let answer = daemon.sign_in(&sim, "contoso", "+31610000004").await;
    assert_eq!(answer["status"], "approved", "{answer}");
    let user = daemon
        .admin(
            Method::GET,
            &format!(
                "/v1/tenants/contoso/users/{}",
                answer["user_id"].as_str().expect("id")
            ),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(user["userPrincipalName"], "user4@contoso.test");

    // Export writes every user back in the import's columns.
    let out = dir.path().join("export.csv");
    let exported = otpgate(&[
        "--config",
        config,
        "directory",
        "export",
        "--tenant",
        "contoso",
        "--output",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(exported.status.code(), Some(0));
    let text = std::fs::read_to_string(&out).expect("export");
    // The refused duplicates' users exist (their rows failed at enableSmsSignIn, after the user
    // and the method were saved, as an admin's enable would).
    let duplicates = bad.iter().filter(|(_, r)| *r == "another user").count();
    assert_eq!(text.lines().count(), 1 + good + duplicates);
    assert!(text.contains("user4@contoso.test,User 4,+31610000004,mobile,Frontline,true"));
    assert!(
        text.contains("user5@contoso.test,User 5,+31610000005,mobile,Frontline;Night shift,true")
    );
    daemon.stop().await;
    sim.kill().await;
}
