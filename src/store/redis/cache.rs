//! A small local cache of sessions, so a forwarded request does not pay a Redis round trip
//! every time, kept correct by pub/sub invalidation:
//!
//! - every `put_session`/`delete_session` publishes the session key on `PREFIX:inval`, and every
//!   instance evicts that key when the message arrives;
//! - the cache is used only while the subscription is up: when it is lost, the cache is
//!   cleared and bypassed until the instance has subscribed again (messages sent meanwhile are
//!   lost, so nothing cached before may be trusted);
//! - an entry lives at most `MAX_AGE` (1 s) in any case, which bounds staleness even if a
//!   message is lost without the connection noticing (a half-open TCP connection);
//! - a read that raced with an invalidation does not fill the cache (epoch check);
//! - at most `MAX_ENTRIES` sessions are kept.

use super::conn::Backend;
use crate::clock::UnixTime;
use crate::session::Session;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub const MAX_AGE: Duration = Duration::from_secs(1);
pub const MAX_ENTRIES: usize = 10_000;

struct Entry {
    expires_at: UnixTime,
    session: Session,
    stored: Instant,
}

#[derive(Default)]
pub struct SessionCache {
    map: Mutex<HashMap<String, Entry>>,
    /// Bumped by every invalidation: a read that began before it must not fill the cache.
    epoch: AtomicU64,
    /// Whether the invalidation subscription is up.
    live: AtomicBool,
}

impl SessionCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<(UnixTime, Session)> {
        if !self.live.load(Ordering::SeqCst) {
            return None;
        }
        let map = self.map();
        let e = map.get(key).filter(|e| e.stored.elapsed() < MAX_AGE)?;
        Some((e.expires_at, e.session.clone()))
    }

    /// Call before reading Redis; pass the result to `fill`.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub fn fill(&self, key: &str, expires_at: UnixTime, session: &Session, epoch: u64) {
        if !self.live.load(Ordering::SeqCst) {
            return;
        }
        let mut map = self.map();
        // Checked under the lock: `invalidate` bumps the epoch before it takes the lock.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.stored.elapsed() < MAX_AGE);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key.to_string(), Entry { expires_at, session: session.clone(), stored: Instant::now() });
    }

    pub fn invalidate(&self, key: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.map().remove(key);
    }

    fn set_live(&self, live: bool) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.live.store(live, Ordering::SeqCst);
        self.map().clear();
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }
}

/// Keeps the invalidation subscription up for as long as the store lives.
pub fn spawn_subscriber(
    cache: &Arc<SessionCache>,
    backend: Arc<Backend>,
    channel: String,
    prefix_len: usize,
    timeout: Duration,
) {
    let weak: Weak<SessionCache> = Arc::downgrade(cache);
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
                    tracing::debug!("session cache on: subscribed to invalidations");
                    drop(cache);
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Some(cache) = weak.upgrade() else { return };
                        if let Ok(key) = msg.get_payload::<String>() {
                            // The payload is the full Redis key; the cache holds store keys.
                            cache.invalidate(session_key(&key, prefix_len));
                        }
                    }
                    if let Some(cache) = weak.upgrade() {
                        cache.set_live(false);
                    }
                    tracing::warn!("lost the Redis invalidation subscription; session cache off until it is back");
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

/// `PREFIX:s:{KEY}` → `KEY`.
fn session_key(redis_key: &str, prefix_len: usize) -> &str {
    redis_key
        .get(prefix_len..)
        .and_then(|k| k.strip_prefix(":s:{"))
        .and_then(|k| k.strip_suffix('}'))
        .unwrap_or(redis_key)
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
        let c = SessionCache::default();
        c.fill("k", UnixTime(9), &s(), c.epoch());
        assert!(c.get("k").is_none(), "not live: bypassed");
        c.set_live(true);
        c.fill("k", UnixTime(9), &s(), c.epoch());
        assert_eq!(c.get("k").map(|(e, _)| e), Some(UnixTime(9)));
        let before = c.epoch();
        c.invalidate("k");
        c.fill("k", UnixTime(9), &s(), before);
        assert!(c.get("k").is_none(), "a read older than the invalidation is not cached");
        c.fill("k", UnixTime(9), &s(), c.epoch());
        c.set_live(false);
        assert!(c.get("k").is_none());
        assert_eq!(session_key("sg:s:{abc}", 2), "abc");
    }
}
