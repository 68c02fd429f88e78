//! The users file as the running gateway sees it: re-read when it changes, so a user added (or
//! removed) with `stepgate user` counts without a restart or SIGHUP.
//!
//! A sign-in asks for the current users; at most every [`CHECK_EVERY`] that looks at the file's
//! size, modification time and inode (an atomic replace changes the inode), and re-reads it
//! when they changed. The admin socket asks for a re-read at once ([`UsersWatch::refresh`]).
//! A file that has become unreadable or broken is logged and the last good copy stays.

use super::password::UsersFile;
use super::AuthnError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often a sign-in may look at the file's metadata.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// What tells one version of the file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp { len: meta.len(), modified: meta.modified().ok(), inode })
}

struct Seen {
    /// None: the file does not exist (nobody can sign in).
    users: Option<Arc<UsersFile>>,
    stamp: Option<Stamp>,
    checked: Instant,
}

pub struct UsersWatch {
    path: PathBuf,
    seen: RwLock<Seen>,
}

impl std::fmt::Debug for UsersWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsersWatch").field("path", &self.path).finish_non_exhaustive()
    }
}

impl UsersWatch {
    /// Loads the file now: a missing file is no users (with a warning), a broken one an error.
    pub fn open(path: &Path) -> Result<UsersWatch, AuthnError> {
        let stamp = stamp(path);
        let users = if path.exists() {
            Some(Arc::new(UsersFile::load(path)?))
        } else {
            tracing::warn!(file = %path.display(), "users file does not exist yet: nobody can sign in; add users with `stepgate user add NAME`");
            None
        };
        Ok(UsersWatch { path: path.to_path_buf(), seen: RwLock::new(Seen { users, stamp, checked: Instant::now() }) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The users as of the file's latest version (looked at most every `CHECK_EVERY`).
    pub fn current(&self) -> Option<Arc<UsersFile>> {
        let due = {
            let seen = self.seen.read().unwrap_or_else(|p| p.into_inner());
            if seen.checked.elapsed() < CHECK_EVERY {
                return seen.users.clone();
            }
            true
        };
        if due {
            self.check(false);
        }
        self.seen.read().unwrap_or_else(|p| p.into_inner()).users.clone()
    }

    /// Looks at the file now and re-reads it if it changed (the admin socket's `reload-users`).
    pub fn refresh(&self) {
        self.check(true);
    }

    fn check(&self, forced: bool) {
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        if !forced && seen.checked.elapsed() < CHECK_EVERY {
            return; // another request looked meanwhile
        }
        seen.checked = Instant::now();
        let now = stamp(&self.path);
        if now == seen.stamp {
            return;
        }
        match now {
            None => {
                tracing::warn!(file = %self.path.display(), "users file is gone: nobody can sign in");
                seen.users = None;
                seen.stamp = None;
            }
            Some(_) => match UsersFile::load(&self.path) {
                Ok(users) => {
                    tracing::info!(file = %self.path.display(), users = users.len(), "users file re-read");
                    seen.users = Some(Arc::new(users));
                    seen.stamp = now;
                }
                // The stamp is not taken: the next look tries again (the writer may be mid-way).
                Err(e) => tracing::error!(error = %e, "users file changed but is refused; keeping the last good copy"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::password::add_user;

    #[test]
    fn a_user_added_or_removed_counts_after_a_refresh_and_a_broken_file_keeps_the_last_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let watch = UsersWatch::open(&path).unwrap();
        assert!(watch.current().is_none(), "no file, no users");
        add_user(&path, "alice", "alice-password").unwrap();
        watch.refresh();
        let refreshed = std::time::Instant::now();
        assert!(watch.current().unwrap().verify("alice", "alice-password"));
        add_user(&path, "bob", "bob-password").unwrap();
        let current = watch.current().unwrap();
        // Hashing bob's password can take longer than CHECK_EVERY on a loaded machine; the
        // file is then rightly looked at again, and there is nothing to check.
        if refreshed.elapsed() < CHECK_EVERY {
            assert!(!current.contains("bob"), "not looked at again within CHECK_EVERY");
        }
        watch.refresh();
        assert!(watch.current().unwrap().contains("bob"));
        std::fs::write(&path, "[users\n").unwrap();
        watch.refresh();
        assert!(watch.current().unwrap().contains("bob"), "a broken file keeps the last good copy");
        std::fs::remove_file(&path).unwrap();
        watch.refresh();
        assert!(watch.current().is_none(), "a deleted file: nobody");
    }

    #[test]
    fn a_sign_in_sees_a_changed_file_once_check_every_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        add_user(&path, "alice", "alice-password").unwrap();
        let watch = UsersWatch::open(&path).unwrap();
        add_user(&path, "bob", "bob-password").unwrap();
        std::thread::sleep(CHECK_EVERY + Duration::from_millis(100));
        assert!(watch.current().unwrap().verify("bob", "bob-password"), "re-read without a refresh");
    }
}
