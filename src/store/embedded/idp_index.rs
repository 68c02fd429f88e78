//! The index of sessions by identity-provider session (`sid`) or subject, for back-channel
//! logout: index -> (expires_at, the session keys, one per line). Ending an index deletes its
//! sessions and itself in one transaction.

use super::{err, expired, EmbeddedStore, IDP_SESSIONS, SESSIONS};
use crate::clock::UnixTime;
use crate::store::StoreError;
use redb::ReadableTable;

/// The most session keys one index keeps (each step-up files a new key under the same IdP
/// session); past it the oldest go. Their sessions were replaced by the newer ones anyway.
const MAX_KEYS: usize = 256;

impl EmbeddedStore {
    pub(super) async fn index_idp(
        &self,
        index: &str,
        session_key: &str,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let (index, key) = (index.to_string(), session_key.to_string());
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(IDP_SESSIONS).map_err(err)?;
                let (mut until, mut keys) = match table.get(index.as_str()).map_err(err)? {
                    Some(g) => {
                        let (until, text) = g.value();
                        (until, String::from_utf8_lossy(text).lines().map(str::to_string).collect::<Vec<_>>())
                    }
                    None => (0, Vec::new()),
                };
                if !keys.contains(&key) {
                    keys.push(key);
                }
                if keys.len() > MAX_KEYS {
                    keys.drain(..keys.len() - MAX_KEYS);
                }
                until = until.max(expires_at.0);
                let text = keys.join("\n");
                table.insert(index.as_str(), (until, text.as_bytes())).map_err(err)?;
            }
            txn.commit().map_err(err)
        })
        .await
    }

    pub(super) async fn end_idp(&self, index: &str) -> Result<u64, StoreError> {
        let index = index.to_string();
        let keys: Vec<String> = self
            .write(move |db| {
                let txn = db.begin_write().map_err(err)?;
                let mut ended = Vec::new();
                {
                    let mut table = txn.open_table(IDP_SESSIONS).map_err(err)?;
                    let removed = table.remove(index.as_str()).map_err(err)?;
                    let keys: Vec<String> = removed
                        .map(|g| String::from_utf8_lossy(g.value().1).lines().map(str::to_string).collect())
                        .unwrap_or_default();
                    drop(table);
                    let mut sessions = txn.open_table(SESSIONS).map_err(err)?;
                    for key in keys {
                        if sessions.remove(key.as_str()).map_err(err)?.is_some() {
                            ended.push(key);
                        }
                    }
                }
                txn.commit().map_err(err)?;
                Ok(ended)
            })
            .await?;
        // After the commit: the cached copies go, and a read that began before it is not cached.
        for key in &keys {
            self.sessions.remove(key);
        }
        Ok(keys.len() as u64)
    }
}

/// Removes the indexes expired at `now` (part of the store's sweep); returns how many.
pub(super) fn sweep(txn: &redb::WriteTransaction, now: UnixTime) -> Result<u64, super::Fault> {
    let mut table = txn.open_table(IDP_SESSIONS).map_err(err)?;
    let mut removed = 0;
    for entry in table.extract_if(|_, (until, _)| expired(until, now)).map_err(err)? {
        entry.map_err(err)?;
        removed += 1;
    }
    Ok(removed)
}
