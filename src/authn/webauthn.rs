//! WebAuthn ceremonies (webauthn-rs): registration and authentication of passkeys and security
//! keys. Ceremony state stays on the server under a random one-time id (the store's ephemeral
//! records, taken once, with a short TTL); the browser holds only that id.

use crate::authn::webauthn_config::WebauthnConfig;
use crate::clock::UnixTime;
use crate::policy::level::Level;
use crate::store::{Store, StoreError, WebauthnCredential};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, CredentialID, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
    WebauthnError,
};

/// How long a started ceremony may take.
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Unknown, expired, already used, or another user's ceremony.
    #[error("the ceremony expired or was already used; start again")]
    NoCeremony,
    #[error("this passkey is registered to another account")]
    CredentialTaken,
    #[error("the authenticator's signature counter went backwards: it may have been cloned")]
    CounterRegression,
    #[error("the passkey could not be verified")]
    Rejected(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub fn build(cfg: &WebauthnConfig) -> Result<Webauthn, String> {
    let origin = Url::parse(&cfg.origin).map_err(|e| format!("listen.public_url: {e}"))?;
    WebauthnBuilder::new(&cfg.rp_id, &origin)
        .and_then(|b| b.rp_name(&cfg.rp_name).build())
        .map_err(|e| format!("webauthn.rp_id '{}': {e}", cfg.rp_id))
}

/// A stable WebAuthn user handle for a user name (no personal data in it).
pub fn user_handle(user: &str) -> Uuid {
    let digest = Sha256::digest(format!("stepgate user handle\0{user}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8 (custom)
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    Uuid::from_bytes(b)
}

fn new_ceremony_id() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn ceremony_key(kind: &str, id: &str) -> String {
    format!("webauthn-{kind}:{id}")
}

#[derive(Serialize, Deserialize)]
struct Pending<T> {
    user: String,
    state: T,
}

async fn park<T: Serialize>(
    store: &dyn Store,
    kind: &str,
    user: &str,
    state: T,
    now: UnixTime,
) -> Result<String, CeremonyError> {
    let id = new_ceremony_id();
    let json = serde_json::to_vec(&Pending { user: user.to_string(), state })
        .map_err(|e| CeremonyError::Internal(e.to_string()))?;
    store.put_ephemeral(&ceremony_key(kind, &id), &json, now.plus(CEREMONY_TTL)).await?;
    Ok(id)
}

/// Takes (and so deletes) a ceremony; it must belong to `user`.
async fn take<T: for<'de> Deserialize<'de>>(
    store: &dyn Store,
    kind: &str,
    id: &str,
    user: &str,
    now: UnixTime,
) -> Result<T, CeremonyError> {
    if id.is_empty() || id.len() > 64 {
        return Err(CeremonyError::NoCeremony);
    }
    let raw = store.take_ephemeral(&ceremony_key(kind, id), now).await?.ok_or(CeremonyError::NoCeremony)?;
    let pending: Pending<T> = serde_json::from_slice(&raw).map_err(|_| CeremonyError::NoCeremony)?;
    if pending.user != user {
        return Err(CeremonyError::NoCeremony);
    }
    Ok(pending.state)
}

pub fn passkey_of(c: &WebauthnCredential) -> Result<Passkey, CeremonyError> {
    serde_json::from_value(c.passkey.clone()).map_err(|e| CeremonyError::Internal(format!("stored passkey: {e}")))
}

fn credential_id(id: &CredentialID) -> String {
    URL_SAFE_NO_PAD.encode(id.as_slice())
}

/// Starts registering a new credential for `user`, excluding the ones they hold.
pub async fn start_registration(
    wa: &Webauthn,
    store: &dyn Store,
    user: &str,
    held: &[WebauthnCredential],
    now: UnixTime,
) -> Result<(String, CreationChallengeResponse), CeremonyError> {
    let exclude: Vec<CredentialID> =
        held.iter().filter_map(|c| passkey_of(c).ok()).map(|p| p.cred_id().clone()).collect();
    let (ccr, state) = wa
        .start_passkey_registration(user_handle(user), user, user, Some(exclude))
        .map_err(|e| CeremonyError::Internal(e.to_string()))?;
    let id = park(store, "reg", user, state, now).await?;
    Ok((id, ccr))
}

/// Finishes a registration: verifies the attestation, claims the credential id for the user.
pub async fn finish_registration(
    wa: &Webauthn,
    store: &dyn Store,
    user: &str,
    ceremony: &str,
    response: &RegisterPublicKeyCredential,
    name: &str,
    now: UnixTime,
) -> Result<WebauthnCredential, CeremonyError> {
    let state: PasskeyRegistration = take(store, "reg", ceremony, user, now).await?;
    let passkey =
        wa.finish_passkey_registration(response, &state).map_err(|e| CeremonyError::Rejected(e.to_string()))?;
    let id = credential_id(passkey.cred_id());
    if !store.claim_credential(&id, user).await? {
        return Err(CeremonyError::CredentialTaken);
    }
    Ok(WebauthnCredential {
        id,
        name: name.to_string(),
        created_at: now,
        last_used: None,
        passkey: serde_json::to_value(&passkey).map_err(|e| CeremonyError::Internal(e.to_string()))?,
    })
}

/// An assertion ceremony: the library's state, and the transaction it confirms (if any).
#[derive(Serialize, Deserialize)]
struct AuthCeremony {
    state: PasskeyAuthentication,
    #[serde(default)]
    transaction: Option<String>,
}

/// Starts an assertion over the user's credentials. With `transaction` (a kept request's
/// digest), the challenge is SHA-256(digest || 32 random bytes), so the authenticator's
/// signature covers the transaction; the ceremony remembers the digest and only finishes for it.
pub async fn start_authentication(
    wa: &Webauthn,
    store: &dyn Store,
    user: &str,
    held: &[WebauthnCredential],
    now: UnixTime,
    transaction: Option<&str>,
) -> Result<(String, RequestChallengeResponse), CeremonyError> {
    let passkeys: Vec<Passkey> = held.iter().map(passkey_of).collect::<Result<_, _>>()?;
    if passkeys.is_empty() {
        return Err(CeremonyError::Rejected("no passkey registered".into()));
    }
    let (mut rcr, mut state) =
        wa.start_passkey_authentication(&passkeys).map_err(|e| CeremonyError::Internal(e.to_string()))?;
    if let Some(digest) = transaction {
        (rcr, state) = bind_challenge(rcr, state, &transaction_challenge(digest))?;
    }
    let ceremony = AuthCeremony { state, transaction: transaction.map(str::to_string) };
    let id = park(store, "auth", user, ceremony, now).await?;
    Ok((id, rcr))
}

/// SHA-256(digest || 32 random bytes): a fresh challenge that commits to the transaction.
pub fn transaction_challenge(digest: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut salt = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut h = Sha256::new();
    h.update(digest.as_bytes());
    h.update(salt);
    h.finalize().into()
}

/// Puts `challenge` in place of the library's random one, in the options sent to the browser
/// and in the state the assertion is checked against. webauthn-rs 0.6 has no way to supply a
/// challenge; its state is serializable (`danger-allow-state-serialisation`), so the challenge
/// is replaced where it appears, and the result read back through the library's own types.
fn bind_challenge(
    rcr: RequestChallengeResponse,
    state: PasskeyAuthentication,
    challenge: &[u8; 32],
) -> Result<(RequestChallengeResponse, PasskeyAuthentication), CeremonyError> {
    let internal = |e: serde_json::Error| CeremonyError::Internal(format!("binding the challenge: {e}"));
    let old = serde_json::to_value(&rcr.public_key.challenge).map_err(internal)?;
    // The challenge appears as bytes or as base64url text, depending on the serializer.
    let old_bytes: Vec<u8> = serde_json::from_value(old.clone()).map_err(internal)?;
    let forms =
        |b: &[u8]| [serde_json::Value::String(URL_SAFE_NO_PAD.encode(b)), serde_json::to_value(b).unwrap_or_default()];
    let (olds, news) = (forms(&old_bytes), forms(challenge));
    fn swap(v: &mut serde_json::Value, old: &serde_json::Value, new: &serde_json::Value) -> usize {
        match v {
            x if x == old => {
                *x = new.clone();
                1
            }
            serde_json::Value::Array(a) => a.iter_mut().map(|x| swap(x, old, new)).sum(),
            serde_json::Value::Object(o) => o.values_mut().map(|x| swap(x, old, new)).sum(),
            _ => 0,
        }
    }
    let mut r = serde_json::to_value(&rcr).map_err(internal)?;
    let mut s = serde_json::to_value(&state).map_err(internal)?;
    let swap_all = |v: &mut serde_json::Value| -> usize { olds.iter().zip(&news).map(|(o, n)| swap(v, o, n)).sum() };
    if swap_all(&mut r) != 1 || swap_all(&mut s) != 1 {
        // The library's layout changed: refuse rather than sign an unbound challenge.
        return Err(CeremonyError::Internal("the challenge could not be bound to the transaction".into()));
    }
    Ok((serde_json::from_value(r).map_err(internal)?, serde_json::from_value(s).map_err(internal)?))
}

/// What a verified assertion proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asserted {
    pub credential_id: String,
    /// aal3 with user verification, aal2 without.
    pub level: Level,
    pub result_counter: u32,
}

/// What the browser presents to finish an assertion, and the transaction it is said to confirm.
pub struct Presented<'a> {
    pub ceremony: &'a str,
    pub response: &'a PublicKeyCredential,
    /// The kept request's digest; None: the assertion confirms no transaction.
    pub transaction: Option<&'a str>,
}

/// Finishes an assertion; on success updates the credential's counter and last use in `held`.
pub async fn finish_authentication(
    wa: &Webauthn,
    store: &dyn Store,
    user: &str,
    presented: Presented<'_>,
    held: &mut [WebauthnCredential],
    now: UnixTime,
) -> Result<Asserted, CeremonyError> {
    let Presented { ceremony, response, transaction } = presented;
    let AuthCeremony { state, transaction: bound_to } = take(store, "auth", ceremony, user, now).await?;
    // A ceremony started for one transaction confirms that one only (and an unbound one none).
    if bound_to.as_deref() != transaction {
        return Err(CeremonyError::Rejected("the assertion was made for another transaction".into()));
    }
    let result: AuthenticationResult = match wa.finish_passkey_authentication(response, &state) {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => return Err(CeremonyError::CounterRegression),
        Err(e) => return Err(CeremonyError::Rejected(e.to_string())),
    };
    let id = credential_id(result.cred_id());
    let cred =
        held.iter_mut().find(|c| c.id == id).ok_or_else(|| CeremonyError::Rejected("unknown credential".into()))?;
    let mut passkey = passkey_of(cred)?;
    passkey.update_credential(&result);
    cred.passkey = serde_json::to_value(&passkey).map_err(|e| CeremonyError::Internal(e.to_string()))?;
    cred.last_used = Some(now);
    let level = if result.user_verified() { Level::Aal3 } else { Level::Aal2 };
    Ok(Asserted { credential_id: id, level, result_counter: result.counter() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_handles_are_stable_and_distinct() {
        assert_eq!(user_handle("alice"), user_handle("alice"));
        assert_ne!(user_handle("alice"), user_handle("bob"));
    }
}
