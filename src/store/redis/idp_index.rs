//! The index of sessions by identity-provider session (`sid`) or subject, for back-channel
//! logout: a SET of session keys per index, with Redis's TTL. Ending an index takes the set
//! and deletes it atomically (one key, one slot), then deletes each session and publishes its
//! invalidation, so every instance drops its cached copy before its next request.

use super::{scripts, RedisStore};
use crate::clock::UnixTime;
use crate::store::StoreError;
use redis::AsyncCommands;

impl RedisStore {
    pub(super) async fn index_idp(
        &self,
        index: &str,
        session_key: &str,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let (ikey, ttl) = (&self.keys.idp_sessions(index), self.ttl(expires_at));
        let _added: i64 = self
            .run(|mut c| async move {
                scripts::INDEX_IDP_SESSION.key(ikey).arg(session_key).arg(ttl).invoke_async(&mut c).await
            })
            .await?;
        Ok(())
    }

    pub(super) async fn end_idp(&self, index: &str) -> Result<u64, StoreError> {
        let ikey = &self.keys.idp_sessions(index);
        let (members, _): (Vec<String>, i64) = self
            .run(|mut c| async move { redis::pipe().atomic().smembers(ikey).del(ikey).query_async(&mut c).await })
            .await?;
        let mut ended = 0;
        for key in members {
            let rkey = self.keys.session(&key);
            let k = &rkey;
            let deleted: i64 = self.run(|mut c| async move { c.del(k).await }).await?;
            ended += u64::from(deleted == 1);
            self.publish_invalidation(rkey).await?;
        }
        Ok(ended)
    }
}
