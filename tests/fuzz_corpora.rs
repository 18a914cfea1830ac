//! Every committed fuzz corpus (fuzz/corpus/<target>/) replayed through its target on each
//! `cargo test`: the inputs AFL found interesting, and any that once crashed, stay covered
//! without AFL. The targets are the very functions the AFL binaries call (fuzz/src/targets.rs).

#[path = "../fuzz/src/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            (path.display().to_string(), bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{target}: empty corpus");
    inputs
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    for (name, input) in corpus(target) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&input)));
        assert!(outcome.is_ok(), "{name} fails its target");
    }
}

#[test]
fn phone_corpus() {
    replay("phone", targets::phone);
}

#[test]
fn json_body_corpus() {
    replay("json_body", targets::json_body);
}

#[test]
fn smpp_client_corpus() {
    replay("smpp_client", targets::smpp_client);
}

#[test]
fn receipt_text_corpus() {
    replay("receipt_text", targets::receipt_text);
}

#[test]
fn text_coding_corpus() {
    replay("text_coding", targets::text_coding);
}

#[test]
fn reassembly_corpus() {
    replay("reassembly", targets::reassembly);
}

#[test]
fn smsc_session_corpus() {
    let smsc = targets::Smsc::start();
    replay("smsc_session", |input| smsc.session(input));
}
