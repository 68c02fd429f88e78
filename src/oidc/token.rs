//! What a verified ID token proves: the user, the level (from what came BACK: `acr`, `amr`),
//! `auth_time`, the IdP session (`sid`), groups and claims.

use crate::clock::UnixTime;
use crate::config::idp::OidcConfig;
use crate::policy::level::Level;
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The facts of one verified ID token.
#[derive(Debug, Clone, PartialEq)]
pub struct Proven {
    pub sub: String,
    pub user: String,
    /// aal1 at least: a sign-in at the IdP with no known `acr`/`amr` is one factor.
    pub level: Level,
    pub auth_time: UnixTime,
    pub sid: Option<String>,
    pub groups: Vec<String>,
    pub claims: BTreeMap<String, Value>,
}

/// The claims of a compact JWS whose signature was verified already (never call it before).
pub fn verified_payload(compact: &str) -> Option<Map<String, Value>> {
    let middle = compact.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(middle.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Claims about the token itself, not the user: not kept for rules.
const TOKEN_CLAIMS: &[&str] = &["iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "jti", "sid"];

pub fn proven(cfg: &OidcConfig, claims: &Map<String, Value>) -> Result<Proven, &'static str> {
    let sub = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or("no sub")?.to_string();
    let named = claims.get(&cfg.user_claim).and_then(Value::as_str).map(str::trim);
    let user = match named {
        Some(u) if crate::authn::password::valid_user_name(u) => u.to_string(),
        _ if crate::authn::password::valid_user_name(&sub) => sub.clone(),
        _ => return Err("neither the user claim nor sub is a usable user name"),
    };
    let acr = claims.get("acr").and_then(Value::as_str);
    let amr: Vec<String> = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let level = cfg.assurance.level(acr, &amr).max(Level::Aal1);
    let auth_time =
        claims.get("auth_time").or_else(|| claims.get("iat")).and_then(Value::as_u64).ok_or("no auth_time nor iat")?;
    let sid = claims.get("sid").and_then(Value::as_str).map(str::to_string);
    let groups = match cfg.groups_claim.as_deref().and_then(|g| claims.get(g)) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(s)) => s.split([',', ' ']).filter(|g| !g.is_empty()).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let kept = claims.iter().filter(|(k, _)| !TOKEN_CLAIMS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone()));
    Ok(Proven { sub, user, level, auth_time: UnixTime(auth_time), sid, groups, claims: kept.collect() })
}

/// Whether a step-up's returned proof is good enough: the level reached, and `auth_time`
/// within `max_age` of `now` (and not in the future beyond a minute of clock skew).
pub fn reaches(
    p: &Proven,
    level: Level,
    max_age: Option<std::time::Duration>,
    now: UnixTime,
) -> Result<(), &'static str> {
    if p.level < level {
        return Err("the identity provider proved a lower level than asked");
    }
    if p.auth_time.0 > now.0 + 60 {
        return Err("auth_time is in the future");
    }
    if let Some(max) = max_age {
        // A second of grace: max_age 0 means "just now".
        if now.since(p.auth_time) > max + std::time::Duration::from_secs(1) {
            return Err("auth_time is older than the route's max_age");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> OidcConfig {
        let raw = crate::config::raw::RawIdentity {
            issuer: Some("https://idp.example".into()),
            client_id: Some("gw".into()),
            groups_claim: Some("groups".into()),
            ..Default::default()
        };
        crate::config::idp::parse(&raw, std::path::Path::new(".")).unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn user_level_groups_and_sid_come_from_what_came_back() {
        let p = proven(
            &cfg(),
            &claims(json!({"sub":"u-1","preferred_username":"alice","acr":"aal2","amr":["pwd","otp"],
                "auth_time":100,"sid":"s1","groups":["finance","ops"],"department":"payments","nonce":"n"})),
        )
        .unwrap();
        assert_eq!((p.user.as_str(), p.level, p.auth_time.0), ("alice", Level::Aal2, 100));
        assert_eq!(p.sid.as_deref(), Some("s1"));
        assert_eq!(p.groups, vec!["finance", "ops"]);
        assert_eq!(p.claims.get("department"), Some(&json!("payments")));
        assert!(!p.claims.contains_key("nonce"));
    }

    #[test]
    fn no_acr_nor_amr_is_aal1_and_sub_is_the_fallback_user() {
        let p = proven(&cfg(), &claims(json!({"sub":"u-1","iat":5}))).unwrap();
        assert_eq!((p.user.as_str(), p.level, p.auth_time.0), ("u-1", Level::Aal1, 5));
        assert!(proven(&cfg(), &claims(json!({"sub":"has space","iat":5}))).is_err());
    }

    #[test]
    fn step_up_needs_the_level_and_a_fresh_auth_time() {
        let p = proven(&cfg(), &claims(json!({"sub":"a","acr":"aal1","auth_time":1000}))).unwrap();
        assert!(reaches(&p, Level::Aal2, None, UnixTime(1000)).is_err(), "lower acr refused");
        let p2 = Proven { level: Level::Aal2, ..p };
        assert!(reaches(&p2, Level::Aal2, Some(std::time::Duration::from_secs(60)), UnixTime(1030)).is_ok());
        assert!(reaches(&p2, Level::Aal2, Some(std::time::Duration::from_secs(60)), UnixTime(1100)).is_err());
        assert!(reaches(&p2, Level::Aal2, Some(std::time::Duration::ZERO), UnixTime(1005)).is_err());
        assert!(reaches(&p2, Level::Aal2, None, UnixTime(900)).is_err(), "future auth_time");
    }
}
