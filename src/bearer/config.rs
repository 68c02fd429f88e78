//! `[bearer]`: which access tokens the gateway accepts (RFC 9068 JWTs from one issuer).

use super::jwks::{KeySet, KeySource};
use crate::authn::assurance::AssuranceMap;
use crate::parse::{parse_duration, ConfigError};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBearer {
    pub issuer: String,
    pub audiences: Vec<String>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub jwks_file: Option<String>,
    #[serde(default = "d_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "d_skew")]
    pub clock_skew: String,
    /// RFC 9068: the JOSE header's `typ` must be `at+jwt` (refuses ID tokens and other JWTs).
    #[serde(default = "d_true")]
    pub require_at_jwt: bool,
    #[serde(default)]
    pub acr_map: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub amr_map: Option<BTreeMap<String, String>>,
}

fn d_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn d_skew() -> String {
    "60s".into()
}
fn d_true() -> bool {
    true
}

/// The validated `[bearer]` section, with its key cache (one per loaded config).
#[derive(Debug, Clone)]
pub struct BearerConfig {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub clock_skew: Duration,
    pub require_at_jwt: bool,
    pub assurance: AssuranceMap,
    pub keys: Arc<KeySet>,
}

/// Public-key algorithms only: an HMAC "key" would be a secret shared with every client.
const ALLOWED: [(&str, Algorithm); 9] = [
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

pub fn parse(raw: Option<&RawBearer>, base: &Path) -> Result<Option<BearerConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let issuer = raw.issuer.trim().to_string();
    if issuer.is_empty() {
        return Err(ConfigError::new("bearer.issuer", "empty: the issuer's identifier, exactly as its tokens' `iss`"));
    }
    let audiences: Vec<String> = raw.audiences.iter().map(|a| a.trim().to_string()).collect();
    if audiences.is_empty() || audiences.iter().any(String::is_empty) {
        return Err(ConfigError::new(
            "bearer.audiences",
            "name at least one audience (this API's identifier at the issuer): a token for another API must not pass",
        ));
    }
    let mut algorithms = Vec::new();
    for (i, a) in raw.algorithms.iter().enumerate() {
        let key = format!("bearer.algorithms[{i}]");
        let alg = match ALLOWED.iter().find(|(n, _)| n == &a.trim()) {
            Some((_, alg)) => *alg,
            None if a.trim().eq_ignore_ascii_case("none") => {
                return Err(ConfigError::new(key, "\"none\" means unsigned tokens: never accepted"))
            }
            None if a.trim().to_ascii_uppercase().starts_with("HS") => {
                return Err(ConfigError::new(
                    key,
                    "HMAC algorithms need a secret shared with the issuer, not a public key; use RS256, ES256, PS256 or EdDSA",
                ))
            }
            None => {
                let names: Vec<&str> = ALLOWED.iter().map(|(n, _)| *n).collect();
                return Err(ConfigError::new(key, format!("unknown algorithm {a:?}; one of {}", names.join(", "))));
            }
        };
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        return Err(ConfigError::new("bearer.algorithms", "empty: name the algorithms the issuer signs with"));
    }
    let source =
        match (&raw.jwks_url, &raw.jwks_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new("bearer.jwks_file", "give jwks_url or jwks_file, not both"));
            }
            (None, None) => return Err(ConfigError::new(
                "bearer.jwks_url",
                "required: the issuer's JWKS (e.g. https://issuer.example/.well-known/jwks.json), or bearer.jwks_file",
            )),
            (Some(url), None) => KeySource::url("bearer.jwks_url", url)?,
            (None, Some(file)) => KeySource::File(base.join(file)),
        };
    let keys = KeySet::new(source);
    if let KeySource::File(_) = keys.source() {
        // Read now, so check-config and a reload report a bad file naming the key.
        keys.load_file().map_err(|e| ConfigError::new("bearer.jwks_file", e))?;
    }
    Ok(Some(BearerConfig {
        issuer,
        audiences,
        algorithms,
        clock_skew: parse_duration("bearer.clock_skew", &raw.clock_skew)?,
        require_at_jwt: raw.require_at_jwt,
        assurance: AssuranceMap::parse("bearer.", raw.acr_map.as_ref(), raw.amr_map.as_ref())?,
        keys: Arc::new(keys),
    }))
}
