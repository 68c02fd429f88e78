//! The Redis store, for several gateway instances sharing one state.
//!
//! Records that expire get Redis's own TTL (`SET .. EX`), computed from the gateway clock, and
//! also carry their expiry in the value, so answers follow the `now` a caller passes exactly as
//! the embedded store's do. Take-once operations are single commands or Lua scripts (GETDEL,
//! SREM, scripts in `scripts.rs`), so they are atomic across instances. Every call has a
//! timeout; a failure or a timeout is `StoreError::Unavailable`, which the gateway turns into
//! 503 on protected routes. Sessions and risk histories are cached locally (see `cache.rs`).

mod cache;
mod conn;
mod end_sessions;
mod idp_index;
mod keys;
mod scripts;

use crate::clock::{SharedClock, UnixTime};
use crate::risk::history::RiskHistory;
use crate::session::Session;
use crate::store::config::RedisConfig;
use crate::store::{Factors, Store, StoreError};
use async_trait::async_trait;
use cache::{Cached, LocalCache};
use conn::{Backend, Conn};
use keys::{decode, encode, Expiry, Keys};
use redis::AsyncCommands;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use cache::MAX_AGE as SESSION_CACHE_MAX_AGE;

/// How long after a failed call the store counts as not answering (see [`Store::answering`]),
/// unless a call succeeds first.
const STALL_HOLD: Duration = Duration::from_secs(1);

/// How long a public route waits for its optional identity read (see [`Store::optional_wait`]):
/// a healthy Redis answers in about a millisecond; a hung one does not hold public pages for the
/// whole `store.timeout`.
const OPTIONAL_WAIT: Duration = Duration::from_millis(250);

pub struct RedisStore {
    backend: Arc<Backend>,
    keys: Keys,
    timeout: Duration,
    clock: SharedClock,
    cache: Arc<LocalCache>,
    /// Until when (ms after `opened`) the store counts as not answering: a call failed or timed
    /// out within the last [`STALL_HOLD`] and none has succeeded since.
    stalled_until: AtomicU64,
    opened: std::time::Instant,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("keys", &self.keys).finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn expired(expires_at: u64, now: UnixTime) -> bool {
    expires_at <= now.0
}

impl RedisStore {
    /// Builds the store without connecting (Redis may come up later). Inside a tokio runtime it
    /// also starts the invalidation subscriber that turns the local cache on.
    pub fn open(cfg: &RedisConfig, clock: SharedClock) -> Result<RedisStore, StoreError> {
        let backend = Arc::new(Backend::open(&cfg.target, cfg.timeout).map_err(unavailable)?);
        let keys = Keys::new(&cfg.prefix);
        let cache = Arc::new(LocalCache::default());
        if tokio::runtime::Handle::try_current().is_ok() {
            cache::spawn_subscriber(&cache, backend.clone(), keys.channel(), cfg.timeout);
        }
        Ok(RedisStore {
            backend,
            keys,
            timeout: cfg.timeout,
            clock,
            cache,
            stalled_until: AtomicU64::new(0),
            opened: std::time::Instant::now(),
        })
    }

    /// Whether the local cache is in use (the invalidation subscription is up).
    pub fn cache_is_live(&self) -> bool {
        self.cache.is_live()
    }

    /// Runs one unit of work on a connection, within the timeout. A connection found broken
    /// (Redis restarted while the connection sat idle, say) is retried once, on the fresh
    /// connection the manager opens, inside the same timeout: the first request after an idle
    /// Redis restart is answered, not refused. Retrying is safe in the fail-closed direction:
    /// a take-once operation whose reply was lost finds nothing left the second time.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            match f(self.backend.conn(self.timeout).await?).await {
                Err(e) if conn::broken(&e) => {
                    self.backend.failed(&e);
                    tracing::debug!(error = %e, "redis connection broken; retrying once");
                    f(self.backend.conn(self.timeout).await?).await
                }
                r => r,
            }
        };
        let result = tokio::time::timeout(self.timeout, work).await;
        let until = if matches!(result, Ok(Ok(_))) { 0 } else { self.millis() + STALL_HOLD.as_millis() as u64 };
        self.stalled_until.store(until, Ordering::Relaxed);
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.backend.failed(&e);
                Err(unavailable(e))
            }
            Err(_) => {
                self.backend.failed(&redis::RedisError::from((redis::ErrorKind::Io, "timed out")));
                Err(StoreError::Unavailable(format!("redis: no answer within {:?}", self.timeout)))
            }
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Seconds until `expires_at` by the gateway clock; at least 1 (an expired record is
    /// refused by its stored expiry anyway).
    fn ttl(&self, expires_at: UnixTime) -> u64 {
        expires_at.0.saturating_sub(self.clock.now().0).max(1)
    }

    /// After a write to a cached record (`rkey`, its Redis key): tells every instance to evict
    /// it, this one included.
    async fn publish_invalidation(&self, rkey: String) -> Result<(), StoreError> {
        let (channel, rkey) = (&self.keys.channel(), &rkey);
        let r = self.run(|mut c| async move { c.publish::<_, _, ()>(channel, rkey).await }).await;
        self.cache.invalidate(rkey);
        r
    }

    /// Reads a cached record: from the local cache while it is live, else from Redis. `decode`
    /// turns the stored bytes (None: no such key) into the answer; a `None` answer is not cached.
    async fn read_cached<V: Cached>(
        &self,
        rkey: String,
        decode: impl FnOnce(Option<Vec<u8>>) -> Result<Option<V>, StoreError>,
    ) -> Result<Option<V>, StoreError> {
        if let Some(v) = self.cache.get::<V>(&rkey) {
            return Ok(Some(v));
        }
        let epoch = self.cache.epoch();
        let k = &rkey;
        let raw: Option<Vec<u8>> = self.run(|mut c| async move { c.get(k).await }).await?;
        let value = decode(raw)?;
        if let Some(v) = &value {
            self.cache.fill(&rkey, v, epoch);
        }
        Ok(value)
    }

    /// Writes (or deletes) a cached record with `write`, evicts it here whether or not the write
    /// succeeded (it may have landed), then has the other instances evict it.
    async fn write_cached<F, Fut>(&self, rkey: String, write: F) -> Result<(), StoreError>
    where
        F: Fn(Conn, String) -> Fut,
        Fut: Future<Output = redis::RedisResult<()>>,
    {
        let r = self.run(|c| write(c, rkey.clone())).await;
        self.cache.invalidate(&rkey);
        r?;
        self.publish_invalidation(rkey).await
    }
}

#[async_trait]
impl Store for RedisStore {
    fn answering(&self) -> bool {
        self.millis() >= self.stalled_until.load(Ordering::Relaxed)
    }

    fn optional_wait(&self) -> Option<Duration> {
        Some(OPTIONAL_WAIT.min(self.timeout))
    }

    async fn get_session(&self, key: &str, now: UnixTime) -> Result<Option<Session>, StoreError> {
        let stored = self
            .read_cached::<(UnixTime, Session)>(self.keys.session(key), |raw| {
                let Some(raw) = raw else { return Ok(None) };
                let (expires_at, json) = decode(&raw).ok_or_else(|| corrupt("session", "no expiry"))?;
                let session = serde_json::from_slice(json).map_err(|e| corrupt("session", e))?;
                Ok(Some((UnixTime(expires_at), session)))
            })
            .await?;
        Ok(stored.filter(|(expires_at, _)| !expired(expires_at.0, now)).map(|(_, s)| s))
    }

    async fn put_session(&self, key: &str, session: &Session, expires_at: UnixTime) -> Result<(), StoreError> {
        let json = serde_json::to_vec(session).map_err(|e| corrupt("session", e))?;
        let (value, ttl) = (&encode(expires_at.0, &json), self.ttl(expires_at));
        self.write_cached(self.keys.session(key), |mut c, k| async move { c.set_ex(k, value, ttl).await }).await
    }

    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.write_cached(self.keys.session(key), |mut c, k| async move { c.del(k).await }).await
    }

    async fn end_user_sessions(&self, user: &str) -> Result<u64, StoreError> {
        self.end_sessions_of(user).await
    }

    async fn index_idp_session(&self, index: &str, session_key: &str, expires_at: UnixTime) -> Result<(), StoreError> {
        self.index_idp(index, session_key, expires_at).await
    }

    async fn end_idp_sessions(&self, index: &str) -> Result<u64, StoreError> {
        self.end_idp(index).await
    }

    async fn get_factors(&self, user: &str) -> Result<Factors, StoreError> {
        let (f, r) = (&self.keys.factors(user), &self.keys.recovery(user));
        let (json, left): (Option<Vec<u8>>, HashSet<String>) = self
            .run(|mut c| async move { redis::pipe().atomic().get(f).smembers(r).query_async(&mut c).await })
            .await?;
        let Some(json) = json else { return Ok(Factors::default()) };
        let mut factors: Factors = serde_json::from_slice(&json).map_err(|e| corrupt("factors", e))?;
        // The JSON keeps the order; the SET says which codes are still unused.
        factors.recovery_hashes.retain(|h| left.contains(h));
        Ok(factors)
    }

    async fn put_factors(&self, user: &str, factors: &Factors) -> Result<(), StoreError> {
        let json = serde_json::to_vec(factors).map_err(|e| corrupt("factors", e))?;
        let (f, r) = (self.keys.factors(user), self.keys.recovery(user));
        let mut pipe = redis::pipe();
        pipe.atomic().set(&f, json).ignore().del(&r).ignore();
        if !factors.recovery_hashes.is_empty() {
            pipe.sadd(&r, &factors.recovery_hashes).ignore();
        }
        let pipe = &pipe;
        self.run(|mut c| async move { pipe.query_async::<()>(&mut c).await }).await
    }

    async fn claim_credential(&self, credential_id: &str, user: &str) -> Result<bool, StoreError> {
        let k = &self.keys.credential(credential_id);
        let (set, holder): (bool, Option<String>) =
            self.run(|mut c| async move { redis::pipe().set_nx(k, user).get(k).query_async(&mut c).await }).await?;
        Ok(set || holder.as_deref() == Some(user))
    }

    async fn release_credential(&self, credential_id: &str) -> Result<(), StoreError> {
        let k = &self.keys.credential(credential_id);
        self.run(|mut c| async move { c.del::<_, ()>(k).await }).await
    }

    async fn get_risk_history(&self, user: &str) -> Result<RiskHistory, StoreError> {
        let history = self
            .read_cached(self.keys.risk_history(user), |raw| match raw {
                Some(j) => serde_json::from_slice(&j).map(Some).map_err(|e| corrupt("risk history", e)),
                None => Ok(Some(RiskHistory::default())),
            })
            .await?;
        Ok(history.unwrap_or_default())
    }

    async fn put_risk_history(&self, user: &str, history: &RiskHistory) -> Result<(), StoreError> {
        let json = serde_json::to_vec(history).map_err(|e| corrupt("risk history", e))?;
        let json = &json;
        self.write_cached(self.keys.risk_history(user), |mut c, k| async move { c.set(k, json).await }).await
    }

    async fn take_recovery_code(&self, user: &str, hash: &str) -> Result<bool, StoreError> {
        let r = &self.keys.recovery(user);
        let removed: i64 = self.run(|mut c| async move { c.srem(r, hash).await }).await?;
        Ok(removed == 1)
    }

    async fn put_ephemeral(&self, key: &str, value: &[u8], expires_at: UnixTime) -> Result<(), StoreError> {
        let (rkey, value, ttl) = (&self.keys.ephemeral(key), &encode(expires_at.0, value), self.ttl(expires_at));
        self.run(|mut c| async move { c.set_ex::<_, _, ()>(rkey, value, ttl).await }).await
    }

    async fn take_ephemeral(&self, key: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        let rkey = &self.keys.ephemeral(key);
        let raw: Option<Vec<u8>> = self.run(|mut c| async move { c.get_del(rkey).await }).await?;
        live_value(raw, now)
    }

    async fn get_ephemeral(&self, key: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        let rkey = &self.keys.ephemeral(key);
        let raw: Option<Vec<u8>> = self.run(|mut c| async move { c.get(rkey).await }).await?;
        live_value(raw, now)
    }

    async fn raise_high_water(&self, key: &str, value: u64) -> Result<bool, StoreError> {
        let rkey = &self.keys.high_water(key);
        let raised: i64 = self
            .run(|mut c| async move {
                scripts::RAISE_HIGH_WATER.key(rkey).arg(value.to_string()).invoke_async(&mut c).await
            })
            .await?;
        Ok(raised == 1)
    }

    async fn hit_counter(&self, key: &str, window: Duration, now: UnixTime) -> Result<u64, StoreError> {
        let rkey = &self.keys.counter(key);
        let end = now.plus(window);
        let ttl = self.ttl(end);
        self.run(|mut c| async move {
            scripts::HIT_COUNTER.key(rkey).arg(now.0).arg(end.0).arg(ttl).invoke_async(&mut c).await
        })
        .await
    }

    async fn read_counter(&self, key: &str, now: UnixTime) -> Result<u64, StoreError> {
        let rkey = &self.keys.counter(key);
        let (count, end): (Option<u64>, Option<u64>) = self
            .run(|mut c| async move { redis::cmd("HMGET").arg(rkey).arg("c").arg("e").query_async(&mut c).await })
            .await?;
        Ok(match (count, end) {
            (Some(count), Some(end)) if !expired(end, now) => count,
            _ => 0,
        })
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        let rkey = &self.keys.counter(key);
        self.run(|mut c| async move { c.del::<_, ()>(rkey).await }).await
    }

    /// Redis expires records by itself, so the gateway never schedules this; it exists for the
    /// contract (and an operator's clean-up): SCAN every master for records expired by `now`.
    async fn sweep(&self, now: UnixTime) -> Result<u64, StoreError> {
        let timeout = self.timeout;
        let masters = self.run(|_| async { self.backend.masters(timeout).await }).await?;
        let mut removed = 0;
        for client in masters {
            let conn = tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
                .await
                .map_err(|_| StoreError::Unavailable("redis: connect timed out".into()))?
                .map_err(unavailable)?;
            for (pattern, expiry) in self.keys.expiring() {
                removed += self.sweep_pattern(conn.clone(), &pattern, expiry, now).await?;
            }
        }
        Ok(removed)
    }
}

impl RedisStore {
    async fn sweep_pattern(
        &self,
        mut conn: redis::aio::MultiplexedConnection,
        pattern: &str,
        expiry: Expiry,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let (mut cursor, mut removed) = (0u64, 0u64);
        let session_prefix = self.keys.session("");
        let session_prefix = session_prefix.trim_end_matches('}').to_string();
        loop {
            let mut step = redis::cmd("SCAN");
            step.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
            let (next, keys): (u64, Vec<String>) = tokio::time::timeout(self.timeout, step.query_async(&mut conn))
                .await
                .map_err(|_| StoreError::Unavailable("redis: SCAN timed out".into()))?
                .map_err(unavailable)?;
            for key in keys {
                let mut invocation = scripts::SWEEP_ONE.key(&key);
                invocation.arg(now.0).arg(expiry.as_str());
                let script = invocation.invoke_async(&mut conn);
                let deleted: i64 = tokio::time::timeout(self.timeout, script)
                    .await
                    .map_err(|_| StoreError::Unavailable("redis: sweep timed out".into()))?
                    .map_err(unavailable)?;
                if deleted == 1 {
                    removed += 1;
                    if key.starts_with(&session_prefix) {
                        self.publish_invalidation(key).await?;
                    }
                }
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

fn live_value(raw: Option<Vec<u8>>, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(raw) = raw else { return Ok(None) };
    let (expires_at, value) = decode(&raw).ok_or_else(|| corrupt("ephemeral", "no expiry"))?;
    Ok((!expired(expires_at, now)).then(|| value.to_vec()))
}

#[cfg(test)]
mod sentinel_tests;
#[cfg(test)]
mod tests;
