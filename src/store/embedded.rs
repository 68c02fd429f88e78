//! The default store: one local redb file. Every write is one durable transaction, so a
//! take-once operation (recovery code, ephemeral value, high-water mark) is atomic across tasks.
//! redb is synchronous; each call runs on tokio's blocking pool.

use crate::clock::{SharedClock, UnixTime};
use crate::risk::history::RiskHistory;
use crate::session::Session;
use crate::store::{Factors, Store, StoreError};
use async_trait::async_trait;
use handle::{Handle, Op, Opener};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// session key -> (expires_at, JSON `Session`)
const SESSIONS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("sessions_v1");
/// user -> JSON `Factors`
const FACTORS: TableDefinition<&str, &[u8]> = TableDefinition::new("factors_v1");
/// key -> (expires_at, value)
/// WebAuthn credential id -> user
const CREDENTIALS: TableDefinition<&str, &str> = TableDefinition::new("credentials_v1");
/// user -> JSON `RiskHistory`
const RISK_HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("risk_history_v1");
const EPHEMERAL: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("ephemeral_v1");
/// key -> highest value accepted
const HIGH_WATER: TableDefinition<&str, u64> = TableDefinition::new("high_water_v1");
/// IdP session or subject index -> (expires_at, session keys one per line), see `idp_index.rs`
const IDP_SESSIONS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("idp_sessions_v1");
/// key -> (count, window_end)
const COUNTERS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("counters_v1");

pub struct EmbeddedStore {
    db: Arc<Handle>,
    path: PathBuf,
    /// Sessions read on the hot path, kept in memory. Coherent because only this process can
    /// open the file (redb locks it) and every session write goes through this struct.
    sessions: SessionCache,
}

/// The most sessions kept in memory; past it the cache starts over (the file stays the truth).
const SESSION_CACHE_MAX: usize = 100_000;

/// Sessions by key, plus a count of writes so that a slow read of the file cannot put back
/// a session that was deleted (signed out) while it ran.
#[derive(Default)]
struct SessionCache {
    map: std::sync::RwLock<std::collections::HashMap<String, (u64, Session)>>,
    writes: std::sync::atomic::AtomicU64,
}

impl SessionCache {
    fn generation(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Caches what a file read found, unless a session write happened since `generation`.
    fn put_read(&self, key: &str, generation: u64, expires_at: u64, session: Session) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generation() == generation {
            Self::insert(&mut map, key, expires_at, session);
        }
    }
    fn insert(map: &mut std::collections::HashMap<String, (u64, Session)>, key: &str, expires_at: u64, s: Session) {
        if map.len() >= SESSION_CACHE_MAX && !map.contains_key(key) {
            map.clear();
        }
        map.insert(key.to_string(), (expires_at, s));
    }
    fn get(&self, key: &str, now: UnixTime) -> Option<Option<Session>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(key).map(|(expires_at, s)| (!expired(*expires_at, now)).then(|| s.clone()))
    }
    fn put(&self, key: &str, expires_at: u64, session: Session) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        Self::insert(&mut map, key, expires_at, session);
    }
    fn remove(&self, key: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        map.remove(key);
    }
    fn sweep(&self, now: UnixTime) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).retain(|_, (e, _)| !expired(*e, now));
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A failed operation inside a transaction; `io` when redb met an I/O error, after which it
/// refuses writes until the file is opened again (see `handle.rs`).
pub(super) struct Fault {
    error: StoreError,
    io: bool,
}

impl From<StoreError> for Fault {
    fn from(error: StoreError) -> Fault {
        Fault { error, io: false }
    }
}

impl From<Fault> for StoreError {
    fn from(f: Fault) -> StoreError {
        f.error
    }
}

fn err(e: impl Into<redb::Error>) -> Fault {
    match e.into() {
        e @ (redb::Error::Corrupted(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::UpgradeRequired(_)) => StoreError::Corrupt(e.to_string()).into(),
        e @ (redb::Error::Io(_) | redb::Error::PreviousIo) => {
            Fault { error: StoreError::Unavailable(e.to_string()), io: true }
        }
        e => StoreError::Unavailable(e.to_string()).into(),
    }
}

/// Creates every table up front, so readers never meet a missing one.
pub(super) fn create_tables(db: &Database) -> Result<(), Fault> {
    let txn = db.begin_write().map_err(err)?;
    txn.open_table(SESSIONS).map_err(err)?;
    txn.open_table(FACTORS).map_err(err)?;
    txn.open_table(RISK_HISTORY).map_err(err)?;
    txn.open_table(CREDENTIALS).map_err(err)?;
    txn.open_table(EPHEMERAL).map_err(err)?;
    txn.open_table(HIGH_WATER).map_err(err)?;
    txn.open_table(COUNTERS).map_err(err)?;
    txn.open_table(IDP_SESSIONS).map_err(err)?;
    txn.commit().map_err(err)
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Whether a record that expires at `expires_at` is gone at `now`.
fn expired(expires_at: u64, now: UnixTime) -> bool {
    expires_at <= now.0
}

impl EmbeddedStore {
    /// Opens (or creates) the store file, creating its directory if missing.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open_with(path, Box::new(|p: &Path| Database::create(p)))
    }

    /// A store that lives in memory only and is gone when dropped: for dry runs (`stepgate
    /// explain` and the bench evaluate requests through the real pipeline against it).
    pub fn in_memory() -> Result<EmbeddedStore, StoreError> {
        let opener: Opener =
            Box::new(|_: &Path| Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()));
        EmbeddedStore::open_with(Path::new("(memory)"), opener)
    }

    /// Opens the store with `opener`, which is also used to open the file again after an I/O error.
    fn open_with(path: &Path, opener: Opener) -> Result<EmbeddedStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        let db = Arc::new(Handle::open(path, opener)?);
        Ok(EmbeddedStore { db, path: path.to_path_buf(), sessions: SessionCache::default() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sweeps expired records every `every`, for as long as the returned task runs.
    pub fn spawn_sweeper(self: Arc<Self>, clock: SharedClock, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.sweep(clock.now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "store sweep"),
                    Err(e) => tracing::warn!(error = %e, "store sweep failed"),
                }
            }
        })
    }

    /// Runs a read-only operation on tokio's blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, Fault> + Send + 'static,
    {
        self.run(Op::Read, f).await
    }

    /// Runs an operation that writes on tokio's blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, Fault> + Send + 'static,
    {
        self.run(Op::Write, f).await
    }

    async fn run<T, F>(&self, op: Op, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, Fault> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.run(op, f))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get_session(&self, key: &str, now: UnixTime) -> Result<Option<Session>, StoreError> {
        if let Some(hit) = self.sessions.get(key, now) {
            return Ok(hit);
        }
        let cache_key = key.to_string();
        let generation = self.sessions.generation();
        let key = key.to_string();
        let found = self
            .read(move |db| {
                let txn = db.begin_read().map_err(err)?;
                let table = txn.open_table(SESSIONS).map_err(err)?;
                let Some(guard) = table.get(key.as_str()).map_err(err)? else {
                    return Ok(None);
                };
                let (expires_at, json) = guard.value();
                if expired(expires_at, now) {
                    return Ok(None);
                }
                let session: Session = serde_json::from_slice(json).map_err(|e| corrupt("session", e))?;
                Ok(Some((expires_at, session)))
            })
            .await?;
        Ok(found.map(|(expires_at, session)| {
            self.sessions.put_read(&cache_key, generation, expires_at, session.clone());
            session
        }))
    }

    async fn put_session(&self, key: &str, session: &Session, expires_at: UnixTime) -> Result<(), StoreError> {
        let key = key.to_string();
        let json = serde_json::to_vec(session).map_err(|e| corrupt("session", e))?;
        // Forget the cached copy first: a failed write must not leave a stale one behind.
        self.sessions.remove(&key);
        let cache_key = key.clone();
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(SESSIONS).map_err(err)?;
                table.insert(key.as_str(), (expires_at.0, json.as_slice())).map_err(err)?;
            }
            txn.commit().map_err(err)
        })
        .await?;
        // Bumps the write count again: a read that began before the commit is not cached.
        self.sessions.remove(&cache_key);
        self.sessions.put(&cache_key, expires_at.0, session.clone());
        Ok(())
    }

    async fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.sessions.remove(key);
        let cache_key = key.to_string();
        let key = key.to_string();
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(SESSIONS).map_err(err)?;
                table.remove(key.as_str()).map_err(err)?;
            }
            txn.commit().map_err(err)
        })
        .await?;
        // Again after the commit: a read that began before it is not cached.
        self.sessions.remove(&cache_key);
        Ok(())
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
        let user = user.to_string();
        self.read(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let table = txn.open_table(FACTORS).map_err(err)?;
            match table.get(user.as_str()).map_err(err)? {
                Some(guard) => Ok(serde_json::from_slice(guard.value()).map_err(|e| corrupt("factors", e))?),
                None => Ok(Factors::default()),
            }
        })
        .await
    }

    async fn put_factors(&self, user: &str, factors: &Factors) -> Result<(), StoreError> {
        let user = user.to_string();
        let json = serde_json::to_vec(factors).map_err(|e| corrupt("factors", e))?;
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(FACTORS).map_err(err)?;
                table.insert(user.as_str(), json.as_slice()).map_err(err)?;
            }
            txn.commit().map_err(err)
        })
        .await
    }

    async fn claim_credential(&self, credential_id: &str, user: &str) -> Result<bool, StoreError> {
        let (id, user) = (credential_id.to_string(), user.to_string());
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            let mine = {
                let mut table = txn.open_table(CREDENTIALS).map_err(err)?;
                let holder = table.get(id.as_str()).map_err(err)?.map(|g| g.value().to_string());
                match holder {
                    Some(h) => h == user,
                    None => {
                        table.insert(id.as_str(), user.as_str()).map_err(err)?;
                        true
                    }
                }
            };
            txn.commit().map_err(err)?;
            Ok(mine)
        })
        .await
    }

    async fn release_credential(&self, credential_id: &str) -> Result<(), StoreError> {
        let id = credential_id.to_string();
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(CREDENTIALS).map_err(err)?;
                table.remove(id.as_str()).map_err(err)?;
            }
            txn.commit().map_err(err)
        })
        .await
    }

    async fn get_risk_history(&self, user: &str) -> Result<RiskHistory, StoreError> {
        let user = user.to_string();
        self.read(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let table = txn.open_table(RISK_HISTORY).map_err(err)?;
            match table.get(user.as_str()).map_err(err)? {
                Some(guard) => Ok(serde_json::from_slice(guard.value()).map_err(|e| corrupt("risk history", e))?),
                None => Ok(RiskHistory::default()),
            }
        })
        .await
    }

    async fn put_risk_history(&self, user: &str, history: &RiskHistory) -> Result<(), StoreError> {
        let user = user.to_string();
        let json = serde_json::to_vec(history).map_err(|e| corrupt("risk history", e))?;
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(RISK_HISTORY).map_err(err)?;
                table.insert(user.as_str(), json.as_slice()).map_err(err)?;
            }
            txn.commit().map_err(err)
        })
        .await
    }

    async fn take_recovery_code(&self, user: &str, hash: &str) -> Result<bool, StoreError> {
        let user = user.to_string();
        let hash = hash.to_string();
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            let taken = {
                let mut table = txn.open_table(FACTORS).map_err(err)?;
                let current: Option<Factors> = match table.get(user.as_str()).map_err(err)? {
                    Some(guard) => Some(serde_json::from_slice(guard.value()).map_err(|e| corrupt("factors", e))?),
                    None => None,
                };
                match current {
                    Some(mut factors) if factors.recovery_hashes.contains(&hash) => {
                        factors.recovery_hashes.retain(|h| *h != hash);
                        let json = serde_json::to_vec(&factors).map_err(|e| corrupt("factors", e))?;
                        table.insert(user.as_str(), json.as_slice()).map_err(err)?;
                        true
                    }
                    _ => false,
                }
            };
            if taken {
                txn.commit().map_err(err)?;
            } else {
                txn.abort().map_err(err)?;
            }
            Ok(taken)
        })
        .await
    }

    async fn put_ephemeral(&self, key: &str, value: &[u8], expires_at: UnixTime) -> Result<(), StoreError> {
        let key = key.to_string();
        let value = value.to_vec();
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(EPHEMERAL).map_err(err)?;
                table.insert(key.as_str(), (expires_at.0, value.as_slice())).map_err(err)?;
            }
            txn.commit().map_err(err)
        })
        .await
    }

    async fn take_ephemeral(&self, key: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            let taken = {
                let mut table = txn.open_table(EPHEMERAL).map_err(err)?;
                let removed = table.remove(key.as_str()).map_err(err)?;
                removed.and_then(|guard| {
                    let (expires_at, value) = guard.value();
                    (!expired(expires_at, now)).then(|| value.to_vec())
                })
            };
            // An expired record is removed too: it could never be taken anyway.
            txn.commit().map_err(err)?;
            Ok(taken)
        })
        .await
    }

    async fn get_ephemeral(&self, key: &str, now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.read(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let table = txn.open_table(EPHEMERAL).map_err(err)?;
            Ok(table.get(key.as_str()).map_err(err)?.and_then(|guard| {
                let (expires_at, value) = guard.value();
                (!expired(expires_at, now)).then(|| value.to_vec())
            }))
        })
        .await
    }

    async fn raise_high_water(&self, key: &str, value: u64) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            let raised = {
                let mut table = txn.open_table(HIGH_WATER).map_err(err)?;
                let stored = table.get(key.as_str()).map_err(err)?.map(|g| g.value());
                let raise = stored.is_none_or(|s| value > s);
                if raise {
                    table.insert(key.as_str(), value).map_err(err)?;
                }
                raise
            };
            if raised {
                txn.commit().map_err(err)?;
            } else {
                txn.abort().map_err(err)?;
            }
            Ok(raised)
        })
        .await
    }

    async fn hit_counter(&self, key: &str, window: Duration, now: UnixTime) -> Result<u64, StoreError> {
        let key = key.to_string();
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            let count = {
                let mut table = txn.open_table(COUNTERS).map_err(err)?;
                let stored = table.get(key.as_str()).map_err(err)?.map(|g| g.value());
                let (count, window_end) = match stored {
                    Some((count, end)) if !expired(end, now) => (count.saturating_add(1), end),
                    _ => (1, now.plus(window).0),
                };
                table.insert(key.as_str(), (count, window_end)).map_err(err)?;
                count
            };
            txn.commit().map_err(err)?;
            Ok(count)
        })
        .await
    }

    async fn read_counter(&self, key: &str, now: UnixTime) -> Result<u64, StoreError> {
        let key = key.to_string();
        self.read(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let table = txn.open_table(COUNTERS).map_err(err)?;
            Ok(match table.get(key.as_str()).map_err(err)?.map(|g| g.value()) {
                Some((count, end)) if !expired(end, now) => count,
                _ => 0,
            })
        })
        .await
    }

    async fn reset_counter(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(COUNTERS).map_err(err)?;
                table.remove(key.as_str()).map_err(err)?;
            }
            txn.commit().map_err(err)
        })
        .await
    }

    async fn sweep(&self, now: UnixTime) -> Result<u64, StoreError> {
        self.sessions.sweep(now);
        self.write(move |db| {
            let txn = db.begin_write().map_err(err)?;
            let mut removed = 0u64;
            {
                let mut table = txn.open_table(SESSIONS).map_err(err)?;
                for entry in table.extract_if(|_, (expires_at, _)| expired(expires_at, now)).map_err(err)? {
                    entry.map_err(err)?;
                    removed += 1;
                }
            }
            {
                let mut table = txn.open_table(EPHEMERAL).map_err(err)?;
                for entry in table.extract_if(|_, (expires_at, _)| expired(expires_at, now)).map_err(err)? {
                    entry.map_err(err)?;
                    removed += 1;
                }
            }
            {
                let mut table = txn.open_table(COUNTERS).map_err(err)?;
                for entry in table.extract_if(|_, (_, window_end)| expired(window_end, now)).map_err(err)? {
                    entry.map_err(err)?;
                    removed += 1;
                }
            }
            removed += idp_index::sweep(&txn, now)?;
            txn.commit().map_err(err)?;
            Ok(removed)
        })
        .await
    }
}

mod end_sessions;
#[cfg(test)]
mod fault_tests;
mod handle;
mod idp_index;
#[cfg(test)]
mod tests;
