//! Errors of the authentication modules. None of them carries a password, code or secret.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    #[error("cannot read users file {path}: {source}")]
    ReadUsersFile { path: PathBuf, source: std::io::Error },
    #[error("users file {path} is not valid TOML: {message}")]
    ParseUsersFile { path: PathBuf, message: String },
    #[error("users file {path}: entry for user {user:?}: {reason}")]
    BadUserEntry { path: PathBuf, user: String, reason: String },
    #[error("cannot write users file {path}: {source}")]
    WriteUsersFile { path: PathBuf, source: std::io::Error },
    #[error("invalid user name {0:?}: use 1 to 64 characters of A-Z a-z 0-9 . _ @ -")]
    InvalidUserName(String),
    #[error("password too short: at least {min} characters are required")]
    PasswordTooShort { min: usize },
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("cannot render QR code: {0}")]
    Qr(String),
}
