//! Configuration: the TOML file model (serde, unknown fields refused) and the validated `Config`.
//! Sections with files of their own: `clients` (`[api]`), `signin` (`[directory]`, `[signin]`,
//! `[admin]`), `destinations` (`[destinations]`), `pumping` (`[pumping]`). The newer ones parse with `TryFrom` into types
//! that cannot be invalid and fail with a [`SettingError`].

pub mod clients;
mod destinations;
mod edge;
mod pumping;
pub mod signin;

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::otp::{Policy, code, mac::MIN_SECRET_BYTES};
use crate::ratelimit::{LimitsConfig, Rate};
use crate::template::{MessageSettings, Messages};

/// The longest a code may live (NIST SP 800-63B, section 5.1.3.2).
const MAX_CODE_TTL_SECONDS: u64 = 600;
/// The most attempts one code may get.
const MAX_ATTEMPTS_PER_CODE: u32 = 10;

/// Why a configuration cannot be used; the text names the file and the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: {setting}: {message}")]
    Invalid {
        path: PathBuf,
        setting: Cow<'static, str>,
        message: String,
    },
}

/// A section's setting that cannot be used, before the file's path is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub setting: Cow<'static, str>,
    pub message: String,
}

impl SettingError {
    pub fn new(setting: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// `value`, unless it is 0.
fn positive(setting: &'static str, value: u64) -> Result<u64, SettingError> {
    if value == 0 {
        Err(SettingError::new(setting, "must be greater than 0"))
    } else {
        Ok(value)
    }
}

/// A secret value whose Debug output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// The validated configuration the daemon runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// Every API client (the older `keys` and `sms_keys` become clients too).
    pub clients: Vec<clients::ApiClient>,
    pub directory: Option<signin::DirectoryConfig>,
    pub signin: Option<crate::signin::SignInSettings>,
    pub admin: signin::AdminConfig,
    pub otp: OtpConfig,
    pub limits: LimitsConfig,
    pub limits_prune_interval: Duration,
    /// At least one; names are unique.
    pub carriers: Vec<CarrierConfig>,
    /// Which carriers serve which destinations; never empty (without `[[routes]]`, every
    /// carrier serves every number, in the order listed).
    pub routes: Vec<RouteConfig>,
    pub delivery: DeliveryConfig,
    pub callbacks: crate::webhooks::WebhookSettings,
    /// `[destinations]` and `[pumping]`.
    pub pumping: crate::pumping::PumpingPolicy,
}

/// Destinations starting with `prefix` may go to `carrier`. The longest matching prefix wins;
/// among its routes the lowest `priority` first, and routes of equal priority share traffic by
/// `weight`. Routes of later priorities and shorter prefixes are where traffic fails over to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// E.164 digits without the `+` ("" matches every number).
    pub prefix: String,
    pub carrier: String,
    pub priority: u32,
    pub weight: u32,
}

/// How a carrier's sessions bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    /// One bind_transceiver per session: submits and receipts on the same link.
    Transceiver,
    /// A bind_transmitter for submits plus a bind_receiver for receipts, per session.
    TransmitterReceiver,
}

/// When a carrier counts as failing: after `failures` failures in a row (temporary refusals,
/// unanswered submits, failed binds) other routes are preferred for `open`, then one trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failures: u32,
    pub open: Duration,
}

/// SMPP over TLS to a carrier.
#[derive(Debug, Clone)]
pub struct TlsClientConfig {
    /// PEM CA bundle to trust; None trusts the system's roots.
    pub ca_file: Option<PathBuf>,
    /// SNI and certificate name; default the carrier's host.
    pub server_name: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// How long, and how many, delivery records are kept for `GET /v1/otp/{id}`.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryConfig {
    pub max_records: usize,
    pub ttl: Duration,
    /// How long a generic SMS may wait for the carrier before it is given up.
    pub sms_validity: Duration,
    /// A message without a final receipt this long after its submit ends as `unknown`.
    pub receipt_wait: Duration,
    /// A receipt for an id not yet known (it overtook its submit_sm_resp) is held this long.
    pub early_receipt_hold: Duration,
    /// At most this many such receipts are held.
    pub early_receipts_max: usize,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    /// Open HTTP connections at most, per listener.
    pub max_connections: usize,
    /// Time a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// Time a client has to send the whole request body.
    pub body_read_timeout: Duration,
    /// Time a response write may stay blocked on a client that does not read.
    pub write_timeout: Duration,
    /// HTTPS on the API listener (`None`: plain HTTP, said in the log at start).
    pub https: Option<crate::http::tls::Https>,
    /// Whose client-IP header is believed.
    pub client_ip: crate::http::client_ip::ClientIp,
    /// `/metrics` answers only a key with the scope `metrics`.
    pub metrics_require_key: bool,
}

#[derive(Debug, Clone)]
pub struct OtpConfig {
    pub policy: Policy,
    /// Wrong guesses per number across codes.
    pub guessing: crate::otp::GuessPolicy,
    pub secret: Secret,
    pub max_pending: usize,
    pub sweep_interval: Duration,
    /// Every text a code can go out in.
    pub messages: Messages,
    /// A judged `/v1/otp/verify` answers no sooner than this after its body was read, so that
    /// the memory a pending code's lookup touches does not show in the response time.
    pub verify_floor: Duration,
}

/// SMPP interface_version to bind with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum InterfaceVersion {
    #[serde(rename = "3.4")]
    V34,
    #[serde(rename = "5.0")]
    V50,
}

#[derive(Debug, Clone)]
pub struct CarrierConfig {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password: Secret,
    pub system_type: String,
    pub interface_version: InterfaceVersion,
    pub source_addr: String,
    pub source_addr_ton: u8,
    pub source_addr_npi: u8,
    pub registered_delivery: u8,
    pub allow_latin1: bool,
    /// Sessions (binds) to keep open; with `TransmitterReceiver` each is a pair of links.
    pub binds: usize,
    pub bind_mode: BindMode,
    /// address_range (with its TON and NPI) sent in every bind: the MO range a receiver asks for.
    pub address_range: String,
    pub address_range_ton: u8,
    pub address_range_npi: u8,
    pub breaker: BreakerConfig,
    /// How the parts of a long message are tied together.
    pub concatenation: smpp_wire::segment::Concatenation,
    /// SMPP over TLS, when set.
    pub tls: Option<TlsClientConfig>,
    /// Segments per second across this carrier's sessions (None: no limit).
    pub max_messages_per_second: Option<NonZeroU32>,
    pub window: usize,
    pub queue_capacity: usize,
    pub connect_timeout: Duration,
    pub bind_timeout: Duration,
    pub response_timeout: Duration,
    pub enquire_link_interval: Duration,
    /// An enquire_link unanswered this long means the link is dead.
    pub enquire_link_timeout: Duration,
    pub unbind_timeout: Duration,
    /// How long a session stops writing after a temporary refusal (throttled, queue full, ...).
    pub throttle_pause: Duration,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    pub max_pdu_length: usize,
    /// A write or flush blocked this long means the SMSC stopped reading: the link is dead.
    pub write_timeout: Duration,
    /// Response timeouts on one link after which it is dropped and rebound.
    pub response_timeouts_before_reconnect: u32,
    /// Times a part may be written again after an unanswered write (each on a fresh link).
    pub max_resends: u32,
    /// How a receipt's message id relates to the id in submit_sm_resp.
    pub receipt_id_format: ReceiptIdFormat,
}

/// How a carrier writes the message id in receipts compared with its submit_sm_resp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptIdFormat {
    /// The same id (case and leading zeros aside): SMPP 3.4 section 5.2.11 says so.
    #[default]
    Exact,
    /// submit_sm_resp in hex, receipts in decimal.
    HexSubmitDecimalReceipt,
    /// submit_sm_resp in decimal, receipts in hex.
    DecimalSubmitHexReceipt,
}

// ---- the file model -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: FileServer,
    api: clients::FileApi,
    directory: Option<signin::FileDirectory>,
    signin: Option<signin::FileSignIn>,
    #[serde(default)]
    admin: signin::FileAdmin,
    otp: FileOtp,
    #[serde(default)]
    limits: FileLimits,
    /// One carrier (the short form) ...
    carrier: Option<FileCarrier>,
    /// ... or several.
    #[serde(default)]
    carriers: Vec<FileCarrier>,
    #[serde(default)]
    routes: Vec<FileRoute>,
    #[serde(default)]
    delivery: FileDelivery,
    #[serde(default)]
    callbacks: FileCallbacks,
    destinations: Option<destinations::FileDestinations>,
    pumping: Option<pumping::FilePumping>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCallbacks {
    #[serde(default = "defaults::callback_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "defaults::callback_max_attempts")]
    max_attempts: u32,
    #[serde(default = "defaults::callback_queue_capacity")]
    queue_capacity: usize,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    private_hosts: Vec<String>,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
}

impl Default for FileCallbacks {
    fn default() -> Self {
        Self {
            timeout_ms: defaults::callback_timeout_ms(),
            max_attempts: defaults::callback_max_attempts(),
            queue_capacity: defaults::callback_queue_capacity(),
            allowed_hosts: Vec::new(),
            private_hosts: Vec::new(),
            secret_file: None,
            secret_env: None,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileConcatenation {
    #[default]
    Udh,
    Sar,
    Payload,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDelivery {
    #[serde(default = "defaults::delivery_max_records")]
    max_records: usize,
    #[serde(default = "defaults::delivery_ttl_seconds")]
    ttl_seconds: u64,
    #[serde(default = "defaults::sms_validity_seconds")]
    sms_validity_seconds: u64,
    #[serde(default = "defaults::receipt_wait_seconds")]
    receipt_wait_seconds: u64,
    #[serde(default = "defaults::early_receipt_hold_ms")]
    early_receipt_hold_ms: u64,
    #[serde(default = "defaults::early_receipts_max")]
    early_receipts_max: usize,
}

impl Default for FileDelivery {
    fn default() -> Self {
        Self {
            max_records: defaults::delivery_max_records(),
            ttl_seconds: defaults::delivery_ttl_seconds(),
            sms_validity_seconds: defaults::sms_validity_seconds(),
            receipt_wait_seconds: defaults::receipt_wait_seconds(),
            early_receipt_hold_ms: defaults::early_receipt_hold_ms(),
            early_receipts_max: defaults::early_receipts_max(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    #[serde(default = "defaults::max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default = "defaults::shutdown_timeout_seconds")]
    shutdown_timeout_seconds: u64,
    #[serde(default = "defaults::max_connections")]
    max_connections: usize,
    #[serde(default = "defaults::header_read_timeout_seconds")]
    header_read_timeout_seconds: u64,
    #[serde(default = "defaults::body_read_timeout_seconds")]
    body_read_timeout_seconds: u64,
    #[serde(default = "defaults::write_timeout_seconds")]
    write_timeout_seconds: u64,
    /// HTTPS on the API listener.
    tls: Option<edge::FileTls>,
    #[serde(default)]
    client_ip: edge::FileClientIp,
    /// `/metrics` answers only a key with the scope `metrics`.
    #[serde(default)]
    metrics_require_key: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOtp {
    #[serde(default = "defaults::code_length")]
    code_length: u8,
    #[serde(default = "defaults::ttl_seconds")]
    ttl_seconds: u64,
    #[serde(default = "defaults::max_attempts")]
    max_attempts: u32,
    #[serde(default = "defaults::max_pending")]
    max_pending: usize,
    #[serde(default = "defaults::sweep_interval_seconds")]
    sweep_interval_seconds: u64,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    #[serde(default = "defaults::sms_template")]
    sms_template: String,
    /// Locale -> template, chosen by the send request's `locale`.
    #[serde(default)]
    templates: std::collections::BTreeMap<String, String>,
    #[serde(default = "defaults::app_name")]
    app_name: String,
    android_app_hash: Option<String>,
    webotp_domain: Option<String>,
    #[serde(default = "defaults::max_parts")]
    max_parts: u8,
    #[serde(default = "defaults::max_consecutive_failures")]
    max_consecutive_failures: u32,
    #[serde(default = "defaults::lockout_initial_seconds")]
    lockout_initial_seconds: u64,
    #[serde(default = "defaults::lockout_max_seconds")]
    lockout_max_seconds: u64,
    #[serde(default = "defaults::max_failures_per_day")]
    max_failures_per_day: u32,
    #[serde(default = "defaults::verify_floor_ms")]
    verify_floor_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    #[serde(default = "defaults::send_burst")]
    send_burst: u32,
    #[serde(default = "defaults::send_period_seconds")]
    send_period_seconds: u64,
    #[serde(default = "defaults::verify_burst")]
    verify_burst: u32,
    #[serde(default = "defaults::verify_period_seconds")]
    verify_period_seconds: u64,
    #[serde(default = "defaults::global_sends_per_second")]
    global_sends_per_second: u32,
    /// Absent: half of `global_sends_per_second`.
    client_sends_per_second: Option<u32>,
    #[serde(default = "defaults::ip_send_burst")]
    ip_send_burst: u32,
    #[serde(default = "defaults::ip_send_period_seconds")]
    ip_send_period_seconds: u64,
    #[serde(default = "defaults::prune_interval_seconds")]
    prune_interval_seconds: u64,
    #[serde(default = "defaults::max_sms_per_number_per_day")]
    max_sms_per_number_per_day: u32,
    #[serde(default = "defaults::resend_intervals_seconds")]
    resend_intervals_seconds: Vec<u64>,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            send_burst: defaults::send_burst(),
            send_period_seconds: defaults::send_period_seconds(),
            verify_burst: defaults::verify_burst(),
            verify_period_seconds: defaults::verify_period_seconds(),
            global_sends_per_second: defaults::global_sends_per_second(),
            client_sends_per_second: None,
            ip_send_burst: defaults::ip_send_burst(),
            ip_send_period_seconds: defaults::ip_send_period_seconds(),
            prune_interval_seconds: defaults::prune_interval_seconds(),
            max_sms_per_number_per_day: defaults::max_sms_per_number_per_day(),
            resend_intervals_seconds: defaults::resend_intervals_seconds(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    #[serde(default)]
    prefix: String,
    carrier: String,
    #[serde(default)]
    priority: u32,
    #[serde(default = "defaults::route_weight")]
    weight: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCarrier {
    name: String,
    host: String,
    port: u16,
    system_id: String,
    password: Option<String>,
    password_env: Option<String>,
    #[serde(default)]
    system_type: String,
    #[serde(default = "defaults::interface_version")]
    interface_version: InterfaceVersion,
    source_addr: String,
    #[serde(default = "defaults::source_addr_ton")]
    source_addr_ton: u8,
    #[serde(default)]
    source_addr_npi: u8,
    #[serde(default)]
    registered_delivery: u8,
    /// Send Latin-1 (data_coding 3) when a text fits it and not GSM 03.38.
    #[serde(default)]
    allow_latin1: bool,
    #[serde(default = "defaults::binds")]
    binds: usize,
    #[serde(default = "defaults::bind_mode")]
    bind_mode: BindMode,
    #[serde(default)]
    address_range: String,
    #[serde(default)]
    address_range_ton: u8,
    #[serde(default)]
    address_range_npi: u8,
    #[serde(default = "defaults::breaker_failures")]
    breaker_failures: u32,
    #[serde(default = "defaults::breaker_open_seconds")]
    breaker_open_seconds: u64,
    #[serde(default)]
    concatenation: FileConcatenation,
    #[serde(default)]
    tls: bool,
    tls_ca_file: Option<PathBuf>,
    tls_server_name: Option<String>,
    tls_client_cert: Option<PathBuf>,
    tls_client_key: Option<PathBuf>,
    max_messages_per_second: Option<u32>,
    #[serde(default = "defaults::window")]
    window: usize,
    #[serde(default = "defaults::queue_capacity")]
    queue_capacity: usize,
    #[serde(default = "defaults::connect_timeout_ms")]
    connect_timeout_ms: u64,
    #[serde(default = "defaults::bind_timeout_ms")]
    bind_timeout_ms: u64,
    #[serde(default = "defaults::response_timeout_ms")]
    response_timeout_ms: u64,
    #[serde(default = "defaults::enquire_link_interval_ms")]
    enquire_link_interval_ms: u64,
    /// Default: the interval, capped at 10 s.
    enquire_link_timeout_ms: Option<u64>,
    #[serde(default = "defaults::unbind_timeout_ms")]
    unbind_timeout_ms: u64,
    #[serde(default = "defaults::throttle_pause_ms")]
    throttle_pause_ms: u64,
    #[serde(default = "defaults::reconnect_initial_ms")]
    reconnect_initial_ms: u64,
    #[serde(default = "defaults::reconnect_max_ms")]
    reconnect_max_ms: u64,
    #[serde(default = "defaults::max_pdu_length")]
    max_pdu_length: usize,
    #[serde(default = "defaults::carrier_write_timeout_ms")]
    write_timeout_ms: u64,
    #[serde(default = "defaults::response_timeouts_before_reconnect")]
    response_timeouts_before_reconnect: u32,
    #[serde(default = "defaults::max_resends")]
    max_resends: u32,
    #[serde(default)]
    receipt_id_format: ReceiptIdFormat,
}

mod defaults {
    use super::{BindMode, InterfaceVersion};
    pub fn route_weight() -> u32 {
        1
    }
    pub fn binds() -> usize {
        1
    }
    pub fn bind_mode() -> BindMode {
        BindMode::Transceiver
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_open_seconds() -> u64 {
        30
    }
    pub fn max_body_bytes() -> usize {
        16 * 1024
    }
    pub fn shutdown_timeout_seconds() -> u64 {
        10
    }
    pub fn max_connections() -> usize {
        4096
    }
    pub fn header_read_timeout_seconds() -> u64 {
        10
    }
    pub fn write_timeout_seconds() -> u64 {
        10
    }
    pub fn body_read_timeout_seconds() -> u64 {
        10
    }
    pub fn max_parts() -> u8 {
        1
    }
    pub fn code_length() -> u8 {
        6
    }
    pub fn ttl_seconds() -> u64 {
        300
    }
    pub fn max_sms_per_number_per_day() -> u32 {
        10
    }
    pub fn resend_intervals_seconds() -> Vec<u64> {
        vec![30, 60, 120, 240]
    }
    pub fn max_consecutive_failures() -> u32 {
        10
    }
    pub fn lockout_initial_seconds() -> u64 {
        60
    }
    pub fn lockout_max_seconds() -> u64 {
        3600
    }
    /// Every judged verification answers no sooner than this after it was read.
    pub fn verify_floor_ms() -> u64 {
        2
    }
    pub fn max_failures_per_day() -> u32 {
        50
    }
    pub fn max_attempts() -> u32 {
        5
    }
    pub fn max_pending() -> usize {
        1_000_000
    }
    pub fn sweep_interval_seconds() -> u64 {
        10
    }
    pub fn app_name() -> String {
        "otpgate".to_owned()
    }
    pub fn sms_template() -> String {
        "Your verification code is {code}. It expires in {minutes} minutes.".to_owned()
    }
    pub fn send_burst() -> u32 {
        3
    }
    pub fn send_period_seconds() -> u64 {
        60
    }
    pub fn verify_burst() -> u32 {
        10
    }
    pub fn verify_period_seconds() -> u64 {
        10
    }
    pub fn global_sends_per_second() -> u32 {
        1000
    }
    pub fn ip_send_burst() -> u32 {
        30
    }
    pub fn ip_send_period_seconds() -> u64 {
        10
    }
    pub fn prune_interval_seconds() -> u64 {
        60
    }
    pub fn interface_version() -> InterfaceVersion {
        InterfaceVersion::V34
    }
    pub fn source_addr_ton() -> u8 {
        5
    }
    pub fn window() -> usize {
        10
    }
    pub fn queue_capacity() -> usize {
        10_000
    }
    pub fn connect_timeout_ms() -> u64 {
        5_000
    }
    pub fn bind_timeout_ms() -> u64 {
        5_000
    }
    pub fn response_timeout_ms() -> u64 {
        10_000
    }
    pub fn enquire_link_interval_ms() -> u64 {
        30_000
    }
    pub fn throttle_pause_ms() -> u64 {
        1_000
    }
    pub fn unbind_timeout_ms() -> u64 {
        2_000
    }
    pub fn reconnect_initial_ms() -> u64 {
        250
    }
    pub fn reconnect_max_ms() -> u64 {
        30_000
    }
    pub fn max_pdu_length() -> usize {
        65_536
    }
    pub fn carrier_write_timeout_ms() -> u64 {
        10_000
    }
    pub fn response_timeouts_before_reconnect() -> u32 {
        1
    }
    pub fn max_resends() -> u32 {
        2
    }
    pub fn early_receipt_hold_ms() -> u64 {
        60_000
    }
    pub fn early_receipts_max() -> usize {
        10_000
    }
    pub fn delivery_max_records() -> usize {
        1_000_000
    }
    pub fn delivery_ttl_seconds() -> u64 {
        86_400
    }
    pub fn sms_validity_seconds() -> u64 {
        3_600
    }
    pub fn receipt_wait_seconds() -> u64 {
        3_600
    }
    pub fn callback_timeout_ms() -> u64 {
        5_000
    }
    pub fn callback_max_attempts() -> u32 {
        5
    }
    pub fn callback_queue_capacity() -> usize {
        10_000
    }
}

// ---- validation -----------------------------------------------------------------------------

impl Config {
    /// Reads and validates `path`; relative paths inside resolve against the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Validates TOML `text` as if read from `path` (which names errors and anchors relative paths).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        Validator::new(path).config(file)
    }
}

struct Validator {
    path: PathBuf,
    base: PathBuf,
}

impl Validator {
    fn new(path: &Path) -> Self {
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        Self {
            path: path.to_owned(),
            base,
        }
    }

    fn invalid(
        &self,
        setting: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            setting: setting.into(),
            message: message.into(),
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        }
    }

    fn read(&self, setting: &'static str, path: &Path) -> Result<String, ConfigError> {
        let full = self.resolve(path);
        std::fs::read_to_string(&full)
            .map_err(|err| self.invalid(setting, format!("cannot read {}: {err}", full.display())))
    }

    fn env(&self, setting: &'static str, name: &str) -> Result<String, ConfigError> {
        std::env::var(name)
            .map_err(|_| self.invalid(setting, format!("environment variable {name} is not set")))
    }

    fn pumping(
        &self,
        destinations: Option<destinations::FileDestinations>,
        pumping: Option<pumping::FilePumping>,
    ) -> Result<crate::pumping::PumpingPolicy, ConfigError> {
        let mut policy = crate::pumping::PumpingPolicy::default();
        if let Some(section) = destinations {
            policy.destinations = section.try_into().map_err(|err| self.placed(err))?;
        }
        match pumping {
            Some(section) => section.into_policy(policy).map_err(|err| self.placed(err)),
            None => Ok(policy),
        }
    }

    /// A section's error, placed in this file.
    fn placed(&self, err: SettingError) -> ConfigError {
        self.invalid(err.setting, err.message)
    }

    fn positive(&self, setting: &'static str, value: u64) -> Result<u64, ConfigError> {
        positive(setting, value).map_err(|err| self.placed(err))
    }

    fn non_zero(
        &self,
        setting: impl Into<Cow<'static, str>>,
        value: u32,
    ) -> Result<NonZeroU32, ConfigError> {
        NonZeroU32::new(value).ok_or_else(|| self.invalid(setting, "must be greater than 0"))
    }

    fn config(&self, file: FileConfig) -> Result<Config, ConfigError> {
        let clients = self.clients(file.api)?;
        let (directory, signin) = self.directory(file.directory, file.signin)?;
        let carriers = self.carriers(file.carrier, file.carriers)?;
        let server = self.server(file.server)?;
        if server.metrics_require_key
            && !clients
                .iter()
                .any(|c| c.scopes.contains(clients::Scope::Metrics))
        {
            return Err(self.invalid(
                "server.metrics_require_key",
                "no API client has the scope metrics: /metrics would answer nobody",
            ));
        }
        let limits = self.limits(&file.limits)?;
        if let Some(client) = clients.iter().find(|c| {
            c.sends_per_second
                .is_some_and(|rate| rate > limits.global_sends_per_second)
        }) {
            return Err(self.invalid(
                "api.clients.sends_per_second",
                format!(
                    "{}: must not exceed limits.global_sends_per_second (one client could take it all)",
                    client.name
                ),
            ));
        }
        Ok(Config {
            server,
            clients,
            directory,
            signin,
            admin: self.admin(file.admin),
            // A text is counted in parts the strictest carrier would need.
            otp: self.otp(file.otp, carriers.iter().all(|c| c.allow_latin1))?,
            limits,
            limits_prune_interval: Duration::from_secs(self.positive(
                "limits.prune_interval_seconds",
                file.limits.prune_interval_seconds,
            )?),
            routes: self.routes(file.routes, &carriers)?,
            carriers,
            delivery: self.delivery(&file.delivery)?,
            callbacks: crate::webhooks::WebhookSettings {
                timeout: Duration::from_millis(
                    self.positive("callbacks.timeout_ms", file.callbacks.timeout_ms)?,
                ),
                max_attempts: self
                    .non_zero("callbacks.max_attempts", file.callbacks.max_attempts)?
                    .get(),
                queue_capacity: file.callbacks.queue_capacity.max(1),
                allowed_hosts: file.callbacks.allowed_hosts,
                private_hosts: crate::webhooks::PrivateHosts::new(&file.callbacks.private_hosts),
                default_secret: self.webhook_secret(
                    "callbacks",
                    file.callbacks.secret_file.as_deref(),
                    file.callbacks.secret_env.as_deref(),
                )?,
            },
            pumping: self.pumping(file.destinations, file.pumping)?,
        })
    }

    fn delivery(&self, delivery: &FileDelivery) -> Result<DeliveryConfig, ConfigError> {
        if delivery.receipt_wait_seconds > delivery.ttl_seconds {
            return Err(self.invalid(
                "delivery.receipt_wait_seconds",
                "must not exceed ttl_seconds (the record must outlive the wait)",
            ));
        }
        if delivery.max_records == 0 {
            return Err(self.invalid("delivery.max_records", "must be greater than 0"));
        }
        Ok(DeliveryConfig {
            max_records: delivery.max_records,
            ttl: Duration::from_secs(self.positive("delivery.ttl_seconds", delivery.ttl_seconds)?),
            sms_validity: Duration::from_secs(self.positive(
                "delivery.sms_validity_seconds",
                delivery.sms_validity_seconds,
            )?),
            receipt_wait: Duration::from_secs(self.positive(
                "delivery.receipt_wait_seconds",
                delivery.receipt_wait_seconds,
            )?),
            early_receipt_hold: Duration::from_millis(self.positive(
                "delivery.early_receipt_hold_ms",
                delivery.early_receipt_hold_ms,
            )?),
            early_receipts_max: delivery.early_receipts_max,
        })
    }

    fn server(&self, server: FileServer) -> Result<ServerConfig, ConfigError> {
        if server.max_body_bytes < 256 {
            return Err(self.invalid("server.max_body_bytes", "must be at least 256"));
        }
        Ok(ServerConfig {
            listen: server.listen,
            metrics_listen: server.metrics_listen,
            max_body_bytes: server.max_body_bytes,
            shutdown_timeout: Duration::from_secs(self.positive(
                "server.shutdown_timeout_seconds",
                server.shutdown_timeout_seconds,
            )?),
            max_connections: self
                .positive("server.max_connections", server.max_connections as u64)?
                as usize,
            header_read_timeout: Duration::from_secs(self.positive(
                "server.header_read_timeout_seconds",
                server.header_read_timeout_seconds,
            )?),
            write_timeout: Duration::from_secs(
                self.positive("server.write_timeout_seconds", server.write_timeout_seconds)?,
            ),
            body_read_timeout: Duration::from_secs(self.positive(
                "server.body_read_timeout_seconds",
                server.body_read_timeout_seconds,
            )?),
            https: server
                .tls
                .map(|tls| crate::http::tls::Https::try_from(tls.relative_to(&self.base)))
                .transpose()
                .map_err(|err| self.placed(err))?,
            client_ip: server
                .client_ip
                .try_into()
                .map_err(|err| self.placed(err))?,
            metrics_require_key: server.metrics_require_key,
        })
    }

    /// Every key is at least 8 printable ASCII characters without spaces; an error names the
    /// first that is not by its position (never by its text).
    fn check_keys(&self, setting: &'static str, keys: &[String]) -> Result<(), ConfigError> {
        match keys
            .iter()
            .position(|k| k.len() < 8 || !k.bytes().all(|b| b.is_ascii_graphic()))
        {
            Some(bad) => Err(self.invalid(
                setting,
                format!(
                    "key #{} must be at least 8 printable ASCII characters without spaces",
                    bad + 1
                ),
            )),
            None => Ok(()),
        }
    }

    fn otp(&self, otp: FileOtp, allow_latin1: bool) -> Result<OtpConfig, ConfigError> {
        if !(code::MIN_LENGTH..=code::MAX_LENGTH).contains(&otp.code_length) {
            return Err(self.invalid(
                "otp.code_length",
                format!(
                    "must be between {} and {}",
                    code::MIN_LENGTH,
                    code::MAX_LENGTH
                ),
            ));
        }
        let ttl = Duration::from_secs(self.positive("otp.ttl_seconds", otp.ttl_seconds)?);
        // NIST SP 800-63B 5.1.3.2 and OWASP ASVS 2.7: an out-of-band code lives at most 10
        // minutes, and wrong guesses are limited; more than 10 attempts per code only helps a
        // guesser.
        if otp.ttl_seconds > MAX_CODE_TTL_SECONDS {
            return Err(self.invalid(
                "otp.ttl_seconds",
                format!(
                    "must be at most {MAX_CODE_TTL_SECONDS} (NIST SP 800-63B: an SMS code lives at most 10 minutes)"
                ),
            ));
        }
        let max_attempts = self.non_zero("otp.max_attempts", otp.max_attempts)?.get();
        if max_attempts > MAX_ATTEMPTS_PER_CODE {
            return Err(self.invalid(
                "otp.max_attempts",
                format!(
                    "must be at most {MAX_ATTEMPTS_PER_CODE} (each attempt is a guess at the code)"
                ),
            ));
        }
        if otp.max_pending == 0 {
            return Err(self.invalid("otp.max_pending", "must be greater than 0"));
        }
        let secret = match (&otp.secret_file, &otp.secret_env) {
            (Some(path), None) => self
                .read("otp.secret_file", path)?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            (None, Some(name)) => self.env("otp.secret_env", name)?,
            _ => return Err(self.invalid("otp", "set exactly one of secret_file and secret_env")),
        };
        if secret.len() < MIN_SECRET_BYTES {
            return Err(self.invalid(
                "otp.secret",
                format!(
                    "the secret has {} bytes; at least {MIN_SECRET_BYTES} are required",
                    secret.len()
                ),
            ));
        }
        let settings = MessageSettings {
            default_template: otp.sms_template,
            templates: otp.templates,
            app_name: otp.app_name,
            android_app_hash: otp.android_app_hash,
            webotp_domain: otp.webotp_domain,
            code_length: otp.code_length,
            allow_latin1,
            max_parts: otp.max_parts,
        };
        if otp.max_parts == 0 {
            return Err(self.invalid("otp.max_parts", "must be between 1 and 255"));
        }
        let messages = Messages::new(&settings).map_err(|(locale, err)| match locale {
            None => self.invalid("otp.sms_template", err.to_string()),
            Some(locale) => self.invalid("otp.templates", format!("{locale}: {err}")),
        })?;
        if !(1..=100).contains(&otp.max_consecutive_failures) {
            return Err(self.invalid(
                "otp.max_consecutive_failures",
                "must be between 1 and 100 (NIST SP 800-63B 5.2.2 allows at most 100)",
            ));
        }
        if !(1..=50).contains(&otp.max_failures_per_day) {
            return Err(self.invalid(
                "otp.max_failures_per_day",
                "must be between 1 and 50 (two day windows meet in any 24 hours: at most 100 wrong guesses)",
            ));
        }
        if otp.lockout_max_seconds < otp.lockout_initial_seconds {
            return Err(self.invalid(
                "otp.lockout_max_seconds",
                "must not be below lockout_initial_seconds",
            ));
        }
        let guessing = crate::otp::GuessPolicy {
            max_consecutive_failures: otp.max_consecutive_failures,
            lockout_initial: Duration::from_secs(
                self.positive("otp.lockout_initial_seconds", otp.lockout_initial_seconds)?,
            ),
            lockout_max: Duration::from_secs(otp.lockout_max_seconds),
            max_failures_per_day: otp.max_failures_per_day,
        };
        Ok(OtpConfig {
            policy: Policy {
                code_length: otp.code_length,
                ttl,
                max_attempts,
            },
            guessing,
            secret: Secret(secret),
            max_pending: otp.max_pending,
            sweep_interval: Duration::from_secs(
                self.positive("otp.sweep_interval_seconds", otp.sweep_interval_seconds)?,
            ),
            messages,
            verify_floor: Duration::from_millis(if otp.verify_floor_ms <= 1000 {
                otp.verify_floor_ms
            } else {
                return Err(self.invalid(
                    "otp.verify_floor_ms",
                    "must be at most 1000 (0 turns the floor off)",
                ));
            }),
        })
    }

    fn limits(&self, limits: &FileLimits) -> Result<LimitsConfig, ConfigError> {
        Ok(LimitsConfig {
            send: Rate {
                burst: self.non_zero("limits.send_burst", limits.send_burst)?,
                period: Duration::from_secs(
                    self.positive("limits.send_period_seconds", limits.send_period_seconds)?,
                ),
            },
            verify: Rate {
                burst: self.non_zero("limits.verify_burst", limits.verify_burst)?,
                period: Duration::from_secs(
                    self.positive("limits.verify_period_seconds", limits.verify_period_seconds)?,
                ),
            },
            global_sends_per_second: self.non_zero(
                "limits.global_sends_per_second",
                limits.global_sends_per_second,
            )?,
            // Half the ceiling unless set: one client alone can never take all of it.
            client_sends_per_second: match limits.client_sends_per_second {
                None => {
                    NonZeroU32::new(limits.global_sends_per_second / 2).unwrap_or(NonZeroU32::MIN)
                }
                Some(rate) if rate > limits.global_sends_per_second => {
                    return Err(self.invalid(
                        "limits.client_sends_per_second",
                        "must not exceed global_sends_per_second (one client could take it all)",
                    ));
                }
                Some(rate) => self.non_zero("limits.client_sends_per_second", rate)?,
            },
            ip_send: Rate {
                burst: self.non_zero("limits.ip_send_burst", limits.ip_send_burst)?,
                period: Duration::from_secs(self.positive(
                    "limits.ip_send_period_seconds",
                    limits.ip_send_period_seconds,
                )?),
            },
            sms_budget: crate::sms_budget::SmsBudgetPolicy {
                max_per_day: self
                    .non_zero(
                        "limits.max_sms_per_number_per_day",
                        limits.max_sms_per_number_per_day,
                    )?
                    .get(),
                intervals: limits
                    .resend_intervals_seconds
                    .iter()
                    .map(|&s| Duration::from_secs(s))
                    .collect(),
            },
        })
    }

    fn smpp_string(
        &self,
        setting: &'static str,
        value: &str,
        max: usize,
    ) -> Result<(), ConfigError> {
        if value.len() > max || !value.is_ascii() || value.contains('\0') {
            return Err(self.invalid(
                setting,
                format!("must be ASCII of at most {max} characters (SMPP limit)"),
            ));
        }
        Ok(())
    }

    fn carrier(&self, carrier: FileCarrier) -> Result<CarrierConfig, ConfigError> {
        if carrier.name.is_empty()
            || !carrier
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(self.invalid(
                "carrier.name",
                "must be non-empty letters, digits, '-' or '_'",
            ));
        }
        if carrier.host.is_empty() {
            return Err(self.invalid("carrier.host", "must not be empty"));
        }
        self.smpp_string("carrier.system_id", &carrier.system_id, 15)?;
        self.smpp_string("carrier.system_type", &carrier.system_type, 12)?;
        let password = match (carrier.password, &carrier.password_env) {
            (Some(password), None) => password,
            (None, Some(name)) => self.env("carrier.password_env", name)?,
            _ => {
                return Err(self.invalid("carrier", "set exactly one of password and password_env"));
            }
        };
        self.smpp_string("carrier.password", &password, 8)?;
        if carrier.source_addr.is_empty() {
            return Err(self.invalid("carrier.source_addr", "must not be empty"));
        }
        self.smpp_string("carrier.source_addr", &carrier.source_addr, 20)?;
        // TON 5 is an alphanumeric sender: handsets show at most 11 GSM characters.
        if carrier.source_addr_ton == 5 && carrier.source_addr.len() > 11 {
            return Err(self.invalid(
                "carrier.source_addr",
                "an alphanumeric sender (TON 5) has at most 11 characters",
            ));
        }
        if !(1..=1000).contains(&carrier.window) {
            return Err(self.invalid("carrier.window", "must be between 1 and 1000"));
        }
        if carrier.queue_capacity == 0 {
            return Err(self.invalid("carrier.queue_capacity", "must be greater than 0"));
        }
        if carrier
            .enquire_link_timeout_ms
            .is_some_and(|timeout| timeout > carrier.enquire_link_interval_ms)
        {
            return Err(self.invalid(
                "carrier.enquire_link_timeout_ms",
                "must not exceed enquire_link_interval_ms (so a dead link is found within twice the interval)",
            ));
        }
        if carrier.tls_client_cert.is_some() != carrier.tls_client_key.is_some() {
            return Err(self.invalid(
                "carrier.tls_client_cert",
                "tls_client_cert and tls_client_key go together",
            ));
        }
        let tls_options = carrier.tls_ca_file.is_some()
            || carrier.tls_server_name.is_some()
            || carrier.tls_client_cert.is_some();
        if tls_options && !carrier.tls {
            return Err(self.invalid("carrier.tls", "tls_* settings need tls = true"));
        }
        // Read the TLS files now, so --check-config (systemd's ExecStartPre) catches them.
        for (setting, path) in [
            ("carrier.tls_ca_file", &carrier.tls_ca_file),
            ("carrier.tls_client_cert", &carrier.tls_client_cert),
            ("carrier.tls_client_key", &carrier.tls_client_key),
        ] {
            if let Some(path) = path {
                self.read(setting, path)?;
            }
        }
        if carrier.max_pdu_length < 1024 {
            return Err(self.invalid("carrier.max_pdu_length", "must be at least 1024"));
        }
        if carrier.reconnect_max_ms < carrier.reconnect_initial_ms {
            return Err(self.invalid(
                "carrier.reconnect_max_ms",
                "must not be below reconnect_initial_ms",
            ));
        }
        if !(1..=100).contains(&carrier.response_timeouts_before_reconnect) {
            return Err(self.invalid(
                "carrier.response_timeouts_before_reconnect",
                "must be between 1 and 100",
            ));
        }
        if carrier.max_resends > 10 {
            return Err(self.invalid(
                "carrier.max_resends",
                "must be at most 10 (each resend may reach the phone as a duplicate)",
            ));
        }
        if !(1..=64).contains(&carrier.binds) {
            return Err(self.invalid("carrier.binds", "must be between 1 and 64"));
        }
        self.smpp_string("carrier.address_range", &carrier.address_range, 40)?;
        let ms = |setting, value| self.positive(setting, value).map(Duration::from_millis);
        Ok(CarrierConfig {
            name: carrier.name,
            host: carrier.host,
            port: carrier.port,
            system_id: carrier.system_id,
            password: Secret(password),
            system_type: carrier.system_type,
            interface_version: carrier.interface_version,
            source_addr: carrier.source_addr,
            source_addr_ton: carrier.source_addr_ton,
            source_addr_npi: carrier.source_addr_npi,
            registered_delivery: carrier.registered_delivery,
            allow_latin1: carrier.allow_latin1,
            binds: carrier.binds,
            bind_mode: carrier.bind_mode,
            address_range: carrier.address_range,
            address_range_ton: carrier.address_range_ton,
            address_range_npi: carrier.address_range_npi,
            breaker: BreakerConfig {
                failures: self
                    .non_zero("carrier.breaker_failures", carrier.breaker_failures)?
                    .get(),
                open: Duration::from_secs(
                    self.positive("carrier.breaker_open_seconds", carrier.breaker_open_seconds)?,
                ),
            },
            concatenation: match carrier.concatenation {
                FileConcatenation::Udh => smpp_wire::segment::Concatenation::Udh8,
                FileConcatenation::Sar => smpp_wire::segment::Concatenation::Sar,
                FileConcatenation::Payload => smpp_wire::segment::Concatenation::Payload,
            },
            tls: carrier.tls.then(|| TlsClientConfig {
                ca_file: carrier.tls_ca_file.as_deref().map(|p| self.resolve(p)),
                server_name: carrier.tls_server_name.clone(),
                client_cert: carrier.tls_client_cert.as_deref().map(|p| self.resolve(p)),
                client_key: carrier.tls_client_key.as_deref().map(|p| self.resolve(p)),
            }),
            max_messages_per_second: match carrier.max_messages_per_second {
                None => None,
                Some(rate) => Some(self.non_zero("carrier.max_messages_per_second", rate)?),
            },
            window: carrier.window,
            queue_capacity: carrier.queue_capacity,
            connect_timeout: ms("carrier.connect_timeout_ms", carrier.connect_timeout_ms)?,
            bind_timeout: ms("carrier.bind_timeout_ms", carrier.bind_timeout_ms)?,
            response_timeout: ms("carrier.response_timeout_ms", carrier.response_timeout_ms)?,
            enquire_link_interval: ms(
                "carrier.enquire_link_interval_ms",
                carrier.enquire_link_interval_ms,
            )?,
            enquire_link_timeout: ms(
                "carrier.enquire_link_timeout_ms",
                carrier
                    .enquire_link_timeout_ms
                    .unwrap_or(carrier.enquire_link_interval_ms.min(10_000)),
            )?,
            unbind_timeout: ms("carrier.unbind_timeout_ms", carrier.unbind_timeout_ms)?,
            throttle_pause: ms("carrier.throttle_pause_ms", carrier.throttle_pause_ms)?,
            reconnect_initial: ms("carrier.reconnect_initial_ms", carrier.reconnect_initial_ms)?,
            reconnect_max: ms("carrier.reconnect_max_ms", carrier.reconnect_max_ms)?,
            max_pdu_length: carrier.max_pdu_length,
            write_timeout: ms("carrier.write_timeout_ms", carrier.write_timeout_ms)?,
            response_timeouts_before_reconnect: carrier.response_timeouts_before_reconnect,
            max_resends: carrier.max_resends,
            receipt_id_format: carrier.receipt_id_format,
        })
    }

    /// `[carrier]` or `[[carriers]]`, exactly one form; in the list, errors name the entry.
    fn carriers(
        &self,
        single: Option<FileCarrier>,
        list: Vec<FileCarrier>,
    ) -> Result<Vec<CarrierConfig>, ConfigError> {
        let list = match (single, list.is_empty()) {
            (Some(carrier), true) => return Ok(vec![self.carrier(carrier)?]),
            (None, false) => list,
            (None, true) => {
                return Err(self.invalid("carriers", "configure [carrier] or [[carriers]]"));
            }
            (Some(_), false) => {
                return Err(self.invalid("carriers", "use [carrier] or [[carriers]], not both"));
            }
        };
        let mut carriers: Vec<CarrierConfig> = Vec::with_capacity(list.len());
        for (index, file) in list.into_iter().enumerate() {
            let name = file.name.clone();
            let carrier = self.carrier(file).map_err(|err| match err {
                ConfigError::Invalid {
                    path,
                    setting,
                    message,
                } => ConfigError::Invalid {
                    path,
                    setting: Cow::Owned(setting.replacen(
                        "carrier",
                        &format!("carriers[{index}]"),
                        1,
                    )),
                    message: format!("(carrier {name:?}) {message}"),
                },
                other => other,
            })?;
            if carriers.iter().any(|c| c.name == carrier.name) {
                return Err(self.invalid(
                    format!("carriers[{index}].name"),
                    format!("{name:?} is used twice"),
                ));
            }
            carriers.push(carrier);
        }
        Ok(carriers)
    }

    /// `[[routes]]`, checked against the carriers; without any, each carrier serves every number,
    /// in the order listed (the first is primary, the others take over in turn).
    fn routes(
        &self,
        list: Vec<FileRoute>,
        carriers: &[CarrierConfig],
    ) -> Result<Vec<RouteConfig>, ConfigError> {
        if list.is_empty() {
            return Ok(carriers
                .iter()
                .zip(0u32..)
                .map(|(carrier, priority)| RouteConfig {
                    prefix: String::new(),
                    carrier: carrier.name.clone(),
                    priority,
                    weight: 1,
                })
                .collect());
        }
        let mut routes: Vec<RouteConfig> = Vec::with_capacity(list.len());
        for (index, route) in list.into_iter().enumerate() {
            let setting = |field: &str| format!("routes[{index}].{field}");
            let digits = route.prefix.strip_prefix('+').unwrap_or(&route.prefix);
            if (!route.prefix.is_empty() && !route.prefix.starts_with('+'))
                || digits.len() > 15
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(self.invalid(
                    setting("prefix"),
                    "must be \"\" (every number) or + and up to 15 digits",
                ));
            }
            if !carriers.iter().any(|c| c.name == route.carrier) {
                return Err(self.invalid(
                    setting("carrier"),
                    format!("no carrier is named {:?}", route.carrier),
                ));
            }
            if !(1..=1000).contains(&route.weight) {
                return Err(self.invalid(setting("weight"), "must be between 1 and 1000"));
            }
            let route = RouteConfig {
                prefix: digits.to_owned(),
                carrier: route.carrier,
                priority: route.priority,
                weight: route.weight,
            };
            if routes
                .iter()
                .any(|r| r.prefix == route.prefix && r.carrier == route.carrier)
            {
                return Err(self.invalid(
                    setting("carrier"),
                    "the same carrier and prefix are routed twice",
                ));
            }
            routes.push(route);
        }
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn minimal(extra_otp: &str, extra_carrier: &str) -> String {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
[api]
keys = ["test-key-123"]
[otp]
secret_file = "secret.key"
{extra_otp}
[carrier]
name = "sim"
host = "127.0.0.1"
port = 2775
system_id = "otpgate"
password = "secret"
source_addr = "OTPGATE"
{extra_carrier}
"#
        )
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("secret.key"), format!("{SECRET}\n")).expect("write secret");
        Config::from_toml(text, &dir.path().join("otpgate.toml"))
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let config = parse(&minimal("", "")).expect("minimal config is valid");
        assert_eq!(config.otp.policy.code_length, 6);
        assert_eq!(config.otp.policy.ttl, Duration::from_secs(300));
        assert_eq!(config.otp.policy.max_attempts, 5);
        assert_eq!(config.limits.send.burst.get(), 3);
        assert_eq!(
            config.limits.client_sends_per_second.get(),
            500,
            "half of 1000"
        );
        assert_eq!(config.otp.verify_floor, Duration::from_millis(2));
        assert!(config.server.https.is_none() && !config.server.metrics_require_key);
        // `keys = [...]` is a key in clear, said at start.
        assert!(config.clients.iter().all(|c| c.key_in_clear));
        assert_eq!(config.server.max_body_bytes, 16 * 1024);
        assert_eq!(config.server.max_connections, 4096);
        assert_eq!(config.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.server.body_read_timeout, Duration::from_secs(10));
        assert_eq!(config.server.write_timeout, Duration::from_secs(10));
        assert_eq!(
            config.carriers[0].enquire_link_interval,
            Duration::from_secs(30)
        );
        assert_eq!(config.carriers[0].interface_version, InterfaceVersion::V34);
        assert_eq!(config.carriers[0].binds, 1);
        assert_eq!(config.carriers[0].throttle_pause, Duration::from_secs(1));
        assert_eq!(config.carriers[0].bind_mode, BindMode::Transceiver);
        assert_eq!(
            config.routes,
            [RouteConfig {
                prefix: String::new(),
                carrier: "sim".into(),
                priority: 0,
                weight: 1
            }]
        );
    }

    /// Two carriers and their routes, with `extra` appended to the file.
    fn two_carriers(extra: &str) -> String {
        let carrier = |name: &str| {
            format!(
                "[[carriers]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = 2775\n\
                 system_id = \"otpgate\"\npassword = \"secret\"\nsource_addr = \"OTPGATE\"\n"
            )
        };
        let head = minimal("", "");
        let head = &head[..head.find("[carrier]").expect("minimal has [carrier]")];
        format!("{head}{}{}{extra}", carrier("a"), carrier("b"))
    }

    #[test]
    fn several_carriers_without_routes_are_tried_in_the_order_listed() {
        let config = parse(&two_carriers("")).expect("valid");
        let order: Vec<(&str, u32)> = config
            .routes
            .iter()
            .map(|r| (r.carrier.as_str(), r.priority))
            .collect();
        assert_eq!(order, [("a", 0), ("b", 1)]);
    }

    #[test]
    fn routes_keep_digits_and_refuse_what_cannot_route() {
        let config = parse(&two_carriers(
            "[[routes]]\nprefix = \"+44\"\ncarrier = \"b\"\nweight = 3\n\
             [[routes]]\ncarrier = \"a\"\npriority = 2\n",
        ))
        .expect("valid");
        assert_eq!(config.routes[0].prefix, "44");
        assert_eq!(config.routes[0].weight, 3);
        assert_eq!(config.routes[1].prefix, "");
        for (extra, setting, words) in [
            (
                "[[routes]]\nprefix = \"44\"\ncarrier = \"a\"\n",
                "routes[0].prefix",
                "+",
            ),
            (
                "[[routes]]\ncarrier = \"c\"\n",
                "routes[0].carrier",
                "\"c\"",
            ),
            (
                "[[routes]]\ncarrier = \"a\"\nweight = 0\n",
                "routes[0].weight",
                "between",
            ),
            (
                "[[routes]]\ncarrier = \"a\"\n[[routes]]\ncarrier = \"a\"\n",
                "routes[1].carrier",
                "twice",
            ),
        ] {
            let err = parse(&two_carriers(extra)).expect_err(setting).to_string();
            assert!(err.contains(setting) && err.contains(words), "{err}");
        }
    }

    #[test]
    fn carrier_list_errors_name_the_entry() {
        let text = two_carriers("").replacen("port = 2775\n", "port = 2775\nwindow = 0\n", 2);
        let err = parse(&text).expect_err("window").to_string();
        assert!(
            err.contains("carriers[0].window") && err.contains("\"a\""),
            "{err}"
        );
        let twice = two_carriers("").replace("name = \"b\"", "name = \"a\"");
        let err = parse(&twice).expect_err("duplicate").to_string();
        assert!(err.contains("carriers[1].name"), "{err}");
        let both = format!(
            "{}{}",
            minimal("", ""),
            &two_carriers("")[two_carriers("").find("[[carriers]]").expect("list")..]
        );
        let err = parse(&both).expect_err("both forms").to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn bad_keys_are_named_by_position_not_by_text() {
        for (keys, setting, position) in [
            ("keys = [\"test-key-123\", \"short\"]", "api.keys", "key #2"),
            (
                "keys = [\"test-key-123\"]\nsms_keys = [\"has a space\"]",
                "api.sms_keys",
                "key #1",
            ),
        ] {
            let text = minimal("", "").replace("keys = [\"test-key-123\"]", keys);
            let err = parse(&text).expect_err(setting).to_string();
            assert!(err.contains(setting) && err.contains(position), "{err}");
            assert!(
                !err.contains("short") && !err.contains("has a space"),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = parse(&minimal("tll_seconds = 60", "")).expect_err("typo");
        assert!(err.to_string().contains("tll_seconds"), "{err}");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases = [
            (minimal("code_length = 4", ""), "otp.code_length"),
            (minimal("code_length = 11", ""), "otp.code_length"),
            (minimal("ttl_seconds = 601", ""), "otp.ttl_seconds"),
            (minimal("max_attempts = 11", ""), "otp.max_attempts"),
            (
                minimal("sms_template = \"no code here\"", ""),
                "otp.sms_template",
            ),
            (minimal("", "window = 0"), "carrier.window"),
            (minimal("", "binds = 0"), "carrier.binds"),
            (
                minimal("", "throttle_pause_ms = 0"),
                "carrier.throttle_pause_ms",
            ),
            (
                minimal("", "breaker_failures = 0"),
                "carrier.breaker_failures",
            ),
            (
                minimal("", &format!("address_range = \"{}\"", "9".repeat(41))),
                "carrier.address_range",
            ),
            (minimal("", "max_pdu_length = 10"), "carrier.max_pdu_length"),
            (
                minimal("", "tls_server_name = \"smsc.example.com\""),
                "carrier.tls",
            ),
            (
                minimal("", "tls = true\ntls_client_cert = \"c.pem\""),
                "carrier.tls_client_cert",
            ),
            (
                minimal("", "tls = true\ntls_ca_file = \"missing-ca.pem\""),
                "carrier.tls_ca_file",
            ),
            (
                minimal(
                    "",
                    "enquire_link_interval_ms = 1000\nenquire_link_timeout_ms = 2000",
                ),
                "carrier.enquire_link_timeout_ms",
            ),
            (
                minimal("", "").replace("\"OTPGATE\"", "\"AVERYLONGSENDER\""),
                "carrier.source_addr",
            ),
            (
                minimal("", "").replace("password = \"secret\"", ""),
                "carrier",
            ),
            (
                minimal("", "").replace("[api]", "max_connections = 0\n[api]"),
                "server.max_connections",
            ),
            (
                minimal("", "").replace("[api]", "header_read_timeout_seconds = 0\n[api]"),
                "server.header_read_timeout_seconds",
            ),
            (
                minimal("", "").replace("[api]", "body_read_timeout_seconds = 0\n[api]"),
                "server.body_read_timeout_seconds",
            ),
            (
                minimal("", "").replace("[api]", "write_timeout_seconds = 0\n[api]"),
                "server.write_timeout_seconds",
            ),
            (minimal("max_parts = 0", ""), "otp.max_parts"),
            (minimal("verify_floor_ms = 1001", ""), "otp.verify_floor_ms"),
            (
                minimal("", "").replace("[api]", "metrics_require_key = true\n[api]"),
                "server.metrics_require_key",
            ),
            (
                format!(
                    "{}\n[server.client_ip]\nheader = \"Forwarded\"",
                    minimal("", "")
                ),
                "server.client_ip.header",
            ),
            (
                format!(
                    "{}\n[server.client_ip]\ntrusted_proxies = [\"10.0.0.0/40\"]",
                    minimal("", "")
                ),
                "server.client_ip.trusted_proxies",
            ),
            (
                format!(
                    "{}\n[server.tls]\ncert_file = \"missing.crt\"\nkey_file = \"missing.key\"",
                    minimal("", "")
                ),
                "server.tls",
            ),
            (
                format!(
                    "{}\n[limits]\nglobal_sends_per_second = 10\nclient_sends_per_second = 11",
                    minimal("", "")
                ),
                "limits.client_sends_per_second",
            ),
            (
                format!(
                    "{}\n[limits]\nglobal_sends_per_second = 10\n[[api.clients]]\nname = \"x\"\n\
                     key_sha256 = \"{}\"\nscopes = [\"otp:send\"]\nsends_per_second = 11",
                    minimal("", ""),
                    "ab".repeat(32)
                ),
                "api.clients.sends_per_second",
            ),
            (
                minimal("", "").replace("keys = [\"test-key-123\"]", "keys = []"),
                "api.clients",
            ),
            (
                format!("{}\n[destinations]\ndeny = [\"44\"]", minimal("", "")),
                "destinations.deny",
            ),
            (
                format!("{}\n[destinations]\nsafe = [\"+3a\"]", minimal("", "")),
                "destinations.safe",
            ),
            (
                format!(
                    "{}\n[destinations]\nrefuse_line_types = [\"mobile\"]",
                    minimal("", "")
                ),
                "destinations.refuse_line_types",
            ),
            (
                format!("{}\n[pumping]\nprefix_burst = 0", minimal("", "")),
                "pumping.prefix_burst",
            ),
            (
                format!("{}\n[pumping]\nprefix_digits = 13", minimal("", "")),
                "pumping.prefix_digits",
            ),
            (
                format!("{}\n[pumping.country_daily]\nUK = 5", minimal("", "")),
                "pumping.country_daily",
            ),
            (
                format!(
                    "{}\n[pumping.breaker]\nmin_conversion = 1.5",
                    minimal("", "")
                ),
                "pumping.breaker.min_conversion",
            ),
            (
                format!("{}\n[pumping.breaker]\nmin_sent = 0", minimal("", "")),
                "pumping.breaker.min_sent",
            ),
        ];
        for (text, setting) in cases {
            let err = parse(&text).expect_err(setting);
            assert!(err.to_string().contains(setting), "{setting}: {err}");
        }
    }

    #[test]
    fn relative_secret_files_resolve_beside_the_config_and_lose_their_newline() {
        let config = parse(&minimal("", "")).expect("valid");
        assert_eq!(config.otp.secret.expose(), SECRET);
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = parse(&minimal("", "")).expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains(SECRET));
        assert!(!debug.contains("test-key-123"));
        assert!(!debug.contains("\"secret\""));
    }
}
