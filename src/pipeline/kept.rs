//! A kept request: a form or JSON submission that needed a step-up, sealed in the store
//! (encrypted with the secret key) under a random one-use id, bound to the session, method,
//! host, path and body digest, for as long as a challenge lasts. After the proof the gateway
//! replays it upstream once (a browser form), or the client retries it with
//! `X-Stepgate-Confirmation: ID` (an API client or a single-page app).

use super::Ctx;
use crate::clock::UnixTime;
use crate::store::StoreError;
use http::HeaderName;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The retry header of an API client after the user passed the challenge.
pub const X_CONFIRMATION: HeaderName = HeaderName::from_static("x-stepgate-confirmation");
/// The digest of the confirmed request, for the app to check against what it executes.
pub const X_TRANSACTION: HeaderName = HeaderName::from_static("x-stepgate-transaction");

/// Where a kept form is replayed after the proof (`gateway::kept::replay`).
pub const KEPT_PATH: &str = "/.stepgate/kept";

/// How long a kept request waits for its proof (the life of a challenge).
pub const KEPT_TTL: Duration = Duration::from_secs(300);

/// How the client that sent it waits for the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Via {
    /// A browser form: sent to the challenge page, then the gateway replays it.
    Form,
    /// `fetch`, XHR or an API client: 401 with the id; the client retries with it.
    Api,
}

/// What is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    pub user: String,
    /// `SessionId::key()` of the session it belongs to (moved on to the new one at the proof).
    pub session_key: String,
    pub method: String,
    pub host: String,
    pub path_and_query: String,
    pub content_type: String,
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    /// SHA-256 over method, host, path, content type and body (hex): `X-Stepgate-Transaction`.
    pub digest: String,
    pub via: Via,
    /// The rule binds the transaction: only a proof made for this record lets it through.
    pub bound: bool,
    /// The rendered confirmation (`Transfer 10 to bob`), when the rule has `confirm`.
    pub confirmation: Option<String>,
    /// The body's fields, shown raw beside the confirmation.
    pub fields: Vec<(String, String)>,
    /// A proof was made for it (bound rules: what lets the retry or the replay through).
    pub confirmed: bool,
    pub expires_at: UnixTime,
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// The transaction digest: what a proof for a bound rule is valid for. The content type is in
/// it: the same bytes read as another type are another request.
pub fn digest(method: &str, host: &str, path_and_query: &str, content_type: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), host.as_bytes(), path_and_query.as_bytes(), content_type.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(body);
    hex::encode(h.finalize())
}

/// A new kept-request id: 128 random bits, hex.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether `s` looks like an id `new_id` makes (so a client's header is never a store key otherwise).
pub fn valid_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn key(id: &str) -> String {
    format!("kept:{id}")
}

/// Seals and stores `kept` under `id` until its expiry.
pub async fn put(ctx: &Ctx, id: &str, kept: &Kept) -> Result<(), StoreError> {
    let json = serde_json::to_vec(kept).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sealed = ctx.live.secretbox.seal(&json);
    ctx.state.store.put_ephemeral(&key(id), sealed.as_bytes(), kept.expires_at).await
}

fn open(ctx: &Ctx, sealed: Option<Vec<u8>>) -> Option<Kept> {
    let sealed = String::from_utf8(sealed?).ok()?;
    let json = ctx.live.secretbox.open(&sealed)?;
    serde_json::from_slice(&json).ok()
}

/// Reads a kept request without using it up (the challenge page shows it).
pub async fn peek(ctx: &Ctx, id: &str) -> Result<Option<Kept>, StoreError> {
    if !valid_id(id) {
        return Ok(None);
    }
    Ok(open(ctx, ctx.state.store.get_ephemeral(&key(id), ctx.now).await?))
}

/// Takes a kept request: atomic get-and-delete, so it is used at most once.
pub async fn take(ctx: &Ctx, id: &str) -> Result<Option<Kept>, StoreError> {
    if !valid_id(id) {
        return Ok(None);
    }
    Ok(open(ctx, ctx.state.store.take_ephemeral(&key(id), ctx.now).await?))
}

/// After a proof made for it: marks it confirmed and moves it to the session the proof made.
/// Taken and put back, so two proofs racing cannot both find it.
pub async fn confirm(ctx: &Ctx, id: &str, user: &str, new_session_key: &str) -> Result<bool, StoreError> {
    let Some(mut kept) = take(ctx, id).await? else { return Ok(false) };
    if kept.user != user {
        return Ok(false);
    }
    kept.confirmed = true;
    kept.session_key = new_session_key.to_string();
    put(ctx, id, &kept).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_covers_every_part() {
        let form = "application/x-www-form-urlencoded";
        let d = digest("POST", "h", "/t", form, b"amount=10");
        assert_ne!(d, digest("POST", "h", "/t", form, b"amount=11"));
        assert_ne!(d, digest("PUT", "h", "/t", form, b"amount=10"));
        assert_ne!(d, digest("POST", "h2", "/t", form, b"amount=10"));
        assert_ne!(d, digest("POST", "h", "/t", "text/plain", b"amount=10"));
        assert_ne!(digest("POST", "h", "/ta", form, b"b"), digest("POST", "h", "/t", form, b"ab"));
        assert_eq!(d.len(), 64);
    }

    #[test]
    fn ids_are_what_new_id_makes() {
        assert!(valid_id(&new_id()));
        assert!(!valid_id("../x"));
        assert!(!valid_id(&new_id().to_uppercase()));
    }
}
