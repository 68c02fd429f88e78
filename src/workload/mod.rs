//! Workload identity from a client certificate that chained to `listen.tls_client_ca`: its
//! SPIFFE ID (X.509-SVID rules) or, for a certificate without URI SANs, its subject.
//!
//! SPIFFE X.509-SVID (spiffe/spiffe `standards/X509-SVID.md`): exactly one URI SAN, a valid
//! `spiffe://trust-domain/path`; a leaf must not be a CA (`cA` false), must have the
//! `digitalSignature` key usage and neither `keyCertSign` nor `cRLSign`. A certificate with
//! any URI SAN is taken as an SVID and refused when it breaks these rules, never read as its
//! subject instead.

pub mod client_ca;

use crate::clock::UnixTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A workload a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `spiffe://…`, or the subject as an RFC 4514 string (`CN=billing,O=Example`).
    pub id: String,
    /// The certificate's `notBefore`: when the credential was issued.
    pub issued_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("not an X.509 certificate")]
    Malformed,
    #[error("an SVID has exactly one URI SAN; this certificate has {0}")]
    UriSans(usize),
    #[error("the URI SAN is not a valid SPIFFE ID")]
    NotSpiffe,
    #[error("a CA certificate, not a workload's leaf")]
    IsCa,
    #[error("key usage must include digitalSignature and exclude keyCertSign and cRLSign")]
    KeyUsage,
    #[error("the certificate has an empty subject and no SPIFFE ID")]
    NoSubject,
}

/// A client certificate as the pipeline sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// A leaf (DER) verified against `listen.tls_client_ca` (handshake or `Client-Cert`).
    Der(std::sync::Arc<[u8]>),
    /// `stepgate explain --workload`: a workload ID taken as proven. Never built from a request.
    DryRun(Workload),
}

impl Presented {
    pub fn identify(&self) -> Result<Workload, CertError> {
        match self {
            Presented::Der(der) => identify(der),
            Presented::DryRun(w) => Ok(w.clone()),
        }
    }
}

/// Reads the workload a verified leaf certificate (DER) names.
pub fn identify(der: &[u8]) -> Result<Workload, CertError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertError::Malformed)?;
    let issued_at = UnixTime(cert.validity().not_before.timestamp().max(0) as u64);
    let uris: Vec<&str> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(_) => return Err(CertError::Malformed),
    };
    if uris.is_empty() {
        let subject = cert.subject().to_string();
        if subject.trim().is_empty() {
            return Err(CertError::NoSubject);
        }
        return Ok(Workload { id: subject, issued_at });
    }
    if uris.len() != 1 {
        return Err(CertError::UriSans(uris.len()));
    }
    let id = uris[0];
    if !valid_spiffe_id(id) {
        return Err(CertError::NotSpiffe);
    }
    if cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca) {
        return Err(CertError::IsCa);
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.digital_signature() && !ku.value.key_cert_sign() && !ku.value.crl_sign() => {}
        _ => return Err(CertError::KeyUsage),
    }
    Ok(Workload { id: id.to_string(), issued_at })
}

/// `spiffe://trust-domain/path`: a trust domain of lower-case letters, digits, `.`, `-`, `_`;
/// path segments of letters, digits, `.`, `-`, `_`, none empty, `.` or `..`; no query,
/// fragment, port or user info (SPIFFE-ID §2).
pub fn valid_spiffe_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("spiffe://") else { return false };
    let (domain, path) = rest.split_once('/').map_or((rest, None), |(d, p)| (d, Some(p)));
    let domain_ok = !domain.is_empty()
        && domain.len() <= 255
        && domain.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    let path_ok = path.is_none_or(|p| {
        p.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        })
    });
    domain_ok && path_ok && id.len() <= 2048
}

#[cfg(test)]
mod tests {
    use super::valid_spiffe_id;

    #[test]
    fn spiffe_ids_follow_the_spec() {
        assert!(valid_spiffe_id("spiffe://example.org/ns/prod/sa/billing"));
        assert!(valid_spiffe_id("spiffe://example.org"));
        for bad in [
            "spiffe://Example.org/x",
            "spiffe://example.org/",
            "spiffe://example.org//x",
            "spiffe://example.org/a/../b",
            "spiffe://example.org:443/x",
            "spiffe://user@example.org/x",
            "spiffe://example.org/x?y=1",
            "spiffe:///x",
            "https://example.org/x",
        ] {
            assert!(!valid_spiffe_id(bad), "{bad}");
        }
    }
}
