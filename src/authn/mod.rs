//! Authentication factors: passwords, TOTP, recovery codes, and the sealing of their secrets.

pub mod assurance;
pub mod error;
pub mod password;
pub mod recovery;
pub mod totp;
pub mod users_watch;

pub use error::AuthnError;
pub mod webauthn;
pub mod webauthn_config;
