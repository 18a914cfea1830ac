//! The admin console and the test sign-in page in a real browser: headless Chromium driven by
//! playwright-core (`tests/browser/console.mjs`) builds a tenant, a user, a mobile number and
//! the policy through the console, then signs in on the test page with the code the simulator
//! received. The pages call only the public API.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// The playwright-core that `.ci/run` installs, if it is there.
fn playwright() -> Option<std::path::PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/node/node_modules/playwright-core");
    path.exists().then_some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_the_test_page_drive_a_full_sign_in() {
    let chromium = Path::new("/usr/bin/chromium");
    let (Some(playwright), true) = (playwright(), chromium.exists()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs chromium and playwright-core (.ci/run installs both)"
        );
        eprintln!("SKIPPED: needs /usr/bin/chromium and .ci/node/node_modules/playwright-core");
        return;
    };
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.signin = true;
    let daemon = Daemon::start_bound(options).await;
    let out = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.mjs");
    let mut command = Command::new("node");
    command
        .arg(script)
        .env("OTPGATE_URL", &daemon.url)
        .env("SIM_URL", &sim.http_url)
        .env("ADMIN_KEY", ADMIN_KEY)
        .env("SIGNIN_KEY", SIGNIN_KEY)
        .env("OUT_DIR", out.path())
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CHROMIUM", chromium);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "browser run failed:\n{stderr}\n{stdout}"
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|err| panic!("one JSON line expected ({err}): {stdout}"));
    assert_eq!(result["ok"], true);
    assert!(
        result["result"]
            .as_str()
            .unwrap_or("")
            .contains("Signed in as Adele Vance"),
        "{result}"
    );
    assert_eq!(result["claims"]["amr"], serde_json::json!(["sms"]));
    assert_eq!(result["claims"]["aud"], "frontend");
    assert_eq!(result["claims"]["tid"], "contoso");
    // What the console did is in the directory, as the API shows it.
    let (_, users) = daemon
        .call(
            reqwest::Method::GET,
            ADMIN_KEY,
            "/v1/tenants/contoso/users",
            None,
        )
        .await;
    assert_eq!(users["value"][0]["displayName"], "Adele Vance");
    assert_eq!(result["claims"]["sub"], users["value"][0]["id"]);
    for shot in ["console.png", "signin.png"] {
        let png = std::fs::read(out.path().join(shot)).expect("a screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{shot}: {} bytes",
            png.len()
        );
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let reader = decoder.read_info().expect("PNG header");
        assert!(reader.info().width >= 1000, "{shot} is a full page");
    }
    if let Ok(dir) = std::env::var("OTPGATE_SCREENSHOTS") {
        for shot in ["console.png", "signin.png"] {
            let _ = std::fs::copy(out.path().join(shot), Path::new(&dir).join(shot));
        }
    }
    daemon.stop().await;
    sim.kill().await;
}
