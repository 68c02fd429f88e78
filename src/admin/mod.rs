//! User administration: `stepgate user list | remove | reset-factors | unlock`, and the
//! re-read of the users file after `user add`.
//!
//! Each operation has ONE implementation, [`perform`], called both by the running gateway's
//! admin socket (`socket.rs`: the embedded store is a file only the gateway can open) and by
//! the CLI itself when no gateway answers there (it then opens the store directly).

pub mod socket;

use crate::audit::{self, Kind};
use crate::clock::UnixTime;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One administrative request (also the admin socket's wire format, one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// The users of the users file, with what each has enrolled.
    List,
    /// Removes the user from the users file, removes their factors and ends their sessions.
    Remove { user: String },
    /// Removes TOTP, passkeys and recovery codes and ends the user's sessions.
    ResetFactors { user: String },
    /// Clears the user's sign-in and step-up lockouts.
    Unlock { user: String },
    /// Re-reads the users file now (after `user add`).
    ReloadUsers,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Users(#[from] crate::authn::AuthnError),
    #[error("there is no user '{user}' (not in the users file, nothing enrolled)")]
    NoSuchUser { user: String },
    #[error("identity.source is \"header\": there is no users file to {what}")]
    NoUsersFile { what: &'static str },
    #[error("admin socket {path}: {message}")]
    Socket { path: String, message: String },
}

/// What an operation works on.
pub struct Target<'a> {
    pub store: &'a dyn Store,
    /// None when identity.source is "header" (users come from the proxy in front).
    pub users_file: Option<&'a Path>,
    pub now: UnixTime,
    /// Makes the users file's new contents count at once (the running gateway's watchers);
    /// nothing for the CLI on its own.
    pub users_changed: &'a (dyn Fn() + Sync),
}

/// Carries out `request`; returns the text to show the operator.
pub async fn perform(t: &Target<'_>, request: &Request) -> Result<String, AdminError> {
    match request {
        Request::List => list(t).await,
        Request::Remove { user } => remove(t, user).await,
        Request::ResetFactors { user } => {
            let (had, ended) = reset_factors(t, user).await?;
            if !had && ended == 0 && !in_users_file(t, user)? {
                return Err(AdminError::NoSuchUser { user: user.clone() });
            }
            record(user, "factors_reset");
            Ok(format!("factors of '{user}' removed ({had}); {ended} session(s) ended", had = describe_had(had)))
        }
        Request::Unlock { user } => {
            t.store.reset_counter(&crate::web::login::signin_failures_key(user)).await?;
            t.store.reset_counter(&crate::pipeline::risk::failures_key(user)).await?;
            record(user, "lockouts_cleared");
            Ok(format!("sign-in and step-up lockouts of '{user}' cleared"))
        }
        Request::ReloadUsers => {
            (t.users_changed)();
            Ok("users file re-read".into())
        }
    }
}

fn describe_had(had: bool) -> &'static str {
    if had {
        "TOTP, passkeys and recovery codes"
    } else {
        "none were enrolled"
    }
}

fn in_users_file(t: &Target<'_>, user: &str) -> Result<bool, AdminError> {
    Ok(match t.users_file {
        Some(file) => crate::authn::password::list_users(file)?.iter().any(|u| u == user),
        None => false,
    })
}

async fn list(t: &Target<'_>) -> Result<String, AdminError> {
    let file = t.users_file.ok_or(AdminError::NoUsersFile { what: "list" })?;
    let names = crate::authn::password::list_users(file)?;
    if names.is_empty() {
        return Ok(format!("no users in {} (add one with `stepgate user add NAME`)", file.display()));
    }
    let mut text = format!("{:<24} {:<5} {:<9} recovery codes", "user", "totp", "passkeys");
    for name in names {
        let f = t.store.get_factors(&name).await?;
        let totp = if f.totp.is_some() { "yes" } else { "no" };
        text.push_str(&format!("\n{name:<24} {totp:<5} {:<9} {}", f.webauthn.len(), f.recovery_hashes.len()));
    }
    Ok(text)
}

async fn remove(t: &Target<'_>, user: &str) -> Result<String, AdminError> {
    let file = t.users_file.ok_or(AdminError::NoUsersFile { what: "remove users from" })?;
    let removed = crate::authn::password::remove_user(file, user)?;
    if removed {
        (t.users_changed)();
    }
    let (had, ended) = reset_factors(t, user).await?;
    if !removed && !had && ended == 0 {
        return Err(AdminError::NoSuchUser { user: user.to_string() });
    }
    record(user, "user_removed");
    let from = if removed { format!("removed from {}", file.display()) } else { "was not in the users file".into() };
    Ok(format!("user '{user}' {from}; factors removed ({}); {ended} session(s) ended", describe_had(had)))
}

/// Removes every factor (releasing the passkeys' credential ids) and ends every session of
/// `user`; returns whether anything was enrolled and how many sessions ended.
async fn reset_factors(t: &Target<'_>, user: &str) -> Result<(bool, u64), AdminError> {
    let factors = t.store.get_factors(user).await?;
    let had = factors.has_second_factor() || !factors.recovery_hashes.is_empty();
    if had {
        t.store.put_factors(user, &Default::default()).await?;
        for credential in &factors.webauthn {
            t.store.release_credential(&credential.id).await?;
        }
    }
    // Sessions last: a session that stepped up with a factor just removed ends too.
    let ended = t.store.end_user_sessions(user).await?;
    Ok((had, ended))
}

fn record(user: &str, reason: &'static str) {
    let request_id = format!("admin-{:016x}", rand::random::<u64>());
    audit::emit(&audit::Record {
        workload: None,
        client: None,
        kind: Kind::UserAdmin,
        request_id: &request_id,
        user: Some(user),
        client_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        rule: None,
        decision: "success",
        reason,
        risk: None,
        request: None,
        expired_rule: None,
    });
}
