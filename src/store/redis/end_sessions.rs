//! Ending every session of one user: an administrator's operation. Sessions are keyed by a
//! hash of their id, not by user, so this SCANs the session keys of every master once (rare;
//! no request pays for a per-user index), deletes the user's, and publishes an invalidation
//! for each, so every instance drops its cached copy before its next request.

use super::keys::decode;
use super::{unavailable, RedisStore};
use crate::session::Session;
use crate::store::StoreError;
use redis::aio::MultiplexedConnection;

/// The user a stored session value belongs to; a value that does not parse belongs to nobody.
fn owner(raw: &[u8]) -> Option<String> {
    let (_, json) = decode(raw)?;
    serde_json::from_slice::<Session>(json).ok().map(|s| s.user)
}

impl RedisStore {
    pub(super) async fn end_sessions_of(&self, user: &str) -> Result<u64, StoreError> {
        let timeout = self.timeout;
        let masters = self.run(|_| async { self.backend.masters(timeout).await }).await?;
        let mut ended = 0;
        for client in masters {
            let conn = tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
                .await
                .map_err(|_| StoreError::Unavailable("redis: connect timed out".into()))?
                .map_err(unavailable)?;
            ended += self.end_on(conn, user).await?;
        }
        Ok(ended)
    }

    async fn end_on(&self, mut conn: MultiplexedConnection, user: &str) -> Result<u64, StoreError> {
        let pattern = format!("{}*", self.keys.session("").trim_end_matches("{}"));
        let (mut cursor, mut ended) = (0u64, 0u64);
        loop {
            let mut step = redis::cmd("SCAN");
            step.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
            let (next, keys): (u64, Vec<String>) = self.within(step.query_async(&mut conn)).await?;
            for key in keys {
                let raw: Option<Vec<u8>> = self.within(redis::cmd("GET").arg(&key).query_async(&mut conn)).await?;
                if raw.as_deref().and_then(owner).as_deref() != Some(user) {
                    continue;
                }
                // A session never changes hands (a sign-in makes a new one), so a record
                // rewritten since the GET is still this user's: delete it whatever it holds now.
                let deleted: i64 = self.within(redis::cmd("DEL").arg(&key).query_async(&mut conn)).await?;
                ended += u64::from(deleted == 1);
                self.publish_invalidation(key).await?;
            }
            if next == 0 {
                return Ok(ended);
            }
            cursor = next;
        }
    }

    async fn within<T>(&self, call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::Unavailable(format!("redis: no answer within {:?}", self.timeout)))?
            .map_err(unavailable)
    }
}
