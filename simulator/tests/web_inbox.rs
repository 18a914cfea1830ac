//! The web inbox in a real browser: headless Chromium (Debian `chromium`, installed by `.ci/run`)
//! renders `/`, and the test checks the DOM and the pixels of a screenshot.

mod common;

use std::path::Path;
use std::process::Command as Process;

use common::*;

/// Runs headless Chromium with `args` on `url`; None (skip) when it is missing outside CI.
fn chromium(profile: &Path, args: &[&str], url: &str) -> Option<std::process::Output> {
    let output = Process::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,700",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output();
    match output {
        Ok(output) => Some(output),
        Err(err) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED web inbox check: {err} (apt-get install chromium)");
            None
        }
        Err(err) => panic!("chromium is required under CI: {err}"),
    }
}

/// Pixels within a small distance of the code highlight colour (#ffd54f).
fn highlight_pixels(png_path: &Path) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).expect("screenshot"),
    ));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|px| {
            px.len() >= 3
                && px[0].abs_diff(0xff) < 12
                && px[1].abs_diff(0xd5) < 12
                && px[2].abs_diff(0x4f) < 12
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_shows_phones_conversations_and_highlights_the_code() {
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    request(
        &mut link,
        submit(
            2,
            "31612345678",
            0,
            b"Your verification code is 482913.".to_vec(),
        ),
    )
    .await;
    request(
        &mut link,
        submit(3, "447700900123", 0, b"Welcome aboard".to_vec()),
    )
    .await;
    let (status, _) = sim
        .send(
            reqwest::Method::POST,
            "/api/mo",
            Some(serde_json::json!({ "from": "+31612345678", "to": "TEST", "text": "Thanks" })),
        )
        .await;
    assert_eq!(status, 202);

    let dir = tempfile_dir();
    let url = format!("{}/?live=0", sim.http);
    let (dom_profile, shot_profile, shot) = (dir.join("p1"), dir.join("p2"), dir.join("inbox.png"));
    let dom_url = url.clone();
    let Some(dom) =
        tokio::task::spawn_blocking(move || chromium(&dom_profile, &["--dump-dom"], &dom_url))
            .await
            .expect("join")
    else {
        return;
    };
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The newest conversation is +31612345678's: the MO and the code, highlighted.
    assert!(dom.contains(r#"<mark class="code">482913</mark>"#), "{dom}");
    assert!(
        dom.contains("+31612345678") && dom.contains("+447700900123") && dom.contains("Thanks"),
        "{dom}"
    );
    assert!(
        dom.contains("bubble mo"),
        "the phone's own message is drawn as sent: {dom}"
    );

    let shot_arg = format!("--screenshot={}", shot.display());
    let shot_path = shot.clone();
    tokio::task::spawn_blocking(move || chromium(&shot_profile, &[shot_arg.as_str()], &url))
        .await
        .expect("join");
    let highlighted = highlight_pixels(&shot_path);
    assert!(
        highlighted > 300,
        "the highlighted code is visible: {highlighted} pixels"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smsc-sim-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
