//! The HTTP edge of `[server]`: HTTPS (`[server.tls]`, certificate and key files) and the
//! proxies whose client-IP header is believed (`[server.client_ip]`).

use std::path::PathBuf;

use axum::http::HeaderName;
use serde::Deserialize;

use super::SettingError;
use crate::http::client_ip::ClientIp;
use crate::http::tls::Https;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl FileTls {
    /// The same files, relative paths taken from `base` (the config file's folder).
    pub(super) fn relative_to(self, base: &std::path::Path) -> Self {
        Self {
            cert_file: base.join(self.cert_file),
            key_file: base.join(self.key_file),
        }
    }
}

impl TryFrom<FileTls> for Https {
    type Error = SettingError;

    fn try_from(file: FileTls) -> Result<Self, SettingError> {
        Https::load(&file.cert_file, &file.key_file)
            .map_err(|err| SettingError::new("server.tls", err.to_string()))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileClientIp {
    /// Addresses and CIDR ranges; absent: loopback and the private ranges.
    trusted_proxies: Option<Vec<String>>,
    header: Option<String>,
}

impl TryFrom<FileClientIp> for ClientIp {
    type Error = SettingError;

    fn try_from(file: FileClientIp) -> Result<Self, SettingError> {
        let trusted = match file.trusted_proxies {
            None => ClientIp::default_trusted(),
            Some(entries) => entries
                .iter()
                .map(|entry| {
                    let entry = entry.trim();
                    entry
                        .parse::<ipnet::IpNet>()
                        .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            SettingError::new(
                                "server.client_ip.trusted_proxies",
                                format!("{entry:?} is not an address or a CIDR range"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let header = file.header.as_deref().unwrap_or("x-forwarded-for");
        if header.eq_ignore_ascii_case("forwarded") {
            return Err(SettingError::new(
                "server.client_ip.header",
                "Forwarded (RFC 7239) is not read; name a header in X-Forwarded-For form \
                 (X-Forwarded-For, X-Real-IP)",
            ));
        }
        let header = HeaderName::try_from(header.to_ascii_lowercase()).map_err(|_| {
            SettingError::new(
                "server.client_ip.header",
                format!("{header:?} is not a header name"),
            )
        })?;
        Ok(ClientIp { trusted, header })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_addresses_or_ranges() {
        let parsed = ClientIp::try_from(FileClientIp {
            trusted_proxies: Some(vec!["10.0.0.0/8".into(), "192.0.2.1".into()]),
            header: Some("X-Real-IP".into()),
        })
        .expect("valid");
        assert_eq!(parsed.trusted.len(), 2);
        assert_eq!(parsed.header.as_str(), "x-real-ip");
        let err = ClientIp::try_from(FileClientIp {
            trusted_proxies: Some(vec!["10.0.0.0/33".into()]),
            header: None,
        })
        .expect_err("bad range");
        assert_eq!(err.setting, "server.client_ip.trusted_proxies");
        assert_eq!(
            ClientIp::try_from(FileClientIp::default())
                .expect("defaults")
                .trusted,
            ClientIp::default_trusted()
        );
    }
}
