//! `[api]`: named API clients with scopes (`[[api.clients]]`), and the older `keys` /
//! `sms_keys` lists, which become clients with the scopes they always had.

use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ConfigError, Validator};

/// What a key may do. Each route names the one scope it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Scope {
    #[serde(rename = "otp:send")]
    OtpSend,
    #[serde(rename = "otp:verify")]
    OtpVerify,
    #[serde(rename = "sms:send")]
    SmsSend,
    #[serde(rename = "signin")]
    SignIn,
    #[serde(rename = "directory:read")]
    DirectoryRead,
    #[serde(rename = "directory:write")]
    DirectoryWrite,
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Operator actions on the daemon itself (the conversion breaker's blocks).
    #[serde(rename = "admin")]
    Admin,
    /// Reading `/metrics` when `[server] metrics_require_key` is on (Prometheus'
    /// `authorization: credentials_file`).
    #[serde(rename = "metrics")]
    Metrics,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OtpSend => "otp:send",
            Scope::OtpVerify => "otp:verify",
            Scope::SmsSend => "sms:send",
            Scope::SignIn => "signin",
            Scope::DirectoryRead => "directory:read",
            Scope::DirectoryWrite => "directory:write",
            Scope::AuditRead => "audit:read",
            Scope::Admin => "admin",
            Scope::Metrics => "metrics",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u16);

impl Scopes {
    pub fn of(scopes: &[Scope]) -> Self {
        Self(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

/// One API client: its name (shown in logs, audit entries and as an assertion's `aud`), the
/// SHA-256 of its key, what it may do and, optionally, which tenants it may touch.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiClient {
    pub name: String,
    pub key_sha256: [u8; 32],
    pub scopes: Scopes,
    /// `None`: every tenant.
    pub tenants: Option<Vec<String>>,
    /// Signs this client's callbacks (`webhook_secret_file` / `webhook_secret_env`).
    pub webhook_secret: Option<std::sync::Arc<crate::webhooks::WebhookSecret>>,
    /// The `from` values this client may send `/v1/sms` with; empty: none (the carrier's
    /// `source_addr` is used). Compared case-insensitively.
    pub senders: Vec<String>,
    /// This client's own send budget (`None`: `[limits] client_sends_per_second`).
    pub sends_per_second: Option<std::num::NonZeroU32>,
    /// The key was configured in clear (`keys`, `keys_file`, `sms_keys`, `key_file`,
    /// `key_env`) rather than as `key_sha256`: said in the log at start.
    pub key_in_clear: bool,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub fn may_send_from(&self, from: &str) -> bool {
        self.senders.iter().any(|s| s.eq_ignore_ascii_case(from))
    }

    pub fn may_touch(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|tenants| tenants.iter().any(|t| t == tenant))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileApi {
    #[serde(default)]
    keys: Vec<String>,
    keys_file: Option<PathBuf>,
    /// Keys for the generic SMS routes (/v1/sms); OTP keys cannot send arbitrary text.
    #[serde(default)]
    sms_keys: Vec<String>,
    /// The senders (`from`) the `sms_keys` clients may use.
    #[serde(default)]
    sms_senders: Vec<String>,
    #[serde(default)]
    clients: Vec<FileClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClient {
    name: String,
    key_sha256: Option<String>,
    key_file: Option<PathBuf>,
    key_env: Option<String>,
    scopes: Vec<Scope>,
    tenants: Option<Vec<String>>,
    webhook_secret_file: Option<PathBuf>,
    webhook_secret_env: Option<String>,
    #[serde(default)]
    senders: Vec<String>,
    sends_per_second: Option<u32>,
}

/// The SHA-256 of `key`, as `otpgate hash-key` prints it and `key_sha256` takes it.
pub fn key_sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Validator {
    pub(super) fn clients(&self, api: FileApi) -> Result<Vec<ApiClient>, ConfigError> {
        let mut clients = Vec::new();
        let mut keys = api.keys;
        if let Some(path) = &api.keys_file {
            let text = self.read("api.keys_file", path)?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        self.check_keys("api.keys", &keys)?;
        self.check_keys("api.sms_keys", &api.sms_keys)?;
        // The older lists keep the scopes their keys always had.
        for (n, key) in keys.iter().enumerate() {
            clients.push(ApiClient {
                name: format!("key-{}", n + 1),
                key_sha256: key_sha256(key),
                scopes: Scopes::of(&[Scope::OtpSend, Scope::OtpVerify]),
                tenants: None,
                webhook_secret: None,
                senders: Vec::new(),
                sends_per_second: None,
                key_in_clear: true,
            });
        }
        for (n, key) in api.sms_keys.iter().enumerate() {
            clients.push(ApiClient {
                name: format!("sms-key-{}", n + 1),
                key_sha256: key_sha256(key),
                scopes: Scopes::of(&[Scope::SmsSend]),
                tenants: None,
                webhook_secret: None,
                senders: api.sms_senders.clone(),
                sends_per_second: None,
                key_in_clear: true,
            });
        }
        for (n, client) in api.clients.into_iter().enumerate() {
            let setting = format!("api.clients[{n}]");
            let name = client.name.trim().to_owned();
            if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(self.invalid(
                    setting,
                    "name must be 1 to 64 printable ASCII characters without spaces",
                ));
            }
            if clients.iter().any(|c| c.name == name) {
                return Err(self.invalid(setting, format!("a second client named {name}")));
            }
            let digest = match (&client.key_sha256, &client.key_file, &client.key_env) {
                (Some(hex), None, None) => parse_hex32(hex).ok_or_else(|| {
                    self.invalid(
                        format!("{setting}.key_sha256"),
                        "must be 64 hex digits (otpgate hash-key prints it)",
                    )
                })?,
                (None, Some(path), None) => {
                    let key = self.read("api.clients.key_file", path)?.trim().to_owned();
                    self.check_keys("api.clients.key_file", std::slice::from_ref(&key))?;
                    key_sha256(&key)
                }
                (None, None, Some(var)) => {
                    let key = self.env("api.clients.key_env", var)?.trim().to_owned();
                    self.check_keys("api.clients.key_env", std::slice::from_ref(&key))?;
                    key_sha256(&key)
                }
                _ => {
                    return Err(self.invalid(
                        setting,
                        "give exactly one of key_sha256, key_file or key_env",
                    ));
                }
            };
            let key_in_clear = client.key_sha256.is_none();
            if clients.iter().any(|c| c.key_sha256 == digest) {
                return Err(self.invalid(setting, "this key belongs to another client too"));
            }
            if client.scopes.is_empty() {
                return Err(self.invalid(format!("{setting}.scopes"), "name at least one scope"));
            }
            let webhook_secret = self.webhook_secret(
                &setting,
                client.webhook_secret_file.as_deref(),
                client.webhook_secret_env.as_deref(),
            )?;
            clients.push(ApiClient {
                name,
                key_sha256: digest,
                scopes: Scopes::of(&client.scopes),
                tenants: client.tenants,
                webhook_secret,
                senders: client.senders,
                sends_per_second: client
                    .sends_per_second
                    .map(|rate| self.non_zero(format!("{setting}.sends_per_second"), rate))
                    .transpose()?,
                key_in_clear,
            });
        }
        if clients.is_empty() {
            return Err(self.invalid(
                "api.clients",
                "at least one API key is required ([[api.clients]], keys or keys_file)",
            ));
        }
        Ok(clients)
    }

    /// A webhook secret from a file or an environment variable, at most one of them.
    pub(super) fn webhook_secret(
        &self,
        section: &str,
        file: Option<&std::path::Path>,
        env: Option<&str>,
    ) -> Result<Option<std::sync::Arc<crate::webhooks::WebhookSecret>>, ConfigError> {
        let text = match (file, env) {
            (None, None) => return Ok(None),
            (Some(path), None) => self.read("webhook_secret_file", path)?,
            (None, Some(var)) => self.env("webhook_secret_env", var)?,
            (Some(_), Some(_)) => {
                return Err(self.invalid(
                    format!("{section}.webhook_secret_file"),
                    "give at most one of the file and the environment variable",
                ));
            }
        };
        crate::webhooks::WebhookSecret::parse(&text)
            .map(|secret| Some(std::sync::Arc::new(secret)))
            .map_err(|err| self.invalid(format!("{section}.webhook_secret"), err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_a_set() {
        let set = Scopes::of(&[Scope::SignIn, Scope::AuditRead]);
        assert!(set.contains(Scope::SignIn));
        assert!(set.contains(Scope::AuditRead));
        assert!(!set.contains(Scope::OtpSend));
        assert!(!Scopes::default().contains(Scope::DirectoryRead));
    }

    #[test]
    fn hex_digests_round_trip() {
        let digest = key_sha256("dev-only-admin-key");
        assert_eq!(parse_hex32(&hex(&digest)), Some(digest));
        assert_eq!(parse_hex32("abc"), None);
        assert_eq!(parse_hex32(&"zz".repeat(32)), None);
    }
}
