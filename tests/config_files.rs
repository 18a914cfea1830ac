//! Every shipped file in `config/` parses, and `otpgate --check-config` says what is wrong.

use std::path::{Path, PathBuf};
use std::process::Command;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

#[test]
fn every_shipped_config_parses() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(config_dir()).expect("config/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        if name.starts_with("smsc-sim") {
            smsc_sim::Config::load(&path).unwrap_or_else(|err| panic!("{err}"));
        } else {
            otpgate::config::Config::load(&path).unwrap_or_else(|err| panic!("{err}"));
        }
        checked.push(name);
    }
    checked.sort();
    assert_eq!(
        checked,
        ["otpgate-two-carriers.toml", "otpgate.toml", "smsc-sim.toml"]
    );
}

#[test]
fn the_development_config_points_at_the_shipped_simulator() {
    let daemon = otpgate::config::Config::load(&config_dir().join("otpgate.toml")).expect("valid");
    let sim = smsc_sim::Config::load(&config_dir().join("smsc-sim.toml")).expect("valid");
    assert_eq!(daemon.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(sim.smpp.listen.to_string(), "127.0.0.1:2775");
    assert_eq!(sim.http.listen.to_string(), "127.0.0.1:8025");
    assert_eq!(daemon.carriers[0].port, sim.smpp.listen.port());
    let account = sim
        .account(&daemon.carriers[0].system_id)
        .expect("the daemon's account exists");
    assert_eq!(account.password, daemon.carriers[0].password.expose());
    let scopes = |key: &str| {
        let digest = otpgate::config::clients::key_sha256(key);
        daemon
            .clients
            .iter()
            .find(|c| c.key_sha256 == digest)
            .map(|c| c.scopes)
            .unwrap_or_else(|| panic!("{key} is a client of the development config"))
    };
    use otpgate::config::clients::Scope;
    assert!(scopes("dev-only-key").contains(Scope::SignIn));
    assert!(scopes("dev-only-key").contains(Scope::OtpVerify));
    assert!(!scopes("dev-only-key").contains(Scope::DirectoryWrite));
    assert!(scopes("dev-only-sms-key").contains(Scope::SmsSend));
    assert!(scopes("dev-only-admin-key").contains(Scope::DirectoryWrite));
    assert!(scopes("dev-only-admin-key").contains(Scope::AuditRead));
    assert!(!scopes("dev-only-admin-key").contains(Scope::OtpSend));
    assert!(daemon.signin.is_some() && daemon.directory.is_some() && daemon.admin.console);
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let output = Command::new(env!("CARGO_BIN_EXE_otpgate"))
        .arg("--check-config")
        .arg(config_dir().join("otpgate.toml"))
        .output()
        .expect("run otpgate");
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("configuration is valid"));
}

#[test]
fn check_config_names_the_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = std::fs::read_to_string(config_dir().join("otpgate.toml")).expect("read");
    let cases = [
        (
            shipped.replace("ttl_seconds = 300", "ttl_secs = 300"),
            "unknown field `ttl_secs`",
        ),
        (
            shipped.replace("code_length = 6", "code_length = 12"),
            "otp.code_length",
        ),
        (
            shipped.replace("ttl_seconds = 300", "ttl_seconds = 900"),
            "otp.ttl_seconds: must be at most 600 (NIST SP 800-63B",
        ),
        (
            shipped.replacen("max_attempts = 5", "max_attempts = 20", 1),
            "otp.max_attempts: must be at most 10",
        ),
        (
            shipped.replace(
                "secret_file = \"dev-secret.key\"",
                "secret_file = \"missing.key\"",
            ),
            "missing.key",
        ),
        (shipped.replace("window = 10", "window = \"ten\""), "window"),
        (
            shipped.replace("assertion_ttl_seconds = 120", "assertion_ttl_seconds = 121"),
            "signin.assertion_ttl_seconds: must be 1 to 120",
        ),
        (
            shipped.replace("alg = \"EdDSA\"", "alg = \"ES256\""),
            "signin.keys[0]",
        ),
        (
            shipped.replace("scopes = [\"sms:send\"]", "scopes = [\"sms:everything\"]"),
            "unknown variant `sms:everything`",
        ),
        (
            shipped.replacen(
                "key_sha256 = \"b252",
                "key_env = \"X\"\nkey_sha256 = \"b252",
                1,
            ),
            "give exactly one of key_sha256, key_file or key_env",
        ),
    ];
    for file in ["dev-secret.key", "dev-signin-ed25519.pem"] {
        std::fs::copy(config_dir().join(file), dir.path().join(file)).expect("copy");
    }
    for (text, expected) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &text).expect("write");
        let output = Command::new(env!("CARGO_BIN_EXE_otpgate"))
            .arg("--check-config")
            .arg(&path)
            .output()
            .expect("run otpgate");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{expected}: {stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr:?}"
        );
        assert!(stderr.contains("bad.toml"), "the file is named: {stderr}");
    }
}

#[test]
fn hash_key_prints_the_digest_that_key_sha256_takes() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpgate"))
        .arg("hash-key")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run otpgate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"dev-only-admin-key\n")
        .expect("write the key");
    let output = child.wait_with_output().expect("exits");
    assert_eq!(output.status.code(), Some(0));
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    // The development config's admin client carries exactly this digest.
    let shipped = std::fs::read_to_string(config_dir().join("otpgate.toml")).expect("read");
    assert!(
        shipped.contains(&format!("key_sha256 = \"{printed}\"")),
        "{printed} is the dev admin key's digest"
    );
}

#[test]
fn client_keys_come_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("secret.key"), "a".repeat(40)).expect("secret");
    std::fs::write(dir.path().join("frontend.key"), "file-key-0123456\n").expect("key file");
    let var = format!("OTPGATE_TEST_KEY_{}", std::process::id());
    // SAFETY: set before any thread of this test reads the environment; the name is unique.
    unsafe { std::env::set_var(&var, "env-key-0123456") };
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[api]
[[api.clients]]
name = "from-file"
key_file = "frontend.key"
scopes = ["signin"]
[[api.clients]]
name = "from-env"
key_env = "{var}"
scopes = ["otp:send"]
tenants = ["contoso"]
[otp]
secret_file = "secret.key"
[carrier]
name = "c"
host = "127.0.0.1"
port = 2775
system_id = "x"
password = "y"
source_addr = "OTPGATE"
"#
    );
    let path = dir.path().join("otpgate.toml");
    std::fs::write(&path, text).expect("write config");
    let config = otpgate::config::Config::load(&path).expect("valid");
    let digest = |key: &str| otpgate::config::clients::key_sha256(key);
    let file = config
        .clients
        .iter()
        .find(|c| c.name == "from-file")
        .expect("client");
    assert_eq!(
        file.key_sha256,
        digest("file-key-0123456"),
        "the newline is trimmed"
    );
    let env = config
        .clients
        .iter()
        .find(|c| c.name == "from-env")
        .expect("client");
    assert_eq!(env.key_sha256, digest("env-key-0123456"));
    assert!(env.may_touch("contoso") && !env.may_touch("fabrikam"));
    assert!(file.may_touch("fabrikam"));
}
