//! `listen.tls_client_ca` and `listen.tls_client_auth`: which client certificates are workload
//! identities. The same check serves a TLS handshake the gateway terminates and an RFC 9440
//! `Client-Cert` header from a trusted proxy (verified again here: a proxy that forwards any
//! certificate it was shown cannot make one count).

use crate::clock::UnixTime;
use crate::parse::ConfigError;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ClientCa {
    pub path: PathBuf,
    /// `tls_client_auth = "required"`: a TLS client without a certificate is refused in the handshake.
    pub required: bool,
    /// For the handshake (allowing no certificate unless required).
    pub handshake: Arc<dyn ClientCertVerifier>,
    /// For `Client-Cert` headers: a certificate is needed.
    strict: Arc<dyn ClientCertVerifier>,
}

pub fn parse(ca: Option<&str>, auth: Option<&str>, base: &Path) -> Result<Option<ClientCa>, ConfigError> {
    let Some(ca) = ca else {
        if auth.is_some() {
            return Err(ConfigError::new(
                "listen.tls_client_auth",
                "needs listen.tls_client_ca (the CA bundle certificates must chain to)",
            ));
        }
        return Ok(None);
    };
    let required = match auth.unwrap_or("optional") {
        "optional" => false,
        "required" => true,
        other => {
            return Err(ConfigError::new(
                "listen.tls_client_auth",
                format!("{other:?}: write \"optional\" (ask for a certificate) or \"required\" (refuse TLS clients without one)"),
            ))
        }
    };
    let path = base.join(ca);
    let key = "listen.tls_client_ca";
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
        .and_then(|c| c.collect::<Result<_, _>>())
        .map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(ConfigError::new(key, format!("{}: no certificate in the PEM file", path.display())));
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let build = |optional: bool| {
        let b = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
        let b = if optional { b.allow_unauthenticated() } else { b };
        b.build().map_err(|e| ConfigError::new(key, e.to_string()))
    };
    Ok(Some(ClientCa { path, required, handshake: build(!required)?, strict: build(false)? }))
}

impl ClientCa {
    /// An RFC 9440 `Client-Cert` value (`:base64 DER:`, a structured-field byte sequence),
    /// if it chains to the CA at `now`: the DER of the leaf.
    pub fn verify_header(&self, value: &[u8], now: UnixTime) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(value).ok()?.trim();
        let b64 = text.strip_prefix(':')?.strip_suffix(':')?;
        let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        let cert = CertificateDer::from(der.clone());
        let at = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.0));
        self.strict.verify_client_cert(&cert, &[], at).ok()?;
        Some(der)
    }
}
