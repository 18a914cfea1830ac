//! HTTPS on the API listener: rustls with a certificate chain and a key from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot serve HTTPS (reported by `--check-config` and at start).
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error("cannot read the certificate chain {path}: {message}")]
    Certificates { path: String, message: String },
    #[error("cannot read the private key {path}: {message}")]
    Key { path: String, message: String },
    #[error("the certificate and key do not make a TLS server: {0}")]
    Config(#[from] rustls::Error),
}

/// The API listener's TLS: where its files are and the acceptor made of them.
#[derive(Clone)]
pub struct Https {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Https")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl Https {
    /// Loads the chain at `cert_file` and the key at `key_file` (both PEM). HTTP/1.1 only, as
    /// the listener serves.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, HttpsError> {
        let certificates = |message: String| HttpsError::Certificates {
            path: cert_file.display().to_string(),
            message,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
            .and_then(|iter| iter.collect::<Result<_, _>>())
            .map_err(|err| certificates(err.to_string()))?;
        if chain.is_empty() {
            return Err(certificates("no certificate in the file".into()));
        }
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|err| HttpsError::Key {
            path: key_file.display().to_string(),
            message: err.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}
