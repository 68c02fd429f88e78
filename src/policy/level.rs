//! Assurance levels and the methods that prove them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How strongly the user behind a session has been proven, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Anyone, signed in or not.
    None,
    /// Signed in (password or trusted header).
    Aal1,
    /// A second factor: TOTP, a recovery code, or WebAuthn without user verification.
    Aal2,
    /// WebAuthn with user verification.
    Aal3,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Aal1 => "aal1",
            Level::Aal2 => "aal2",
            Level::Aal3 => "aal3",
        }
    }
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "none" => Some(Level::None),
            "aal1" => Some(Level::Aal1),
            "aal2" => Some(Level::Aal2),
            "aal3" => Some(Level::Aal3),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a proof was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// Built-in sign-in with a password.
    Password,
    /// Identity asserted by a trusted proxy header.
    Header,
    /// A TOTP code.
    Totp,
    /// A single-use recovery code.
    Recovery,
    /// A WebAuthn assertion (passkey or security key).
    Webauthn,
    /// The organisation's identity provider (OpenID Connect): its level comes from the
    /// `acr`/`amr` the ID token carried back (`authn::assurance`).
    Idp,
    /// A bearer access token (API clients): its level comes from the token's `acr`/`amr`.
    Bearer,
    /// A client certificate (workload identity, SPIFFE X.509-SVID or subject).
    Certificate,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Header => "header",
            AuthMethod::Totp => "totp",
            AuthMethod::Recovery => "recovery",
            AuthMethod::Webauthn => "webauthn",
            AuthMethod::Idp => "idp",
            AuthMethod::Bearer => "bearer",
            AuthMethod::Certificate => "certificate",
        }
    }
    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "password" => Some(AuthMethod::Password),
            "header" => Some(AuthMethod::Header),
            "totp" => Some(AuthMethod::Totp),
            "recovery" => Some(AuthMethod::Recovery),
            "webauthn" => Some(AuthMethod::Webauthn),
            "idp" => Some(AuthMethod::Idp),
            "bearer" => Some(AuthMethod::Bearer),
            "certificate" => Some(AuthMethod::Certificate),
            _ => None,
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One proof recorded on a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub level: Level,
    pub method: AuthMethod,
    pub auth_time: crate::clock::UnixTime,
}
