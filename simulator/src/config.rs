//! The simulator's TOML configuration (unknown fields refused) and its validation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::faults::FaultSpec;
use crate::outcome::{OutcomeShare, Rule};
use smpp_wire::receipt::ReceiptState;

/// Why a configuration cannot be used.
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
        setting: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub smpp: SmppConfig,
    pub http: HttpConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub receipts: ReceiptConfig,
    /// Deterministic outcomes by destination; the first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Faults in force from the start (the tester API changes them at runtime).
    #[serde(default)]
    pub faults: FaultSpec,
    #[serde(default)]
    pub mo: MoConfig,
    /// What of the SMPP traffic is kept for `GET /api/pcap`.
    #[serde(default)]
    pub capture: CaptureConfig,
    /// An SMPP-over-TLS listener besides the plain one.
    pub tls: Option<TlsConfig>,
    pub accounts: Vec<Account>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; relative paths resolve against the config's folder.
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppConfig {
    pub listen: SocketAddr,
    /// system_id this SMSC gives in bind responses.
    #[serde(default = "default_system_id")]
    pub system_id: String,
    /// Frames longer than this close the session (their length cannot be trusted).
    #[serde(default = "default_max_pdu_length")]
    pub max_pdu_length: usize,
    /// Take submits a carrier would refuse: short_message over 140 octets, short_message and
    /// message_payload together, an empty or over-long destination. Off: refused as carriers do.
    #[serde(default)]
    pub lenient: bool,
    /// deliver_sm (receipts, MO) written to one session and not yet answered, at most.
    #[serde(default = "default_window")]
    pub window: usize,
    /// A deliver_sm unanswered this long frees its window slot; a receipt goes back to the
    /// scheduler.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Messages kept; the oldest is evicted beyond this.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
        }
    }
}

/// When and with what outcome receipts are sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptConfig {
    /// Delay from submit to the final state (and its receipt), in ms.
    #[serde(default)]
    pub delay_ms: u64,
    /// When set, the delay is drawn uniformly from `delay_ms..=delay_ms_max`.
    pub delay_ms_max: Option<u64>,
    /// Outcome mix for messages no rule matches, by percentage; default: all DELIVRD.
    #[serde(default = "default_mix")]
    pub outcomes: Vec<OutcomeShare>,
    /// Receipts waiting to be sent, at most; beyond it sessions stop reading until they drain
    /// (TCP back-pressure), which bounds memory under any load.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// A receipt the ESME refuses (error deliver_sm_resp, generic_nack, no answer in time) comes
    /// again after this delay, doubled with each refusal up to `redeliver_max_ms`.
    #[serde(default = "default_redeliver_initial_ms")]
    pub redeliver_initial_ms: u64,
    #[serde(default = "default_redeliver_max_ms")]
    pub redeliver_max_ms: u64,
    /// Refusals after which a receipt is given up (counted as dropped).
    #[serde(default = "default_max_redeliveries")]
    pub max_redeliveries: u32,
}

impl ReceiptConfig {
    /// The wait before delivering a receipt again after its `refusals`-th refusal (from 1).
    pub fn redelivery_delay(&self, refusals: u32) -> std::time::Duration {
        let factor = 1u64 << refusals.saturating_sub(1).min(20);
        let ms = self
            .redeliver_initial_ms
            .saturating_mul(factor)
            .min(self.redeliver_max_ms);
        std::time::Duration::from_millis(ms)
    }
}

impl Default for ReceiptConfig {
    fn default() -> Self {
        Self {
            delay_ms: 0,
            delay_ms_max: None,
            outcomes: default_mix(),
            max_pending: default_max_pending(),
            redeliver_initial_ms: default_redeliver_initial_ms(),
            redeliver_max_ms: default_redeliver_max_ms(),
            max_redeliveries: default_max_redeliveries(),
        }
    }
}

/// SMPP traffic kept in memory for the pcap export.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Octets kept per session (both ways); later traffic is not recorded. 0 turns capture off.
    #[serde(default = "default_capture_bytes")]
    pub max_bytes_per_session: usize,
    /// Sessions kept; beyond it the oldest closed session is forgotten.
    #[serde(default = "default_capture_sessions")]
    pub max_sessions: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            max_bytes_per_session: default_capture_bytes(),
            max_sessions: default_capture_sessions(),
        }
    }
}

fn default_capture_bytes() -> usize {
    crate::capture::DEFAULT_MAX_BYTES_PER_SESSION
}
fn default_capture_sessions() -> usize {
    crate::capture::DEFAULT_MAX_SESSIONS
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoConfig {
    /// Echo every accepted MT back to the sender as an MO from the destination.
    #[serde(default)]
    pub loopback: bool,
}

/// The bind types an account may use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum BindType {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindType {
    pub fn may_submit(self) -> bool {
        matches!(self, BindType::Transmitter | BindType::Transceiver)
    }

    pub fn may_receive(self) -> bool {
        matches!(self, BindType::Receiver | BindType::Transceiver)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BindType::Transmitter => "transmitter",
            BindType::Receiver => "receiver",
            BindType::Transceiver => "transceiver",
        }
    }
}

/// An ESME allowed to bind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub system_id: String,
    pub password: String,
    #[serde(default = "all_bind_types")]
    pub bind_types: Vec<BindType>,
    /// Concurrent sessions allowed; one more gets ESME_RBINDFAIL.
    #[serde(default = "default_max_binds")]
    pub max_binds: usize,
}

fn default_system_id() -> String {
    "smsc-sim".to_owned()
}
fn default_max_pdu_length() -> usize {
    65_536
}
fn default_window() -> usize {
    64
}
fn default_response_timeout_ms() -> u64 {
    30_000
}
fn default_capacity() -> usize {
    100_000
}
fn default_mix() -> Vec<OutcomeShare> {
    vec![OutcomeShare {
        stat: ReceiptState::Delivered,
        percent: 100.0,
    }]
}
fn default_max_pending() -> usize {
    100_000
}
fn default_redeliver_initial_ms() -> u64 {
    1_000
}
fn default_redeliver_max_ms() -> u64 {
    60_000
}
fn default_max_redeliveries() -> u32 {
    10
}
fn all_bind_types() -> Vec<BindType> {
    vec![
        BindType::Transmitter,
        BindType::Receiver,
        BindType::Transceiver,
    ]
}
fn default_max_binds() -> usize {
    10
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let invalid = |setting, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            setting,
            message: message.to_owned(),
        };
        if config.accounts.is_empty() {
            return Err(invalid("accounts", "at least one account is required"));
        }
        if config
            .accounts
            .iter()
            .any(|a| a.system_id.is_empty() || a.system_id.len() > 15)
        {
            return Err(invalid(
                "accounts.system_id",
                "must be 1 to 15 characters (SMPP limit)",
            ));
        }
        if config.accounts.iter().any(|a| a.password.len() > 8) {
            return Err(invalid(
                "accounts.password",
                "must be at most 8 characters (SMPP limit)",
            ));
        }
        if config
            .accounts
            .iter()
            .any(|a| a.bind_types.is_empty() || a.max_binds == 0)
        {
            return Err(invalid(
                "accounts",
                "bind_types must not be empty and max_binds must be at least 1",
            ));
        }
        if config.smpp.system_id.is_empty()
            || config.smpp.system_id.len() > 15
            || !config.smpp.system_id.is_ascii()
        {
            return Err(invalid(
                "smpp.system_id",
                "must be 1 to 15 ASCII characters (SMPP limit)",
            ));
        }
        if config.smpp.window == 0 || config.smpp.response_timeout_ms == 0 {
            return Err(invalid(
                "smpp.window",
                "window and response_timeout_ms must be at least 1",
            ));
        }
        if config.receipts.redeliver_max_ms < config.receipts.redeliver_initial_ms {
            return Err(invalid(
                "receipts.redeliver_max_ms",
                "must not be below redeliver_initial_ms",
            ));
        }
        if config.smpp.max_pdu_length < 1024 {
            return Err(invalid("smpp.max_pdu_length", "must be at least 1024"));
        }
        if config.store.capacity == 0 {
            return Err(invalid("store.capacity", "must be greater than 0"));
        }
        if config
            .receipts
            .delay_ms_max
            .is_some_and(|max| max < config.receipts.delay_ms)
        {
            return Err(invalid(
                "receipts.delay_ms_max",
                "must not be below delay_ms",
            ));
        }
        let total: f64 = config.receipts.outcomes.iter().map(|o| o.percent).sum();
        if config.receipts.outcomes.iter().any(|o| o.percent < 0.0) || (total - 100.0).abs() > 1e-6
        {
            return Err(invalid(
                "receipts.outcomes",
                "percentages must be non-negative and add up to 100",
            ));
        }
        for rule in &config.rules {
            rule.validate()
                .map_err(|message| invalid("rules", &message))?;
        }
        config
            .faults
            .validate()
            .map_err(|message| invalid("faults", &message))?;
        if let Some(tls) = &mut config.tls {
            let base = path.parent().unwrap_or(Path::new(""));
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
        }
        Ok(config)
    }

    pub fn account(&self, system_id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.system_id == system_id)
    }
}
