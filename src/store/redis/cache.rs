//! A small local cache of the records read on every protected request (sessions, and the
//! users' risk histories when risk scoring is on), so a forwarded request does not pay a Redis
//! round trip every time, kept correct by pub/sub invalidation:
//!
//! - every write or delete of a cached record publishes its Redis key on `PREFIX:inval`, and
//!   every instance evicts that key when the message arrives;
//! - the cache is used only while the subscription is up: when it is lost, the cache is
//!   cleared and bypassed until the instance has subscribed again (messages sent meanwhile are
//!   lost, so nothing cached before may be trusted);
//! - an entry lives at most `MAX_AGE` (1 s) in any case, which bounds staleness even if a
//!   message is lost without the connection noticing (a half-open TCP connection);
//! - a read that raced with an invalidation does not fill the cache (epoch check);
//! - at most `MAX_ENTRIES` records of each kind are kept.

use super::conn::Backend;
use crate::clock::UnixTime;
use crate::risk::history::RiskHistory;
use crate::session::Session;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub const MAX_AGE: Duration = Duration::from_secs(1);
pub const MAX_ENTRIES: usize = 10_000;

struct Entry<V> {
    value: V,
    stored: Instant,
}

/// Records of one kind, by Redis key.
pub struct Cache<V> {
    map: Mutex<HashMap<String, Entry<V>>>,
}

impl<V: Clone> Cache<V> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<V>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &str) -> Option<V> {
        let map = self.map();
        map.get(key).filter(|e| e.stored.elapsed() < MAX_AGE).map(|e| e.value.clone())
    }

    fn insert(map: &mut HashMap<String, Entry<V>>, key: &str, value: V) {
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.stored.elapsed() < MAX_AGE);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key.to_string(), Entry { value, stored: Instant::now() });
    }
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Cache { map: Mutex::new(HashMap::new()) }
    }
}

/// The cached kinds, switched on and off together with the subscription.
#[derive(Default)]
pub struct LocalCache {
    /// Sessions with their stored expiry.
    sessions: Cache<(UnixTime, Session)>,
    histories: Cache<RiskHistory>,
    /// Bumped by every invalidation: a read that began before it must not fill the cache.
    epoch: AtomicU64,
    /// Whether the invalidation subscription is up.
    live: AtomicBool,
}

/// Where a record of one kind lives in the `LocalCache`.
pub trait Cached: Clone + Sized {
    fn cache(c: &LocalCache) -> &Cache<Self>;
}

impl Cached for (UnixTime, Session) {
    fn cache(c: &LocalCache) -> &Cache<Self> {
        &c.sessions
    }
}

impl Cached for RiskHistory {
    fn cache(c: &LocalCache) -> &Cache<Self> {
        &c.histories
    }
}

impl LocalCache {
    pub fn get<V: Cached>(&self, redis_key: &str) -> Option<V> {
        if !self.live.load(Ordering::SeqCst) {
            return None;
        }
        V::cache(self).get(redis_key)
    }

    /// Call before reading Redis; pass the result to `fill`.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub fn fill<V: Cached>(&self, redis_key: &str, value: &V, epoch: u64) {
        if !self.live.load(Ordering::SeqCst) {
            return;
        }
        let mut map = V::cache(self).map();
        // Checked under the lock: `invalidate` bumps the epoch before it takes the lock.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        Cache::insert(&mut map, redis_key, value.clone());
    }

    pub fn invalidate(&self, redis_key: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.sessions.map().remove(redis_key);
        self.histories.map().remove(redis_key);
    }

    fn set_live(&self, live: bool) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.live.store(live, Ordering::SeqCst);
        self.sessions.map().clear();
        self.histories.map().clear();
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }
}

/// Keeps the invalidation subscription up for as long as the store lives.
pub fn spawn_subscriber(cache: &Arc<LocalCache>, backend: Arc<Backend>, channel: String, timeout: Duration) {
    let weak: Weak<LocalCache> = Arc::downgrade(cache);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            if weak.strong_count() == 0 {
                return;
            }
            match subscribe(&backend, &channel, timeout).await {
                Ok(pubsub) => {
                    backoff = Duration::from_millis(50);
                    let Some(cache) = weak.upgrade() else { return };
                    cache.set_live(true);
                    tracing::debug!("local cache on: subscribed to invalidations");
                    drop(cache);
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Some(cache) = weak.upgrade() else { return };
                        if let Ok(key) = msg.get_payload::<String>() {
                            cache.invalidate(&key);
                        }
                    }
                    if let Some(cache) = weak.upgrade() {
                        cache.set_live(false);
                    }
                    tracing::warn!("lost the Redis invalidation subscription; local cache off until it is back");
                }
                Err(e) => tracing::debug!(error = %e, "cannot subscribe to Redis invalidations yet"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    });
}

async fn subscribe(backend: &Backend, channel: &str, timeout: Duration) -> redis::RedisResult<redis::aio::PubSub> {
    let work = async {
        let client = backend.pubsub_client(timeout).await?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "subscribe timed out"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::level::{AuthMethod, Level, Proof};

    fn s() -> Session {
        Session::new("alice", Proof { method: AuthMethod::Password, level: Level::Aal1, auth_time: UnixTime(1) })
    }

    #[test]
    fn used_only_while_live_and_never_filled_by_a_raced_read() {
        let c = LocalCache::default();
        let session = (UnixTime(9), s());
        c.fill("sg:s:{k}", &session, c.epoch());
        assert!(c.get::<(UnixTime, Session)>("sg:s:{k}").is_none(), "not live: bypassed");
        c.set_live(true);
        c.fill("sg:s:{k}", &session, c.epoch());
        assert_eq!(c.get::<(UnixTime, Session)>("sg:s:{k}").map(|(e, _)| e), Some(UnixTime(9)));
        let before = c.epoch();
        c.invalidate("sg:s:{k}");
        c.fill("sg:s:{k}", &session, before);
        assert!(c.get::<(UnixTime, Session)>("sg:s:{k}").is_none(), "a read older than the invalidation is not cached");
        c.fill("sg:s:{k}", &session, c.epoch());
        c.set_live(false);
        assert!(c.get::<(UnixTime, Session)>("sg:s:{k}").is_none());
    }

    #[test]
    fn risk_histories_are_cached_apart_and_evicted_by_their_key() {
        let c = LocalCache::default();
        c.set_live(true);
        let mut h = RiskHistory::default();
        h.countries.push("GB".into());
        c.fill("sg:{u:ann}:h", &h, c.epoch());
        assert_eq!(c.get::<RiskHistory>("sg:{u:ann}:h").map(|h| h.countries), Some(vec!["GB".to_string()]));
        assert!(c.get::<(UnixTime, Session)>("sg:{u:ann}:h").is_none(), "kinds do not mix");
        c.invalidate("sg:{u:ann}:h");
        assert!(c.get::<RiskHistory>("sg:{u:ann}:h").is_none());
    }
}
