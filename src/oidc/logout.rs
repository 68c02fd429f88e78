//! Sessions follow the identity provider: OpenID Connect Back-Channel Logout 1.0 (the IdP
//! POSTs a signed logout token; the sessions of that IdP session, or of that subject, end on
//! every instance) and RP-initiated logout (the gateway's sign-out continues at the IdP's
//! `end_session_endpoint`).
//!
//! A logout token is a JWT checked like an ID token (the IdP's keys from discovery, an
//! algorithm it announces for ID tokens, `iss`, `aud`), plus what makes it a logout token:
//! `iat`, `jti`, the back-channel logout event, `sid` and/or `sub`, and never a `nonce`. Each
//! `jti` is accepted once.

use super::{Discovered, Oidc};
use crate::clock::UnixTime;
use crate::session::IdpFacts;
use crate::store::{Store, StoreError};
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::str::FromStr;
use std::time::Duration;

/// The event a logout token carries (§2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The gateway's back-channel logout endpoint: register `public_url` + this at the IdP.
pub const BACKCHANNEL_PATH: &str = "/.stepgate/oidc/backchannel-logout";
/// Where the IdP sends the browser after an RP-initiated logout (`post_logout_redirect_uri`).
pub const SIGNED_OUT_PATH: &str = "/.stepgate/oidc/signed-out";
/// Clock skew allowed on `iat` and `exp`.
const SKEW: Duration = Duration::from_secs(60);
/// How old a logout token without `exp` may be (by its `iat`).
const MAX_AGE: Duration = Duration::from_secs(300);

/// What a verified logout token asks to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    pub sid: Option<String>,
    pub sub: Option<String>,
}

/// Why a logout token is refused (the audit reason; the IdP gets `to_string`). Never carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    #[error("not a JWT")]
    Malformed,
    #[error("signed with an algorithm the provider does not announce for ID tokens (or unsigned)")]
    Algorithm,
    #[error("the JOSE header's typ is not logout+jwt")]
    Type,
    #[error("no key of the provider fits the token's kid")]
    UnknownKey,
    #[error("the provider's keys cannot be had right now")]
    Unavailable,
    #[error("the signature does not verify")]
    Signature,
    #[error("issued by another issuer")]
    Issuer,
    #[error("for another audience")]
    Audience,
    #[error("expired, or iat too old or in the future")]
    Time,
    #[error("iat or jti missing or of the wrong type")]
    Claims,
    #[error("no back-channel logout event")]
    Event,
    #[error("a logout token must not carry a nonce")]
    Nonce,
    #[error("neither sid nor sub")]
    Subject,
    #[error("this logout token (jti) was used already")]
    Replayed,
}

impl LogoutError {
    /// The audit reason.
    pub fn reason(self) -> &'static str {
        match self {
            LogoutError::Malformed => "logout token malformed",
            LogoutError::Algorithm => "logout token algorithm refused",
            LogoutError::Type => "logout token typ refused",
            LogoutError::UnknownKey => "logout token key unknown",
            LogoutError::Unavailable => "identity provider keys unavailable",
            LogoutError::Signature => "logout token signature invalid",
            LogoutError::Issuer => "logout token issuer mismatch",
            LogoutError::Audience => "logout token audience is not this gateway",
            LogoutError::Time => "logout token expired or not yet valid",
            LogoutError::Claims => "logout token claims missing",
            LogoutError::Event => "logout token without the logout event",
            LogoutError::Nonce => "logout token carries a nonce",
            LogoutError::Subject => "logout token names neither sid nor sub",
            LogoutError::Replayed => "logout token replayed",
        }
    }
}

/// The store index of the sessions of one IdP session (`sid`) of `issuer`.
pub fn sid_index(issuer: &str, sid: &str) -> String {
    index("sid", issuer, sid)
}

/// The store index of the sessions of one subject (`sub`) of `issuer`.
pub fn sub_index(issuer: &str, sub: &str) -> String {
    index("sub", issuer, sub)
}

fn index(kind: &str, issuer: &str, value: &str) -> String {
    let mut h = Sha256::new();
    for part in [issuer, "\n", value] {
        h.update(part.as_bytes());
    }
    format!("{kind}-{}", hex::encode(h.finalize()))
}

/// The indexes a session with these facts is filed under.
pub fn indexes(issuer: &str, idp: &IdpFacts) -> Vec<String> {
    let mut v = vec![sub_index(issuer, &idp.sub)];
    v.extend(idp.sid.as_deref().map(|sid| sid_index(issuer, sid)));
    v
}

/// Verifies a logout token at `now`, with the provider's keys (fetched again once when the
/// token names a key not known yet), and takes its `jti` (a second use is `Replayed`).
pub async fn verify(oidc: &Oidc, store: &dyn Store, token: &str, now: UnixTime) -> Result<LogoutToken, VerifyError> {
    let d = oidc.discovered().await.map_err(|_| LogoutError::Unavailable)?;
    let checked = match check(&d, &oidc.cfg.client_id, token, now) {
        Err(LogoutError::UnknownKey) if oidc.refresh().await => {
            let d = oidc.discovered().await.map_err(|_| LogoutError::Unavailable)?;
            check(&d, &oidc.cfg.client_id, token, now)
        }
        other => other,
    }?;
    // One use per jti: a counter whose window outlives the token's validity.
    let window = checked.valid_until.0.saturating_sub(now.0) + SKEW.as_secs() + 1;
    let key = format!("oidc:logout-jti:{}", hex::encode(Sha256::digest(checked.jti.as_bytes())));
    let uses = store.hit_counter(&key, Duration::from_secs(window), now).await?;
    if uses > 1 {
        return Err(LogoutError::Replayed.into());
    }
    Ok(checked.token)
}

/// A refusal, or a store that cannot answer (the token may be good: 503, not 400).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Token(#[from] LogoutError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Checked {
    token: LogoutToken,
    jti: String,
    /// The last moment the token is accepted (its `exp`, or `iat` + `MAX_AGE`).
    valid_until: UnixTime,
}

/// The algorithms the provider announces for ID tokens that a public key checks.
fn algorithms(d: &Discovered) -> Vec<Algorithm> {
    d.metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter_map(|a| serde_json::to_value(a).ok()?.as_str().and_then(|s| Algorithm::from_str(s).ok()))
        .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        .collect()
}

fn check(d: &Discovered, client_id: &str, token: &str, now: UnixTime) -> Result<Checked, LogoutError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| LogoutError::Malformed)?;
    if !algorithms(d).contains(&header.alg) {
        return Err(LogoutError::Algorithm);
    }
    // §2.4: "logout+jwt" is recommended; a plain "JWT" (or none) is what older providers send.
    let typ = header.typ.as_deref().unwrap_or("JWT").to_ascii_lowercase();
    if !matches!(typ.as_str(), "jwt" | "logout+jwt" | "application/logout+jwt") {
        return Err(LogoutError::Type);
    }
    let key = crate::bearer::jwks::key_in_document(&d.jwks_json, header.kid.as_deref(), header.alg)
        .ok_or(LogoutError::UnknownKey)?;
    let mut v = Validation::new(header.alg);
    v.algorithms = vec![header.alg];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_issuer(&[d.metadata.issuer().as_str()]);
    v.set_audience(&[client_id]);
    v.set_required_spec_claims(&["iss", "aud"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidIssuer => LogoutError::Issuer,
            K::InvalidAudience => LogoutError::Audience,
            K::MissingRequiredClaim(c) if c == "aud" => LogoutError::Audience,
            K::MissingRequiredClaim(c) if c == "iss" => LogoutError::Issuer,
            K::InvalidAlgorithm | K::InvalidAlgorithmName => LogoutError::Algorithm,
            K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) => LogoutError::Signature,
            _ => LogoutError::Malformed,
        }
    })?;
    claims(&data.claims, now)
}

/// The checks of §2.6 on verified claims, at `now`.
fn claims(c: &Map<String, Value>, now: UnixTime) -> Result<Checked, LogoutError> {
    let number = |name: &str| c.get(name).map(|v| v.as_u64().ok_or(LogoutError::Claims)).transpose();
    let iat = UnixTime(number("iat")?.ok_or(LogoutError::Claims)?);
    if iat > now.plus(SKEW) {
        return Err(LogoutError::Time);
    }
    let valid_until = match number("exp")? {
        Some(exp) => UnixTime(exp),
        None => iat.plus(MAX_AGE),
    };
    if now > valid_until.plus(SKEW) {
        return Err(LogoutError::Time);
    }
    let text = |name: &str| {
        c.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 1024 && !s.chars().any(char::is_control))
            .map(str::to_string)
    };
    let jti = text("jti").ok_or(LogoutError::Claims)?;
    let has_event = c.get("events").and_then(Value::as_object).and_then(|e| e.get(EVENT)).is_some_and(Value::is_object);
    if !has_event {
        return Err(LogoutError::Event);
    }
    if c.contains_key("nonce") {
        return Err(LogoutError::Nonce);
    }
    let token = LogoutToken { sid: text("sid"), sub: text("sub") };
    if token.sid.is_none() && token.sub.is_none() {
        return Err(LogoutError::Subject);
    }
    Ok(Checked { token, jti, valid_until })
}

/// Ends the sessions a verified logout token names: those of its `sid` when it has one (§2.7),
/// else every session of its `sub`. Returns how many ended.
pub async fn end_sessions(store: &dyn Store, issuer: &str, t: &LogoutToken) -> Result<u64, StoreError> {
    match (&t.sid, &t.sub) {
        (Some(sid), _) => store.end_idp_sessions(&sid_index(issuer, sid)).await,
        (None, Some(sub)) => store.end_idp_sessions(&sub_index(issuer, sub)).await,
        (None, None) => Ok(0),
    }
}

/// The IdP's `end_session_endpoint` with the RP-initiated logout parameters: the ID token as
/// `id_token_hint` (else `logout_hint` = the subject), `client_id`, and where to come back to.
pub fn end_session_url(
    endpoint: &str,
    client_id: &str,
    idp: &IdpFacts,
    post_logout_redirect_uri: &str,
) -> Option<String> {
    let mut url = openidconnect::url::Url::parse(endpoint).ok()?;
    {
        let mut q = url.query_pairs_mut();
        match &idp.id_token {
            Some(t) => q.append_pair("id_token_hint", t),
            None => q.append_pair("logout_hint", &idp.sub),
        };
        q.append_pair("client_id", client_id);
        q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
    }
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn good() -> Value {
        json!({"iat": 1000, "exp": 1120, "jti": "j1", "sid": "s1", "sub": "alice", "events": {EVENT: {}}})
    }

    #[test]
    fn a_logout_token_needs_the_event_a_subject_a_jti_and_no_nonce() {
        let t = claims(&c(good()), UnixTime(1010)).unwrap();
        assert_eq!(t.token, LogoutToken { sid: Some("s1".into()), sub: Some("alice".into()) });
        assert_eq!((t.jti.as_str(), t.valid_until), ("j1", UnixTime(1120)));
        let without = |k: &str| {
            let mut v = good();
            v.as_object_mut().unwrap().remove(k);
            claims(&c(v), UnixTime(1010)).err()
        };
        assert_eq!(without("events"), Some(LogoutError::Event));
        assert_eq!(without("jti"), Some(LogoutError::Claims));
        assert_eq!(without("iat"), Some(LogoutError::Claims));
        assert_eq!(without("sid"), None, "sub alone is enough");
        assert_eq!(without("sub"), None, "sid alone is enough");
        let mut v = good();
        v["nonce"] = json!("n");
        assert_eq!(claims(&c(v), UnixTime(1010)).err(), Some(LogoutError::Nonce), "an ID token is no logout token");
        let mut v = good();
        v["events"] = json!({"http://schemas.openid.net/event/other": {}});
        assert_eq!(claims(&c(v), UnixTime(1010)).err(), Some(LogoutError::Event));
        let mut v = good();
        v.as_object_mut().unwrap().retain(|k, _| k != "sid" && k != "sub");
        assert_eq!(claims(&c(v), UnixTime(1010)).err(), Some(LogoutError::Subject));
    }

    #[test]
    fn a_logout_token_is_good_for_its_lifetime_only() {
        assert!(claims(&c(good()), UnixTime(1120 + 60)).is_ok(), "a minute of skew");
        assert_eq!(claims(&c(good()), UnixTime(1120 + 61)).err(), Some(LogoutError::Time));
        assert_eq!(claims(&c(good()), UnixTime(900)).err(), Some(LogoutError::Time), "iat in the future");
        let mut v = good();
        v.as_object_mut().unwrap().remove("exp");
        let t = claims(&c(v.clone()), UnixTime(1200)).unwrap();
        assert_eq!(t.valid_until, UnixTime(1300), "no exp: iat + 5 minutes");
        assert_eq!(claims(&c(v), UnixTime(1361)).err(), Some(LogoutError::Time));
    }

    #[test]
    fn indexes_are_per_issuer_and_the_end_session_url_carries_the_hint() {
        assert_ne!(sid_index("https://a", "s"), sid_index("https://b", "s"));
        assert_ne!(sid_index("https://a", "s"), sub_index("https://a", "s"));
        let mut idp = IdpFacts { sub: "u-1".into(), sid: Some("s".into()), ..Default::default() };
        assert_eq!(indexes("https://a", &idp).len(), 2);
        let url =
            end_session_url("https://idp/logout?x=1", "gw", &idp, "https://gw/.stepgate/oidc/signed-out").unwrap();
        assert_eq!(
            url,
            "https://idp/logout?x=1&logout_hint=u-1&client_id=gw&post_logout_redirect_uri=https%3A%2F%2Fgw%2F.stepgate%2Foidc%2Fsigned-out"
        );
        idp.id_token = Some("a.b.c".into());
        let url = end_session_url("https://idp/logout", "gw", &idp, "https://gw/x").unwrap();
        assert!(url.starts_with("https://idp/logout?id_token_hint=a.b.c&client_id=gw&"), "{url}");
    }
}
