//! `[directory]`, `[signin]` and `[admin]`: where the sign-in directory lives, how assertions are
//! signed, and whether the admin console is served.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Validator};
use crate::signin::{SignInSettings, SigningAlg, SigningKey, SigningKeys};

/// Longest an assertion may live: it is a one-shot proof for the frontend, not a session.
pub const MAX_ASSERTION_TTL_SECONDS: u64 = 120;

#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// The SQLite file, resolved against the config file's folder.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct AdminConfig {
    /// Serve `/admin/` (the console and the test sign-in page).
    pub console: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDirectory {
    path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSignIn {
    issuer: String,
    #[serde(default = "default_assertion_ttl")]
    assertion_ttl_seconds: u64,
    keys: Vec<FileSigningKey>,
}

fn default_assertion_ttl() -> u64 {
    MAX_ASSERTION_TTL_SECONDS
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSigningKey {
    file: PathBuf,
    #[serde(default)]
    alg: SigningAlg,
    kid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdmin {
    #[serde(default)]
    console: bool,
}

impl Validator {
    pub(super) fn directory(
        &self,
        directory: Option<FileDirectory>,
        signin: Option<FileSignIn>,
    ) -> Result<(Option<DirectoryConfig>, Option<SignInSettings>), ConfigError> {
        let directory = directory.map(|d| DirectoryConfig {
            path: self.resolve(&d.path),
        });
        let signin = signin.map(|s| self.signin(s)).transpose()?;
        match (&directory, &signin) {
            (Some(_), None) => Err(self.invalid(
                "signin",
                "the directory needs [signin] with an issuer and a signing key",
            )),
            (None, Some(_)) => Err(self.invalid(
                "directory",
                "[signin] needs a [directory] with a path for its users",
            )),
            _ => Ok((directory, signin)),
        }
    }

    fn signin(&self, signin: FileSignIn) -> Result<SignInSettings, ConfigError> {
        if signin.issuer.trim().is_empty() {
            return Err(self.invalid("signin.issuer", "must name the issuer (a URL)"));
        }
        if !(1..=MAX_ASSERTION_TTL_SECONDS).contains(&signin.assertion_ttl_seconds) {
            return Err(self.invalid(
                "signin.assertion_ttl_seconds",
                format!("must be 1 to {MAX_ASSERTION_TTL_SECONDS}"),
            ));
        }
        let mut keys = Vec::new();
        for (n, key) in signin.keys.into_iter().enumerate() {
            let setting = format!("signin.keys[{n}]");
            let path = self.resolve(&key.file);
            let pem = std::fs::read(&path).map_err(|err| {
                self.invalid(
                    setting.clone(),
                    format!("cannot read {}: {err}", path.display()),
                )
            })?;
            let key = SigningKey::from_pem(key.alg, &pem, key.kid).map_err(|err| {
                self.invalid(setting.clone(), format!("{}: {err}", path.display()))
            })?;
            if keys.iter().any(|k: &SigningKey| k.kid == key.kid) {
                return Err(self.invalid(setting, format!("a second key with kid {}", key.kid)));
            }
            keys.push(key);
        }
        let keys = SigningKeys::new(keys)
            .ok_or_else(|| self.invalid("signin.keys", "at least one signing key is required"))?;
        Ok(SignInSettings {
            issuer: signin.issuer.trim_end_matches('/').to_owned(),
            assertion_ttl: Duration::from_secs(signin.assertion_ttl_seconds),
            keys,
        })
    }

    pub(super) fn admin(&self, admin: FileAdmin) -> AdminConfig {
        AdminConfig {
            console: admin.console,
        }
    }
}
