//! Who may use a route, beyond how strongly they were proven: groups and claims (people, from
//! the identity provider, the users file or a trusted header), scopes and the client (bearer
//! tokens), the workload a client certificate proves, and how recently that credential was issued.
//!
//! A workload (proved by the client CA) and a token's client (named by the token's issuer) are
//! two attributes, never one: a token whose `client_id` reads `spiffe://…` is not that workload.
//!
//! A condition is a requirement, not a selector: a rule with `groups = ["finance"]` matches
//! its requests as any rule does, and a signed-in caller in none of the groups is denied (403).

use crate::clock::UnixTime;
use crate::parse::{parse_duration, ConfigError};
use crate::policy::cause::Cause;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What is known of the caller besides proofs: filled by the identity source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    /// Group names (from `groups_claim`, the users file, or the groups header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Claims of the ID token or access token (top-level, as JSON).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, serde_json::Value>,
    /// Scopes of a bearer token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// A workload's identity, proved by a client certificate: its SPIFFE ID or subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// A bearer token's client (`client_id`, else `azp`), as the token's issuer names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// When the certificate or token was issued (`notBefore`, `iat`); None for a browser session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_issued_at: Option<UnixTime>,
}

/// A rule's conditions. Empty: anyone the requirement admits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Any of these groups.
    pub groups: Vec<String>,
    /// Each claim equal to the value (a claim that is a list must contain it).
    pub claims: Vec<(String, String)>,
    /// All of these scopes.
    pub scopes: Vec<String>,
    /// A glob on the workload's ID: `*` matches within one `/` segment, `**` across segments.
    pub workload: Option<String>,
    /// A glob on a bearer token's client, with the same wildcards.
    pub client: Option<String>,
    /// The credential must have been issued within this long.
    pub max_credential_age: Option<Duration>,
}

/// The conditions as written in a rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawConditions<'a> {
    pub groups: Option<&'a [String]>,
    pub claims: Option<&'a BTreeMap<String, String>>,
    pub scopes: Option<&'a [String]>,
    pub workload: Option<&'a str>,
    pub client: Option<&'a str>,
    pub max_credential_age: Option<&'a str>,
}

impl RawConditions<'_> {
    /// The keys that are set, for "never applies" errors.
    pub fn keys_set(&self) -> Vec<&'static str> {
        let set = [
            ("groups", self.groups.is_some()),
            ("claims", self.claims.is_some()),
            ("scopes", self.scopes.is_some()),
            ("workload", self.workload.is_some()),
            ("client", self.client.is_some()),
            ("max_credential_age", self.max_credential_age.is_some()),
        ];
        set.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect()
    }
}

/// A glob key (`workload`, `client`): not empty, no spaces or control characters.
fn glob(prefix: &str, key: &str, raw: Option<&str>, example: &str) -> Result<Option<String>, ConfigError> {
    match raw.map(str::trim) {
        None => Ok(None),
        Some("") => Err(ConfigError::new(
            format!("{prefix}{key}"),
            format!("empty: give an ID or a glob such as \"{example}\", or remove the key"),
        )),
        Some(g) if g.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(ConfigError::new(format!("{prefix}{key}"), "contains spaces or control characters"))
        }
        Some(g) => Ok(Some(g.to_string())),
    }
}

fn names(prefix: &str, key: &str, list: &[String], what: &str) -> Result<Vec<String>, ConfigError> {
    if list.is_empty() {
        return Err(ConfigError::new(
            format!("{prefix}{key}"),
            format!("empty: name at least one {what}, or remove the key"),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for name in list {
        let name = name.trim();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::new(
                format!("{prefix}{key}"),
                format!("{name:?} is not a {what} name (empty, or contains spaces or control characters)"),
            ));
        }
        out.push(name.to_string());
    }
    Ok(out)
}

impl Conditions {
    pub fn parse(prefix: &str, raw: RawConditions<'_>) -> Result<Conditions, ConfigError> {
        let groups = raw.groups.map(|g| names(prefix, "groups", g, "group")).transpose()?.unwrap_or_default();
        let scopes = raw.scopes.map(|s| names(prefix, "scopes", s, "scope")).transpose()?.unwrap_or_default();
        let mut claims = Vec::new();
        if let Some(map) = raw.claims {
            if map.is_empty() {
                return Err(ConfigError::new(
                    format!("{prefix}claims"),
                    "empty: name a claim and its value, or remove the key",
                ));
            }
            for (k, v) in map {
                if k.trim().is_empty() {
                    return Err(ConfigError::new(format!("{prefix}claims"), "a claim name is empty"));
                }
                claims.push((k.trim().to_string(), v.clone()));
            }
        }
        let workload = glob(prefix, "workload", raw.workload, "spiffe://example.org/ns/prod/sa/*")?;
        let client = glob(prefix, "client", raw.client, "billing-*")?;
        let max_credential_age =
            raw.max_credential_age.map(|t| parse_duration(&format!("{prefix}max_credential_age"), t)).transpose()?;
        Ok(Conditions { groups, claims, scopes, workload, client, max_credential_age })
    }

    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }

    /// Whether `attrs` meets every condition at `now`; the first one missed otherwise.
    pub fn check(&self, attrs: &Attributes, now: UnixTime) -> Result<(), Cause> {
        if let Some(glob) = &self.workload {
            if !attrs.workload.as_deref().is_some_and(|w| glob_matches(glob, w)) {
                return Err(Cause::WorkloadNotAllowed);
            }
        }
        if let Some(glob) = &self.client {
            if !attrs.client.as_deref().is_some_and(|c| glob_matches(glob, c)) {
                return Err(Cause::ClientNotAllowed);
            }
        }
        if let Some(max) = self.max_credential_age {
            // No issue time (a browser session) is not a fresh credential: fail closed.
            if attrs.credential_issued_at.is_none_or(|t| now.since(t) > max) {
                return Err(Cause::CredentialTooOld);
            }
        }
        if !self.scopes.iter().all(|s| attrs.scopes.contains(s)) {
            return Err(Cause::MissingScope);
        }
        if !self.groups.is_empty() && !self.groups.iter().any(|g| attrs.groups.contains(g)) {
            return Err(Cause::NotInGroup);
        }
        if !self.claims.iter().all(|(k, v)| attrs.claims.get(k).is_some_and(|c| claim_equals(c, v))) {
            return Err(Cause::ClaimMismatch);
        }
        Ok(())
    }

    /// Whether these conditions admit someone `other` would not (an expiry handing requests
    /// from a rule with these conditions to `other` loosens protection when `other` has fewer).
    pub fn stricter_than(&self, other: &Conditions) -> Option<&'static str> {
        if !self.groups.is_empty() && (other.groups.is_empty() || other.groups.iter().any(|g| !self.groups.contains(g)))
        {
            return Some("groups");
        }
        if self.claims.iter().any(|c| !other.claims.contains(c)) {
            return Some("claims");
        }
        if self.scopes.iter().any(|s| !other.scopes.contains(s)) {
            return Some("scopes");
        }
        if self.workload.is_some() && self.workload != other.workload {
            return Some("workload");
        }
        if self.client.is_some() && self.client != other.client {
            return Some("client");
        }
        match (self.max_credential_age, other.max_credential_age) {
            (Some(_), None) => Some("max_credential_age"),
            (Some(a), Some(b)) if b > a => Some("max_credential_age"),
            _ => None,
        }
    }
}

/// A claim's value equals the configured text: a string equal to it, a number or boolean that
/// prints as it, or a list that contains one of those.
fn claim_equals(claim: &serde_json::Value, want: &str) -> bool {
    match claim {
        serde_json::Value::String(s) => s == want,
        serde_json::Value::Number(n) => n.to_string() == want,
        serde_json::Value::Bool(b) => b.to_string() == want,
        serde_json::Value::Array(items) => items.iter().any(|i| !i.is_array() && claim_equals(i, want)),
        _ => false,
    }
}

/// `*` matches any run of characters but `/`; `**` any run at all; everything else literally.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    fn go(g: &[u8], t: &[u8]) -> bool {
        match g {
            [] => t.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=t.len()).any(|k| go(rest, &t[k..])),
            [b'*', rest @ ..] => {
                let stop = t.iter().position(|&b| b == b'/').unwrap_or(t.len());
                (0..=stop).any(|k| go(rest, &t[k..]))
            }
            [c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(glob.as_bytes(), text.as_bytes())
}

impl fmt::Display for Conditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if !self.groups.is_empty() {
            parts.push(format!("groups {}", self.groups.join("|")));
        }
        for (k, v) in &self.claims {
            parts.push(format!("claim {k}={v}"));
        }
        if !self.scopes.is_empty() {
            parts.push(format!("scopes {}", self.scopes.join(",")));
        }
        if let Some(w) = &self.workload {
            parts.push(format!("workload {w}"));
        }
        if let Some(c) = &self.client {
            parts.push(format!("client {c}"));
        }
        if let Some(a) = self.max_credential_age {
            parts.push(format!("credential within {}", humantime::format_duration(a)));
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;
