//! Passwords: argon2id hashes in a TOML users file.
//!
//! ```toml
//! [users]
//! alice = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! ```

use crate::authn::AuthnError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MIN_PASSWORD_CHARS: usize = 8;
const MAX_USER_CHARS: usize = 64;

/// A hash of a random password nobody knows, with the same parameters as `hash_password`, so that
/// checking an unknown user costs what checking a known one does.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$x2F4zh2wJq08UWgDhzlc7w$RBIhq2mztpUMjLIj1g09Qj7xG7iIyzteDU1auJB73xg";

/// An argon2id hash (default parameters, random salt) in PHC string format.
pub fn hash_password(password: &str) -> Result<String, AuthnError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthnError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC-format argon2 `hash`; false for a malformed hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Whether `name` is acceptable as a user name: 1 to 64 characters of `[A-Za-z0-9._@-]`.
pub fn valid_user_name(name: &str) -> bool {
    (1..=MAX_USER_CHARS).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsersFile {
    #[serde(default)]
    users: BTreeMap<String, String>,
    /// `[groups] alice = ["finance"]`: what rules' `groups` conditions see.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    groups: BTreeMap<String, Vec<String>>,
}

/// The loaded users file: user name to argon2 hash, and users' groups.
pub struct UsersFile {
    users: BTreeMap<String, String>,
    groups: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for UsersFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsersFile").field("users", &self.users.len()).finish_non_exhaustive()
    }
}

fn parse_users(path: &Path, text: &str) -> Result<RawUsersFile, AuthnError> {
    let raw: RawUsersFile = toml::from_str(text)
        .map_err(|e| AuthnError::ParseUsersFile { path: path.to_path_buf(), message: e.message().to_string() })?;
    for (user, hash) in &raw.users {
        let bad = |reason: &str| AuthnError::BadUserEntry {
            path: path.to_path_buf(),
            user: user.clone(),
            reason: reason.to_string(),
        };
        if !valid_user_name(user) {
            return Err(bad("invalid user name (use 1 to 64 characters of A-Z a-z 0-9 . _ @ -)"));
        }
        let parsed = PasswordHash::new(hash).map_err(|e| bad(&format!("not a PHC password hash ({e})")))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(bad(&format!(
                "hash algorithm is {}, expected argon2id (make one with `stepgate useradd`)",
                parsed.algorithm
            )));
        }
        if argon2::Params::try_from(&parsed).is_err() || parsed.hash.is_none() {
            return Err(bad("argon2id hash has invalid parameters"));
        }
    }
    Ok(raw)
}

impl UsersFile {
    pub fn load(path: &Path) -> Result<UsersFile, AuthnError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| AuthnError::ReadUsersFile { path: path.to_path_buf(), source })?;
        let raw = parse_users(path, &text)?;
        Ok(UsersFile { users: raw.users, groups: raw.groups })
    }

    /// The groups the users file gives `user` (`[groups]`).
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.groups.get(user).cloned().unwrap_or_default()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is `user`'s. An unknown user costs one argon2 verification too, against
    /// a dummy hash, so the time taken does not tell which users exist.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => verify_password(hash, password),
            None => {
                let _ = verify_password(DUMMY_HASH, password);
                false
            }
        }
    }
}

/// Adds `name` with `password` to the users file at `path`, or changes their password; creates
/// the file if missing. Other users are kept. The file is replaced atomically, with mode 0600.
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<(), AuthnError> {
    if !valid_user_name(name) {
        return Err(AuthnError::InvalidUserName(name.to_string()));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthnError::PasswordTooShort { min: MIN_PASSWORD_CHARS });
    }
    let mut raw = match std::fs::read_to_string(path) {
        Ok(text) => parse_users(path, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RawUsersFile::default(),
        Err(source) => return Err(AuthnError::ReadUsersFile { path: path.to_path_buf(), source }),
    };
    raw.users.insert(name.to_string(), hash_password(password)?);
    let text = toml::to_string(&raw).map_err(|e| AuthnError::Hash(e.to_string()))?;
    write_atomically(path, text.as_bytes())
        .map_err(|source| AuthnError::WriteUsersFile { path: path.to_path_buf(), source })
}

/// Removes `name` from the users file at `path`; false if they were not in it (then the file is
/// left as it was). Other users are kept; the file is replaced atomically, with mode 0600.
pub fn remove_user(path: &Path, name: &str) -> Result<bool, AuthnError> {
    let mut raw = match std::fs::read_to_string(path) {
        Ok(text) => parse_users(path, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(AuthnError::ReadUsersFile { path: path.to_path_buf(), source }),
    };
    if raw.users.remove(name).is_none() {
        return Ok(false);
    }
    let text = toml::to_string(&raw).map_err(|e| AuthnError::Hash(e.to_string()))?;
    write_atomically(path, text.as_bytes())
        .map_err(|source| AuthnError::WriteUsersFile { path: path.to_path_buf(), source })?;
    Ok(true)
}

/// The user names in the users file at `path`, sorted; none when the file does not exist.
pub fn list_users(path: &Path) -> Result<Vec<String>, AuthnError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_users(path, &text)?.users.into_keys().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(AuthnError::ReadUsersFile { path: path.to_path_buf(), source }),
    }
}

fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    // NamedTempFile is created with mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new().prefix(".users.").suffix(".tmp").tempfile_in(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsE"));
        assert!(!verify_password(&h, ""));
        assert!(!verify_password("not a hash", "correct horse"));
        assert!(!verify_password("", ""));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn dummy_hash_has_the_real_parameters() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let real_s = hash_password("whatever1").unwrap();
        let real = PasswordHash::new(&real_s).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        assert!(!verify_password(DUMMY_HASH, ""));
    }

    #[test]
    fn user_names() {
        for ok in ["a", "alice", "a.b_c@d-e", "A9", &"x".repeat(64)] {
            assert!(valid_user_name(ok), "{ok}");
        }
        for bad in ["", "al ice", "al:ice", "é", "a/b", "a\n", &"x".repeat(65)] {
            assert!(!valid_user_name(bad), "{bad}");
        }
    }

    #[test]
    fn add_load_verify_preserving_other_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("users.toml");
        add_user(&path, "alice", "alice-password").unwrap();
        add_user(&path, "bob", "bob-password").unwrap();
        let users = UsersFile::load(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.verify("alice", "alice-password"));
        assert!(users.verify("bob", "bob-password"));
        assert!(!users.verify("alice", "bob-password"));
        assert!(!users.verify("carol", "alice-password"));
        assert!(!format!("{users:?}").contains("argon2"), "Debug shows no hashes");

        // changing alice's password keeps bob
        add_user(&path, "alice", "new-alice-password").unwrap();
        let users = UsersFile::load(&path).unwrap();
        assert!(!users.verify("alice", "alice-password"));
        assert!(users.verify("alice", "new-alice-password"));
        assert!(users.verify("bob", "bob-password"));

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("[users]"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // no temp files left behind
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("users.toml")]);
    }

    #[test]
    fn remove_user_keeps_the_others_and_list_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        assert_eq!(list_users(&path).unwrap(), Vec::<String>::new());
        assert!(!remove_user(&path, "alice").unwrap(), "no file: nobody to remove");
        add_user(&path, "bob", "bob-password").unwrap();
        add_user(&path, "alice", "alice-password").unwrap();
        assert_eq!(list_users(&path).unwrap(), ["alice", "bob"]);
        assert!(remove_user(&path, "alice").unwrap());
        assert!(!remove_user(&path, "alice").unwrap());
        assert_eq!(list_users(&path).unwrap(), ["bob"]);
        assert!(UsersFile::load(&path).unwrap().verify("bob", "bob-password"));
    }

    #[test]
    fn add_user_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        assert!(matches!(add_user(&path, "bad name", "long enough"), Err(AuthnError::InvalidUserName(_))));
        assert!(matches!(add_user(&path, "alice", "short"), Err(AuthnError::PasswordTooShort { min: 8 })));
        assert!(!path.exists());
        // a broken file is not overwritten
        std::fs::write(&path, "[users\n").unwrap();
        assert!(matches!(add_user(&path, "alice", "long enough"), Err(AuthnError::ParseUsersFile { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[users\n");
    }

    #[test]
    fn load_errors_name_the_file_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let err = UsersFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("users.toml"), "{err}");

        std::fs::write(&path, "[users]\nalice = \n").unwrap();
        let err = UsersFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("users.toml") && err.contains("not valid TOML"), "{err}");

        std::fs::write(&path, "[users]\nalice = \"plaintext!\"\n").unwrap();
        let err = UsersFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("users.toml") && err.contains("\"alice\""), "{err}");
        assert!(!err.contains("plaintext!"), "the bad value is not echoed: {err}");

        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
        std::fs::write(&path, format!("[users]\nbob = \"{argon2i}\"\n")).unwrap();
        let err = UsersFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("\"bob\"") && err.contains("argon2id"), "{err}");

        std::fs::write(&path, "[users]\n\"bad user\" = \"x\"\n").unwrap();
        let err = UsersFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("bad user") && err.contains("invalid user name"), "{err}");

        std::fs::write(&path, "[userz]\n").unwrap();
        assert!(UsersFile::load(&path).is_err());

        std::fs::write(&path, "").unwrap();
        assert!(UsersFile::load(&path).unwrap().is_empty());
    }
}
