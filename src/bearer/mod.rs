//! Bearer access tokens (RFC 6750, RFC 9068 JWTs): verified against the issuer's keys, then
//! turned into an identity like any other source: a subject, a proof `{level from acr/amr,
//! method bearer, auth_time}`, and attributes (scopes, claims, the client, `iat` as the
//! credential's issue time).
//!
//! A token is checked before anything about the route's requirement is said: a bad one gets
//! `invalid_token` and nothing else.

pub mod config;
pub mod jwks;

use crate::clock::UnixTime;
use crate::policy::conditions::Attributes;
use crate::policy::level::{AuthMethod, Level, Proof};
use config::BearerConfig;
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// `sub` (required: RFC 9068 §2.2).
    pub subject: String,
    pub proof: Proof,
    pub attrs: Attributes,
}

/// Why a token is refused. Never carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT (three base64url parts with a JSON header)")]
    Malformed,
    #[error("signed with an algorithm not in bearer.algorithms (or unsigned)")]
    Algorithm,
    #[error("the JOSE header's typ is not at+jwt (RFC 9068)")]
    Type,
    #[error("no key of the issuer fits its kid")]
    UnknownKey,
    #[error("the issuer's keys cannot be fetched")]
    KeysUnavailable,
    #[error("the signature does not verify")]
    Signature,
    #[error("issued by another issuer")]
    Issuer,
    #[error("for another audience")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("a required claim is missing or of the wrong type (exp or sub)")]
    Claims,
}

/// A credential presented as a bearer token.
#[derive(Clone, PartialEq)]
pub enum Presented {
    /// From `Authorization: Bearer`: verified before anything is believed.
    Token(String),
    /// `stepgate explain --bearer-claims`: claims taken as verified, for a dry run. Never built
    /// from a request.
    DryRunClaims(Map<String, Value>),
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Presented::Token(_) => f.write_str("Token(..)"),
            Presented::DryRunClaims(c) => write!(f, "DryRunClaims({} claims)", c.len()),
        }
    }
}

/// Verifies what was presented at `now`.
pub async fn check(cfg: &BearerConfig, presented: &Presented, now: UnixTime) -> Result<Token, TokenError> {
    match presented {
        Presented::Token(t) => verify(cfg, t, now).await,
        Presented::DryRunClaims(c) => read_claims(cfg, c.clone(), now),
    }
}

/// Reads the token of an `Authorization: Bearer` header (RFC 6750 §2.1; the scheme in any
/// case). None: no such header. Several Authorization headers, or a second Bearer value,
/// read as an empty token (refused), never as the first one.
pub fn from_headers(headers: &http::HeaderMap) -> Option<String> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let first = values.next()?;
    let text = first.to_str().ok()?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    if values.next().is_some() {
        return Some(String::new());
    }
    Some(token.trim().to_string())
}

/// Verifies `token` at `now` and reads what it proves.
pub async fn verify(cfg: &BearerConfig, token: &str, now: UnixTime) -> Result<Token, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !cfg.algorithms.contains(&header.alg) {
        return Err(TokenError::Algorithm);
    }
    if cfg.require_at_jwt {
        let typ = header.typ.as_deref().unwrap_or("");
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(TokenError::Type);
        }
    }
    let key = cfg.keys.key_for(header.kid.as_deref(), header.alg, now).await.map_err(|e| match e {
        jwks::KeyError::Unknown => TokenError::UnknownKey,
        jwks::KeyError::Unavailable => TokenError::KeysUnavailable,
    })?;
    // The signature, iss and aud by jsonwebtoken; times against the gateway's clock, below.
    let mut v = Validation::new(header.alg);
    v.algorithms = vec![header.alg];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = true;
    v.set_issuer(&[&cfg.issuer]);
    v.set_audience(&cfg.audiences);
    v.set_required_spec_claims(&["iss", "aud", "exp"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidIssuer => TokenError::Issuer,
            K::InvalidAudience => TokenError::Audience,
            K::MissingRequiredClaim(c) if c == "aud" => TokenError::Audience,
            K::MissingRequiredClaim(c) if c == "iss" => TokenError::Issuer,
            K::MissingRequiredClaim(_) => TokenError::Claims,
            K::InvalidAlgorithm | K::InvalidAlgorithmName => TokenError::Algorithm,
            K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) => TokenError::Signature,
            _ => TokenError::Malformed,
        }
    })?;
    read_claims(cfg, data.claims, now)
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<UnixTime>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(|n| Some(UnixTime(n)))
            .ok_or(TokenError::Claims),
    }
}

fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|s| !s.is_empty() && s.len() <= 512 && !s.chars().any(char::is_control))
}

/// What verified claims prove at `now` (also what `explain --bearer-claims` dry-runs).
pub fn read_claims(cfg: &BearerConfig, claims: Map<String, Value>, now: UnixTime) -> Result<Token, TokenError> {
    let skew = cfg.clock_skew;
    let exp = number(&claims, "exp")?.ok_or(TokenError::Claims)?;
    if now > exp.plus(skew) {
        return Err(TokenError::Expired);
    }
    let iat = number(&claims, "iat")?;
    for t in [number(&claims, "nbf")?, iat].into_iter().flatten() {
        if now.plus(skew) < t {
            return Err(TokenError::NotYetValid);
        }
    }
    let client = text(&claims, "client_id").or_else(|| text(&claims, "azp"));
    // RFC 9068 §2.2: `sub` is required. No fallback to the client: a client named like a
    // user (`client_id = "alice"`) must not become that user.
    let subject = text(&claims, "sub").ok_or(TokenError::Claims)?;
    // RFC 9068 §2.2.3: `scope` is a space-separated string; Okta and Entra send `scp` (a list
    // or a string).
    let mut scopes: Vec<String> = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_string)),
            Some(Value::Array(a)) => scopes.extend(a.iter().filter_map(Value::as_str).map(str::to_string)),
            _ => {}
        }
    }
    let acr = claims.get("acr").and_then(Value::as_str);
    let amr: Vec<String> = claims
        .get("amr")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect());
    // A valid token with an unknown acr/amr still proves a sign-in at the issuer: aal1.
    let level = cfg.assurance.level(acr, &amr).max(Level::Aal1);
    let auth_time = number(&claims, "auth_time")?.or(iat).unwrap_or(UnixTime(0));
    let attrs = Attributes {
        groups: Vec::new(),
        scopes,
        workload: None,
        client,
        credential_issued_at: iat,
        claims: claims.into_iter().collect(),
    };
    Ok(Token { subject, proof: Proof { level, method: AuthMethod::Bearer, auth_time }, attrs })
}

/// The RFC 9470 `acr_values` for a level, from the bearer table (space-separated, lowest first).
pub fn acr_values(cfg: &BearerConfig, level: Level) -> String {
    let values = cfg.assurance.acr_values_for(level);
    if values.is_empty() {
        level.as_str().to_string()
    } else {
        values.join(" ")
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
