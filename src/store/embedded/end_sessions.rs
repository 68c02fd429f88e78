//! Ending every session of one user: an administrator's operation (`stepgate user remove`,
//! `reset-factors`). Sessions are keyed by a hash of their id, not by user, so this scans the
//! sessions table once; it is rare, and no request pays for a per-user index.

use super::{err, EmbeddedStore, SessionCache, SESSIONS};
use crate::session::Session;
use crate::store::StoreError;

impl SessionCache {
    /// Drops the cached sessions of `user` and counts a write, so that a file read that began
    /// before this cannot put one back.
    fn forget_user(&self, user: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        map.retain(|_, (_, s)| s.user != user);
    }
}

/// The user a stored session belongs to; a record that does not parse belongs to nobody.
fn owner(json: &[u8]) -> Option<String> {
    serde_json::from_slice::<Session>(json).ok().map(|s| s.user)
}

impl EmbeddedStore {
    pub(super) async fn end_sessions_of(&self, user: &str) -> Result<u64, StoreError> {
        self.sessions.forget_user(user);
        let who = user.to_string();
        let removed = self
            .write(move |db| {
                let txn = db.begin_write().map_err(err)?;
                let mut removed = 0u64;
                {
                    let mut table = txn.open_table(SESSIONS).map_err(err)?;
                    let mine = |_: &str, (_, json): (u64, &[u8])| owner(json).as_deref() == Some(who.as_str());
                    for entry in table.extract_if(mine).map_err(err)? {
                        entry.map_err(err)?;
                        removed += 1;
                    }
                }
                txn.commit().map_err(err)?;
                Ok(removed)
            })
            .await?;
        // Again after the commit: a read that began before it is not cached.
        self.sessions.forget_user(user);
        Ok(removed)
    }
}
