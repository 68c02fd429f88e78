//! Sessions: who is signed in, and which proofs they have made.

pub mod cookies;

use crate::clock::UnixTime;
use crate::policy::level::{Level, Proof};
use crate::risk::ProofContext;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// A session id as the browser holds it: 256 random bits, base64url.
/// Never logged; the store keys sessions by `SessionId::key()`, a SHA-256 of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    pub fn generate() -> SessionId {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionId(base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes))
    }
    /// Accepts only what `generate` makes: 43 base64url characters.
    pub fn parse(s: &str) -> Option<SessionId> {
        let ok = s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| SessionId(s.to_string()))
    }
    pub fn as_cookie_value(&self) -> &str {
        &self.0
    }
    /// The key under which the store keeps this session: a store dump reveals no live id.
    pub fn key(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(..)")
    }
}

/// What the store keeps for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub created_at: UnixTime,
    pub last_seen: UnixTime,
    /// The latest proof per method.
    pub proofs: Vec<Proof>,
    /// Where the latest proof was made (risk: behaviour signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ProofContext>,
    /// Signed in at an OpenID provider: its subject, its session (`sid`) and what rules'
    /// conditions see (groups, claims) from the latest verified ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<IdpFacts>,
}

/// What the identity provider said about the user in the latest verified ID token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IdpFacts {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// JSON text of the kept claims (a map), so the session stays `Eq`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub claims_json: String,
    /// The ID token itself, the `id_token_hint` of an RP-initiated logout. Never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for IdpFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpFacts")
            .field("sub", &self.sub)
            .field("sid", &self.sid)
            .field("groups", &self.groups)
            .field("claims_json", &self.claims_json)
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Session {
    pub fn new(user: &str, first: Proof) -> Session {
        Session {
            user: user.to_string(),
            created_at: first.auth_time,
            last_seen: first.auth_time,
            proofs: vec![first],
            context: None,
            idp: None,
        }
    }

    /// Records a proof, replacing an older one made with the same method.
    pub fn record(&mut self, proof: Proof) {
        self.proofs.retain(|p| p.method != proof.method);
        self.proofs.push(proof);
    }

    /// The strongest proof, and among equals the most recent.
    pub fn strongest(&self) -> Option<&Proof> {
        self.proofs.iter().max_by_key(|p| (p.level, p.auth_time))
    }

    pub fn level(&self) -> Level {
        self.strongest().map(|p| p.level).unwrap_or(Level::None)
    }

    /// Whether the session is still alive at `now` under the given timeouts.
    pub fn is_live(&self, now: UnixTime, idle: Duration, absolute: Duration) -> bool {
        now.since(self.last_seen) <= idle && now.since(self.created_at) <= absolute
    }

    /// When the store may forget this session.
    pub fn expires_at(&self, idle: Duration, absolute: Duration) -> UnixTime {
        std::cmp::min(self.last_seen.plus(idle), self.created_at.plus(absolute))
    }
}
