//! Storage behind one async trait: embedded (a local redb file, the default) and Redis (for
//! several gateway instances).
//!
//! Every record that can expire carries its expiry; readers ignore expired records and the
//! embedded store sweeps them. The same contract tests run against every implementation.

pub mod config;
#[cfg(test)]
mod contract;
pub mod embedded;
pub mod redis;

use crate::clock::UnixTime;
use crate::risk::history::RiskHistory;
use crate::session::Session;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store data corrupt: {0}")]
    Corrupt(String),
}

/// A user's enrolled TOTP factor. The secret is sealed with the gateway's secret key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpFactor {
    pub sealed_secret: String,
    pub enrolled_at: UnixTime,
}

/// A registered passkey or security key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebauthnCredential {
    /// The credential id, base64url (also the key of the store's credential index).
    pub id: String,
    /// The user's name for it ("laptop", "YubiKey").
    pub name: String,
    pub created_at: UnixTime,
    pub last_used: Option<UnixTime>,
    /// webauthn-rs's `Passkey` (public key, signature counter, flags), as JSON.
    pub passkey: serde_json::Value,
}

/// Everything a user has enrolled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factors {
    pub totp: Option<TotpFactor>,
    /// Hashes of the recovery codes not used yet.
    pub recovery_hashes: Vec<String>,
    #[serde(default)]
    pub webauthn: Vec<WebauthnCredential>,
}

impl Factors {
    pub fn has_second_factor(&self) -> bool {
        self.totp.is_some() || !self.webauthn.is_empty()
    }
    /// Second factors, counting each passkey (recovery codes are a fallback, not a factor).
    pub fn second_factor_count(&self) -> usize {
        usize::from(self.totp.is_some()) + self.webauthn.len()
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Sessions, keyed by `SessionId::key()`.
    async fn get_session(&self, key: &str, now: UnixTime) -> Result<Option<Session>, StoreError>;
    async fn put_session(&self, key: &str, session: &Session, expires_at: UnixTime) -> Result<(), StoreError>;
    async fn delete_session(&self, key: &str) -> Result<(), StoreError>;
    /// Deletes every session of `user` (an administrator's operation: it may scan all
    /// sessions); returns how many. Every instance refuses them on their next request: local
    /// session caches are invalidated like on `delete_session`.
    async fn end_user_sessions(&self, user: &str) -> Result<u64, StoreError>;
    /// Files session `session_key` under `index` (an identity provider's session or subject,
    /// see `oidc::logout`), kept until at least `expires_at`. Indexing a key twice is harmless.
    async fn index_idp_session(&self, index: &str, session_key: &str, expires_at: UnixTime) -> Result<(), StoreError>;
    /// Deletes every session filed under `index` and the index itself (back-channel logout);
    /// returns how many sessions were there. Every instance refuses them on their next request,
    /// as after `delete_session`.
    async fn end_idp_sessions(&self, index: &str) -> Result<u64, StoreError>;

    // Factors, keyed by user name.
    async fn get_factors(&self, user: &str) -> Result<Factors, StoreError>;
    async fn put_factors(&self, user: &str, factors: &Factors) -> Result<(), StoreError>;
    /// Removes one recovery code hash; true if it was there (so a code works once, even under races).
    async fn take_recovery_code(&self, user: &str, hash: &str) -> Result<bool, StoreError>;

    /// Binds a WebAuthn credential id to a user: true if it is now (or already was) this user's,
    /// false if another user holds it. Atomic, so one credential never serves two accounts.
    async fn claim_credential(&self, credential_id: &str, user: &str) -> Result<bool, StoreError>;
    async fn release_credential(&self, credential_id: &str) -> Result<(), StoreError>;

    /// The risk scorer's memory of a user (known devices, last sighting, countries); empty when none.
    async fn get_risk_history(&self, user: &str) -> Result<RiskHistory, StoreError>;
    async fn put_risk_history(&self, user: &str, history: &RiskHistory) -> Result<(), StoreError>;

    /// Short-lived values (ceremony state, pending enrollments), taken at most once.
    async fn put_ephemeral(&self, key: &str, value: &[u8], expires_at: UnixTime) -> Result<(), StoreError>;
    async fn take_ephemeral(&self, key: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError>;
    async fn get_ephemeral(&self, key: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError>;

    /// Raises a high-water mark atomically: true if `value` is above the stored one (or none is stored).
    /// The TOTP replay guard: a time step is accepted once, and never one older than the last accepted.
    async fn raise_high_water(&self, key: &str, value: u64) -> Result<bool, StoreError>;

    /// Counts a hit in a fixed window that starts at the first hit; returns the count including this hit.
    async fn hit_counter(&self, key: &str, window: Duration, now: UnixTime) -> Result<u64, StoreError>;
    async fn read_counter(&self, key: &str, now: UnixTime) -> Result<u64, StoreError>;
    async fn reset_counter(&self, key: &str) -> Result<(), StoreError>;

    /// Removes expired records; returns how many.
    async fn sweep(&self, now: UnixTime) -> Result<u64, StoreError>;

    /// False while the store is known not to answer (its last call failed or timed out and none
    /// has succeeded since): public routes then skip their optional identity read at once rather
    /// than wait. Protected routes ask regardless (and fail closed), which is also how the flag
    /// clears. The embedded store is always answering.
    fn answering(&self) -> bool {
        true
    }

    /// How long a caller that can do without the answer (a public route's optional identity)
    /// waits for it; None: as long as the call takes (the embedded store, a local file).
    fn optional_wait(&self) -> Option<Duration> {
        None
    }

    /// Whether the store can write and read right now (the readiness probe): writes a small
    /// random probe record with a short TTL, under a key of its own, and takes it back. Both
    /// implementations use this one: it goes through the same paths as every other record
    /// (the embedded store's reopen after an I/O error, Redis's master and timeouts).
    async fn ready(&self, now: UnixTime) -> Result<(), StoreError> {
        let nonce: u64 = rand::random();
        let key = format!("ready-probe:{nonce:016x}");
        let value = nonce.to_be_bytes();
        self.put_ephemeral(&key, &value, now.plus(READY_PROBE_TTL)).await?;
        match self.take_ephemeral(&key, now).await? {
            Some(back) if back == value => Ok(()),
            Some(_) => Err(StoreError::Corrupt("the readiness probe read back another value".into())),
            None => Err(StoreError::Unavailable("the readiness probe record was not there when read back".into())),
        }
    }
}

/// How long a readiness probe record lives if it is not taken back (a failed read, say).
const READY_PROBE_TTL: Duration = Duration::from_secs(10);

pub type SharedStore = Arc<dyn Store>;
