//! SMPP over TLS to a carrier: rustls with a CA bundle or the system's roots, SNI, and an
//! optional client certificate.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::config::TlsClientConfig;

/// Why the TLS client could not be set up (a configuration problem, reported at start-up).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {message}")]
    File { path: String, message: String },
    #[error("no trusted CA certificates (tls_ca_file empty, or no system roots)")]
    NoRoots,
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// What a session needs to wrap its TCP stream.
#[derive(Clone)]
pub struct TlsClient {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

fn file_error(path: &std::path::Path, err: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError::File {
        path: path.display().to_string(),
        message: err.to_string(),
    }
}

pub fn client(config: &TlsClientConfig, host: &str) -> Result<TlsClient, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
                roots.add(cert.map_err(|e| file_error(path, e))?)?;
            }
        }
        None => {
            // Unreadable entries in the system store are skipped, as browsers do.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let tls = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_error(cert, e))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
            builder.with_client_auth_cert(chain, key_der)?
        }
        _ => builder.with_no_client_auth(),
    };
    let name = config
        .server_name
        .clone()
        .unwrap_or_else(|| host.to_owned());
    let server_name =
        ServerName::try_from(name.clone()).map_err(|_| TlsSetupError::ServerName(name))?;
    Ok(TlsClient {
        connector: TlsConnector::from(Arc::new(tls)),
        server_name,
    })
}
