//! Test harness: the simulator and the daemon started in-process on 127.0.0.1:0, driven over
//! real sockets. Each test file uses a part of it.
#![allow(dead_code)]

pub mod hostile;
pub mod proxy;
pub mod signin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use otpgate::app::{self, Deps, Listeners};
use otpgate::carrier::Carriers;
use otpgate::clock::ManualClock;
use otpgate::config::Config;
use otpgate::otp::OsEntropy;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const API_KEY: &str = "test-key-0123";
/// A key for /v1/sms only.
pub const SMS_KEY: &str = "test-sms-key-0123";
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
/// A key with the `signin` scope only (client "frontend").
pub const SIGNIN_KEY: &str = "test-signin-key-0123";
/// A second sign-in client ("other-frontend").
pub const OTHER_SIGNIN_KEY: &str = "test-signin-key-4567";
/// A key with directory:read, directory:write and audit:read (client "admin").
pub const ADMIN_KEY: &str = "test-admin-key-0123";
/// A key with directory:read only (client "reader").
pub const READER_KEY: &str = "test-reader-key-0123";
/// Directory keys bound to tenant "bound" (client "bound-admin").
pub const BOUND_KEY: &str = "test-bound-key-0123";
/// A client with the `admin` scope (the conversion breaker's blocks).
pub const OPERATOR_KEY: &str = "test-operator-key-0123";
/// Upper bound for anything a test waits on; reached only when the behaviour is broken.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The bundled simulator, in-process.
pub struct Sim {
    pub smpp: SocketAddr,
    pub http_url: String,
    shutdown: CancellationToken,
    running: smsc_sim::Running,
    client: reqwest::Client,
}

pub fn sim_config(smpp: SocketAddr, extra: &str) -> smsc_sim::Config {
    let text = format!(
        r#"
[smpp]
listen = "{smpp}"
[http]
listen = "127.0.0.1:0"
{extra}
[[accounts]]
system_id = "otpgate"
password = "secret"
"#
    );
    smsc_sim::Config::from_toml(&text, std::path::Path::new("sim-test.toml"))
        .expect("test sim config is valid")
}

impl Sim {
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// Starts with extra simulator TOML (rules, receipts, faults).
    pub async fn start_with(extra: &str) -> Self {
        Self::start_on_with("127.0.0.1:0".parse().expect("literal address"), extra).await
    }

    /// Starts on a given SMPP address (to come back on the same port after a kill).
    pub async fn start_on(smpp_addr: SocketAddr) -> Self {
        Self::start_on_with(smpp_addr, "").await
    }

    async fn start_on_with(smpp_addr: SocketAddr, extra: &str) -> Self {
        let smpp = TcpListener::bind(smpp_addr)
            .await
            .expect("bind simulator SMPP port");
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator HTTP port");
        let smpp_addr = smpp.local_addr().expect("local addr");
        let http_url = format!("http://{}", http.local_addr().expect("local addr"));
        let shutdown = CancellationToken::new();
        let running = smsc_sim::start(
            sim_config(smpp_addr, extra),
            smsc_sim::Listeners {
                smpp,
                tls: None,
                http,
            },
            shutdown.clone(),
        );
        Self {
            smpp: smpp_addr,
            http_url,
            shutdown,
            running,
            client: http_client(),
        }
    }

    /// Stops the simulator, dropping every SMPP connection, as a crash would.
    pub async fn kill(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.running.done)
            .await
            .expect("simulator stops in time")
            .expect("simulator task does not panic");
    }

    /// The newest message to `to`, waiting for it through the tester API's long-poll.
    pub async fn latest(&self, to: &str) -> Option<Value> {
        let response = self
            .client
            .get(format!("{}/api/messages/latest", self.http_url))
            .query(&[("to", to), ("wait_ms", "5000")])
            .send()
            .await
            .expect("simulator HTTP answers");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        Some(response.json().await.expect("message JSON"))
    }

    /// The code the phone `to` received last.
    pub async fn code_for(&self, to: &str) -> String {
        let message = self
            .latest(to)
            .await
            .unwrap_or_else(|| panic!("no SMS reached {to}"));
        message["otp"]
            .as_str()
            .expect("the SMS carries a code")
            .to_owned()
    }

    pub async fn messages(&self, to: &str) -> Vec<Value> {
        self.client
            .get(format!("{}/api/messages", self.http_url))
            .query(&[("to", to)])
            .send()
            .await
            .expect("simulator HTTP answers")
            .json()
            .await
            .expect("list JSON")
    }

    pub async fn stats(&self) -> Value {
        self.client
            .get(format!("{}/api/stats", self.http_url))
            .send()
            .await
            .expect("simulator HTTP answers")
            .json()
            .await
            .expect("stats JSON")
    }

    /// Sets the simulator's faults (its tester API), globally.
    pub async fn put_faults(&self, faults: Value) {
        let response = self
            .client
            .put(format!("{}/api/faults", self.http_url))
            .json(&faults)
            .send()
            .await
            .expect("simulator HTTP answers");
        assert!(
            response.status().is_success(),
            "faults refused: {:?}",
            response.text().await
        );
    }

    pub fn stats_now(&self) -> smsc_sim::stats::StatsSnapshot {
        self.running.shared.snapshot()
    }
}

/// What a test changes in the daemon's configuration.
pub struct Options {
    pub smsc: SocketAddr,
    pub limits: String,
    pub otp_extra: String,
    pub carrier_extra: String,
    pub shutdown_timeout_seconds: u64,
    /// Serve /metrics on a listener of its own.
    pub metrics_listener: bool,
    /// Lines of the [delivery] section.
    pub delivery_extra: String,
    /// Lines of the [server] section.
    pub server_extra: String,
    /// `[[carriers]]` and `[[routes]]` TOML in place of the one `[carrier]` (see `carrier_entry`).
    pub carriers: Option<String>,
    /// Turn on the directory, sign-in and the console, with the SQLite file here (None: in the
    /// daemon's temporary folder).
    pub signin: bool,
    pub directory_path: Option<std::path::PathBuf>,
    /// Lines of the [signin] section.
    pub signin_extra: String,
    /// Where the daemon's wall clock starts (None: now).
    pub wall_clock: Option<std::time::SystemTime>,
    /// Whole sections (`[destinations]`, ...) appended to the config.
    pub sections: String,
}

impl Options {
    pub fn new(smsc: SocketAddr) -> Self {
        Self {
            smsc,
            shutdown_timeout_seconds: 5,
            metrics_listener: false,
            delivery_extra: String::new(),
            server_extra: String::new(),
            limits: String::new(),
            otp_extra: String::new(),
            carrier_extra: String::new(),
            carriers: None,
            signin: false,
            directory_path: None,
            signin_extra: String::new(),
            wall_clock: None,
            sections: String::new(),
        }
    }
}

/// One `[[carriers]]` entry for the test account on `smsc`, reconnecting fast, plus `extra` lines.
pub fn carrier_entry(name: &str, smsc: SocketAddr, extra: &str) -> String {
    let reconnect = if extra.contains("reconnect_") {
        ""
    } else {
        "reconnect_initial_ms = 20\nreconnect_max_ms = 200"
    };
    format!(
        r#"
[[carriers]]
name = "{name}"
host = "127.0.0.1"
port = {port}
system_id = "otpgate"
password = "secret"
source_addr = "OTPGATE"
{reconnect}
{extra}
"#,
        port = smsc.port()
    )
}

static CARRIERS: AtomicU32 = AtomicU32::new(0);

/// The tests' HTTP client. Its idle connections are dropped after 5 s, before the servers'
/// 10 s idle deadline (header_read_timeout_seconds): otherwise a request sent on a pooled
/// connection just as the server closes it fails (seen under load, when a test waited longer
/// than 10 s between two requests).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("an HTTP client")
}

/// A carrier name unique in this test process, so metric series of parallel tests do not mix.
pub fn unique_carrier() -> String {
    format!("t{}", CARRIERS.fetch_add(1, Ordering::Relaxed))
}

/// Writes a daemon configuration (and its secret file) into `dir`; returns the config path.
pub fn write_daemon_config(
    dir: &std::path::Path,
    options: &Options,
    carrier: &str,
    listen: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("secret.key"), SECRET).expect("write secret");
    let carriers = options.carriers.clone().unwrap_or_else(|| {
        format!(
            r#"
[carrier]
name = "{carrier}"
host = "127.0.0.1"
port = {port}
system_id = "otpgate"
password = "secret"
source_addr = "OTPGATE"
reconnect_initial_ms = 20
reconnect_max_ms = 200
{carrier_extra}
"#,
            port = options.smsc.port(),
            carrier_extra = options.carrier_extra,
        )
    });
    let signin = if options.signin {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an Ed25519 key");
        std::fs::write(dir.join("signin.pem"), key.serialize_pem()).expect("write signing key");
        let db = options
            .directory_path
            .clone()
            .unwrap_or_else(|| dir.join("directory.db"));
        format!(
            r#"
[directory]
path = "{db}"
[signin]
issuer = "https://otpgate.test"
{extra}
[[signin.keys]]
file = "signin.pem"
[admin]
console = true
"#,
            db = db.display(),
            extra = options.signin_extra,
        )
    } else {
        String::new()
    };
    let client = |name: &str, key: &str, scopes: &str, tenants: &str| {
        format!(
            "[[api.clients]]\nname = \"{name}\"\nkey_sha256 = \"{}\"\nscopes = [{scopes}]\n{tenants}\n",
            otpgate::config::clients::hex(&otpgate::config::clients::key_sha256(key))
        )
    };
    let directory_scopes = r#""directory:read", "directory:write", "audit:read""#;
    let clients = [
        client("frontend", SIGNIN_KEY, r#""signin""#, ""),
        client("other-frontend", OTHER_SIGNIN_KEY, r#""signin""#, ""),
        client("admin", ADMIN_KEY, directory_scopes, ""),
        client("reader", READER_KEY, r#""directory:read""#, ""),
        client("operator", OPERATOR_KEY, r#""admin""#, ""),
        client(
            "bound-admin",
            BOUND_KEY,
            directory_scopes,
            r#"tenants = ["bound"]"#,
        ),
    ]
    .concat();
    let text = format!(
        r#"
[server]
listen = "{listen}"
shutdown_timeout_seconds = {shutdown}
{server_extra}
[api]
keys = ["{API_KEY}"]
sms_keys = ["{SMS_KEY}"]
sms_senders = ["Contoso"]
{clients}
{signin}
[otp]
secret_file = "secret.key"
{otp_extra}
[limits]
{limits}
{carriers}
[delivery]
{delivery_extra}
{sections}
"#,
        // Tests use made-up numbers (+1 425-123-4567) and send thousands of codes nobody
        // verifies: the numbering plan, prefix velocity and the conversion breaker are tested
        // on their own (tests/destinations.rs, tests/pumping.rs) and relaxed elsewhere unless a
        // test configures them.
        sections = {
            let mut sections = options.sections.clone();
            if !sections.contains("[destinations]") {
                sections.push_str("\n[destinations]\nnumbering_plan = \"structural\"\n");
            }
            // Callback receivers in tests listen on 127.0.0.1 (tests/webhooks.rs checks the
            // default refusal).
            if !sections.contains("[callbacks]") {
                sections.push_str("\n[callbacks]\nprivate_hosts = [\"127.0.0.1\"]\n");
            }
            if !sections.contains("[pumping") {
                sections.push_str(
                    "\n[pumping]\nprefix_burst = 1000000\ncountry_daily_default = 100000000\n\
                     [pumping.breaker]\nmode = \"off\"\n",
                );
            }
            sections
        },
        otp_extra = options.otp_extra,
        // Tests send many SMS to one number; the per-number SMS budget is tested on its own
        // (tests/sms_budget.rs) and opened wide elsewhere unless a test sets it.
        limits = if options.limits.contains("max_sms_per_number_per_day")
            || options.limits.contains("resend_intervals_seconds")
        {
            options.limits.clone()
        } else {
            format!(
                "{}\nmax_sms_per_number_per_day = 1000000\nresend_intervals_seconds = []",
                options.limits
            )
        },
        delivery_extra = options.delivery_extra,
        shutdown = options.shutdown_timeout_seconds,
        server_extra = options.server_extra,
    );
    let path = dir.join("otpgate.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The daemon, in-process, on a manual clock.
pub struct Daemon {
    pub url: String,
    pub metrics_url: Option<String>,
    pub carrier_name: String,
    pub clock: Arc<ManualClock>,
    pub carriers: Carriers,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub async fn start(options: Options) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let carrier_name = unique_carrier();
        let path = write_daemon_config(dir.path(), &options, &carrier_name, "127.0.0.1:0");
        let config = Config::load(&path).expect("test daemon config is valid");
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind daemon HTTP port");
        let url = format!("http://{}", http.local_addr().expect("local addr"));
        let metrics = match options.metrics_listener {
            true => Some(
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind metrics port"),
            ),
            false => None,
        };
        let metrics_url = metrics
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().expect("local addr")));
        let clock = Arc::new(match options.wall_clock {
            Some(wall) => ManualClock::with_wall(wall),
            None => ManualClock::new(),
        });
        let shutdown = CancellationToken::new();
        let deps = Deps {
            clock: clock.clone(),
            entropy: Arc::new(OsEntropy),
        };
        let running = app::start(config, Listeners { http, metrics }, deps, shutdown.clone())
            .expect("daemon starts");
        Self {
            url,
            metrics_url,
            carrier_name,
            clock,
            carriers: running.carriers,
            client: http_client(),
            shutdown,
            done: running.done,
            _dir: dir,
        }
    }

    /// Starts against `sim` and waits until the carrier session is bound.
    pub async fn start_bound(options: Options) -> Self {
        let daemon = Self::start(options).await;
        daemon.wait_bound(true).await;
        daemon
    }

    /// Waits (event-driven) until exactly `count` SMPP sessions are bound, over all carriers.
    pub async fn wait_sessions(&self, count: usize) {
        let mut watch = self.carriers.bound_watch();
        tokio::time::timeout(PATIENCE, watch.wait_for(|sessions| *sessions == count))
            .await
            .unwrap_or_else(|_| panic!("never {count} sessions bound"))
            .expect("carrier tasks alive");
    }

    /// Waits (event-driven) until the carrier's bound state is `bound`.
    pub async fn wait_bound(&self, bound: bool) {
        let mut watch = self.carriers.bound_watch();
        tokio::time::timeout(
            PATIENCE,
            watch.wait_for(|sessions| (*sessions > 0) == bound),
        )
        .await
        .unwrap_or_else(|_| panic!("carrier never became bound={bound}"))
        .expect("carrier task alive");
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_with(API_KEY, path, body).await
    }

    pub async fn post_with(&self, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("daemon HTTP answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, phone: &str) -> (StatusCode, Value) {
        self.post("/v1/otp/send", json!({ "phone": phone })).await
    }

    pub async fn verify(&self, phone: &str, code: &str) -> (StatusCode, Value) {
        self.post("/v1/otp/verify", json!({ "phone": phone, "code": code }))
            .await
    }

    /// Any request with `key`, and a JSON body when given.
    pub async fn call(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("daemon HTTP answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let key = if path.starts_with("/v1/sms") {
            SMS_KEY
        } else {
            API_KEY
        };
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("daemon HTTP answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits (bounded) until the delivery of code `id` is in `state`; returns the record.
    pub async fn wait_for_delivery(&self, id: &str, state: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..500 {
            let route = if id.starts_with("sms-") { "sms" } else { "otp" };
            let (_, body) = self.get_json(&format!("/v1/{route}/{id}")).await;
            if body["delivery"]["state"] == state {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("delivery of {id} never became {state}: {last}");
    }

    /// Sends `count` generic SMS to `prefix` + 4 digits; returns their ids.
    pub async fn send_many(&self, count: usize, prefix: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for n in 0..count {
            let (status, body) = self
                .post_with(
                    SMS_KEY,
                    "/v1/sms",
                    json!({ "to": format!("{prefix}{n:04}"), "text": format!("message {n}") }),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            ids.push(body["id"].as_str().expect("id").to_owned());
        }
        ids
    }

    /// Sends `count` generic SMS at once (so the carrier's window fills); returns their ids.
    pub async fn send_many_at_once(&self, count: usize, prefix: &str) -> Vec<String> {
        let sends = (0..count).map(|n| {
            self.post_with(
                SMS_KEY,
                "/v1/sms",
                json!({ "to": format!("{prefix}{n:04}"), "text": format!("message {n}") }),
            )
        });
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .map(|(status, body)| {
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                body["id"].as_str().expect("id").to_owned()
            })
            .collect()
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("daemon HTTP answers");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// Waits (bounded) until the delivery of `id` is final; returns its state.
    pub async fn final_state(&self, id: &str) -> Value {
        let route = if id.starts_with("sms-") { "sms" } else { "otp" };
        let mut last = Value::Null;
        for _ in 0..3000 {
            let (_, body) = self.get_json(&format!("/v1/{route}/{id}")).await;
            if body["delivery"]["done_at"].is_string() {
                return body["delivery"].clone();
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("delivery of {id} never became final: {last}");
    }

    /// Shuts down as SIGTERM would and waits until the daemon has stopped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.done)
            .await
            .expect("daemon stops in time")
            .expect("shutdown task does not panic");
    }
}

/// The value of the sample `name{labels}` whose labels include every pair in `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let wanted = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (metric == name && wanted)
                .then(|| value.parse().ok())
                .flatten()
        })
}

/// A six-digit code guaranteed to differ from `code`.
pub fn wrong_code(code: &str) -> String {
    code.bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect()
}
