//! `listen.tls_cert` / `listen.tls_key`: the gateway terminates TLS itself (rustls, ring;
//! HTTP/2 and HTTP/1.1 offered by ALPN). The files are read and checked when the config is
//! loaded, so `check-config` and a SIGHUP reload (certificate rotation) see a bad file as an
//! error naming the key, and a reload keeps the last good certificate.

use super::ConfigError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ListenTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server: Arc<rustls::ServerConfig>,
}

impl ListenTls {
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }
}

/// Both keys or neither; relative paths are relative to the config file's folder.
pub fn parse(
    cert: Option<&str>,
    key: Option<&str>,
    client_ca: Option<&crate::workload::client_ca::ClientCa>,
    base: &Path,
) -> Result<Option<ListenTls>, ConfigError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (base.join(c), base.join(k)),
        (Some(_), None) => return Err(ConfigError::new("listen.tls_key", "is required with listen.tls_cert")),
        (None, Some(_)) => return Err(ConfigError::new("listen.tls_cert", "is required with listen.tls_key")),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| ConfigError::new("listen.tls_cert", format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ConfigError::new("listen.tls_cert", format!("{}: no certificate in the PEM file", cert.display())));
    }
    let private = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| ConfigError::new("listen.tls_key", format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("listen.tls_cert", e.to_string()))?;
    // With a client CA, the handshake asks for a certificate (and demands one if required).
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(ca.handshake.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(chain, private)
        .map_err(|e| ConfigError::new("listen.tls_key", format!("does not fit the certificate: {e}")))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(ListenTls { cert, key, server: Arc::new(server) }))
}
