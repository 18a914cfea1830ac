//! The simulator's TOML configuration (unknown fields refused) and its validation.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    pub accounts: Vec<Account>,
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

/// An ESME allowed to bind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub system_id: String,
    pub password: String,
}

fn default_system_id() -> String {
    "smsc-sim".to_owned()
}
fn default_max_pdu_length() -> usize {
    65_536
}
fn default_capacity() -> usize {
    100_000
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
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
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
        if config.smpp.system_id.is_empty()
            || config.smpp.system_id.len() > 15
            || !config.smpp.system_id.is_ascii()
        {
            return Err(invalid(
                "smpp.system_id",
                "must be 1 to 15 ASCII characters (SMPP limit)",
            ));
        }
        if config.smpp.max_pdu_length < 1024 {
            return Err(invalid("smpp.max_pdu_length", "must be at least 1024"));
        }
        if config.store.capacity == 0 {
            return Err(invalid("store.capacity", "must be greater than 0"));
        }
        Ok(config)
    }

    pub fn account(&self, system_id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.system_id == system_id)
    }
}
