//! `promtool check metrics`, for the daemon's tests and the simulator's alike.

/// Runs `promtool check metrics` on `text`. promtool comes from Debian's `prometheus` package,
/// which `.ci/run` installs; without it this check fails under CI and is skipped (loudly) elsewhere.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED promtool check: {err} (apt-get install prometheus)");
            return;
        }
        Err(err) => panic!("promtool is required under CI: {err}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let output = child.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
