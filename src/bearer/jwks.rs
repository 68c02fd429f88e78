//! The issuer's signing keys (a JWKS, RFC 7517), from a URL or a file, cached. Refreshed when
//! older than `MAX_AGE`, and when a token names a key not in the set (a rotation), at most once
//! per `MIN_INTERVAL`, so garbage `kid`s cannot make the gateway hammer the issuer.

use crate::clock::UnixTime;
use crate::parse::ConfigError;
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Keys older than this are fetched again on the next token.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// The least time between two fetches (rate limit on unknown `kid`s and failures).
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub enum KeySource {
    File(PathBuf),
    Url { uri: http::Uri, https: bool, host: String, port: u16 },
}

impl KeySource {
    /// An https URL, or http to this machine only (keys fetched in the clear could be swapped).
    pub fn url(key: &str, url: &str) -> Result<KeySource, ConfigError> {
        let uri: http::Uri = url.parse().map_err(|_| ConfigError::new(key, format!("{url:?} is not a URL")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(ConfigError::new(key, "must start with https://")),
        };
        let host = uri.host().ok_or_else(|| ConfigError::new(key, "has no host"))?.to_string();
        let loopback = host == "localhost"
            || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !https && !loopback {
            return Err(ConfigError::new(
                key,
                "must be https:// (plain http only to this machine: 127.0.0.1, ::1, localhost)",
            ));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(KeySource::Url { uri, https, host, port })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// No key in the set fits the token's `kid` and `alg`.
    Unknown,
    /// The set could not be had at all (fetch failed, nothing cached).
    Unavailable,
}

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Option<Algorithm>,
    family: Family,
    key: DecodingKey,
}

#[derive(Default)]
struct Cached {
    keys: Vec<Key>,
    fetched_at: Option<UnixTime>,
    tried_at: Option<UnixTime>,
}

pub struct KeySet {
    source: KeySource,
    cache: RwLock<Cached>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet").field("source", &self.source).finish_non_exhaustive()
    }
}

impl KeySet {
    pub fn new(source: KeySource) -> KeySet {
        KeySet { source, cache: RwLock::new(Cached::default()), fetching: tokio::sync::Mutex::new(()) }
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Reads a `jwks_file` source now (at config load).
    pub fn load_file(&self) -> Result<usize, String> {
        let KeySource::File(path) = &self.source else { return Ok(0) };
        let keys = read_file(path)?;
        let n = keys.len();
        if let Ok(mut c) = self.cache.write() {
            c.keys = keys;
        }
        Ok(n)
    }

    /// The key to check a token signed with `alg` under `kid`, at `now`.
    pub async fn key_for(&self, kid: Option<&str>, alg: Algorithm, now: UnixTime) -> Result<DecodingKey, KeyError> {
        let stale = self.read(|c| c.fetched_at.is_none_or(|t| now.since(t) >= MAX_AGE));
        if stale {
            self.refresh(now).await;
        }
        if let Some(k) = self.find(kid, alg) {
            return Ok(k);
        }
        // A key not (yet) in the set: the issuer may have rotated. Look again, rate-limited.
        self.refresh(now).await;
        match self.find(kid, alg) {
            Some(k) => Ok(k),
            None if self.read(|c| c.keys.is_empty()) => Err(KeyError::Unavailable),
            None => Err(KeyError::Unknown),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Cached) -> T) -> T {
        match self.cache.read() {
            Ok(c) => f(&c),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        self.read(|c| find_in(&c.keys, kid, alg))
    }

    async fn refresh(&self, now: UnixTime) {
        let _one = self.fetching.lock().await;
        let recently = self.read(|c| c.tried_at.is_some_and(|t| now.since(t) < MIN_INTERVAL));
        if recently {
            return;
        }
        if let Ok(mut c) = self.cache.write() {
            c.tried_at = Some(now);
        }
        let got = match &self.source {
            KeySource::File(path) => read_file(path),
            KeySource::Url { .. } => fetch(&self.source).await,
        };
        match got {
            Ok(keys) => {
                if let Ok(mut c) = self.cache.write() {
                    c.keys = keys;
                    c.fetched_at = Some(now);
                }
            }
            // The last good set stays in use.
            Err(e) => tracing::warn!(error = %e, "bearer: JWKS not refreshed; keeping the last good keys"),
        }
    }
}

/// The key of `keys` that signed a token with `kid` and `alg`.
fn find_in(keys: &[Key], kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let fits = |k: &&Key| k.alg.is_none_or(|a| a == alg) && family_fits(&k.family, alg);
    match kid {
        Some(kid) => keys.iter().filter(fits).find(|k| k.kid.as_deref() == Some(kid)).map(|k| k.key.clone()),
        // No `kid`: only when one key alone could have signed it.
        None => {
            let mut it = keys.iter().filter(fits);
            match (it.next(), it.next()) {
                (Some(k), None) => Some(k.key.clone()),
                _ => None,
            }
        }
    }
}

/// The signing key for `kid` and `alg` in a JWKS document (another issuer's set, such as an
/// OpenID provider's from discovery); None when none fits or the document has no signing key.
pub fn key_in_document(jwks_json: &str, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    find_in(&parse_set(jwks_json).ok()?, kid, alg)
}

/// The kind of key, from the JWK's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec(EllipticCurve),
    Okp,
}

/// Whether a key of this kind can check `alg` (jsonwebtoken refuses a mismatch too; checked
/// here so a set of an RSA and an EC key still finds the one for a token without `kid`).
fn family_fits(family: &Family, alg: Algorithm) -> bool {
    use Algorithm::*;
    match family {
        Family::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
        Family::Ec(EllipticCurve::P256) => alg == ES256,
        Family::Ec(EllipticCurve::P384) => alg == ES384,
        Family::Ec(_) => false,
        Family::Okp => alg == EdDSA,
    }
}

fn read_file(path: &std::path::Path) -> Result<Vec<Key>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_set(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The signing keys of a JWKS document (keys for encryption, or of kinds not supported, left out).
fn parse_set(text: &str) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(p) => Family::Ec(p.curve.clone()),
            AlgorithmParameters::OctetKeyPair(_) => Family::Okp,
            // A symmetric key is a shared secret, never a public key to check tokens with.
            AlgorithmParameters::OctetKey(_) => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        let alg = jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
        keys.push(Key { kid: jwk.common.key_id.clone(), alg, family, key });
    }
    if keys.is_empty() {
        return Err("no signing key in the set".into());
    }
    Ok(keys)
}

async fn fetch(source: &KeySource) -> Result<Vec<Key>, String> {
    let KeySource::Url { uri, https, host, port } = source else { return Err("not a URL".into()) };
    let body = tokio::time::timeout(FETCH_TIMEOUT, get(uri, *https, host, *port))
        .await
        .map_err(|_| format!("{uri}: no answer within {}s", FETCH_TIMEOUT.as_secs()))??;
    parse_set(&body).map_err(|e| format!("{uri}: {e}"))
}

async fn get(uri: &http::Uri, https: bool, host: &str, port: u16) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("{uri}: cannot connect: {e}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = http::Request::get(path)
        .header(http::header::HOST, uri.authority().map_or(host, |a| a.as_str()))
        .header(http::header::ACCEPT, "application/jwk-set+json, application/json")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = if https {
        let tls = tls_connector().connect(server_name(host)?, tcp).await.map_err(|e| format!("{uri}: TLS: {e}"))?;
        send(TokioIo::new(tls), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    }
    .map_err(|e| format!("{uri}: {e}"))?;
    String::from_utf8(resp).map_err(|_| format!("{uri}: the answer is not UTF-8"))
}

async fn send<IO>(io: IO, req: http::Request<http_body_util::Empty<bytes::Bytes>>) -> Result<Vec<u8>, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("answered {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect().await.map_err(|e| e.to_string())?;
    Ok(body.to_bytes().to_vec())
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, String> {
    rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|_| format!("{host:?} is not a server name"))
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth()
        });
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
