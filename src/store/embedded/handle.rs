//! The open redb database, and opening it again after an I/O error.
//!
//! After an I/O error (a full disk, say) redb refuses every later write with "previous I/O
//! error" until the database is opened again. So an operation that meets an I/O error schedules
//! a reopen; the first operation after that time closes the failed database (once nothing runs
//! on it any more) and opens the file again, which also repairs it from its last commit. A
//! failed reopen, or a reopened database that fails again, waits twice as long before the next
//! try (up to `MAX_BACKOFF`), so a lasting fault costs a reopen every few seconds at most, never
//! one per request. The wait starts small again only after `QUIET` without an I/O error: on a
//! nearly full disk some writes still fit and others fail, and those successes must not make
//! every failure reopen at once.

use super::{create_tables, Fault};
use crate::store::StoreError;
use redb::{Database, DatabaseError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Opens (or creates) the database file; a test passes one that can be told to fail.
pub(super) type Opener = Box<dyn Fn(&Path) -> Result<Database, DatabaseError> + Send + Sync>;

/// The first wait before reopening, and the longest.
pub(super) const MIN_BACKOFF: Duration = Duration::from_millis(250);
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long without an I/O error before the wait starts from `MIN_BACKOFF` again.
const QUIET: Duration = Duration::from_secs(60);
/// How soon to look again when operations still run on the failed database.
const BUSY_RETRY: Duration = Duration::from_millis(20);

pub(super) struct Handle {
    path: PathBuf,
    opener: Opener,
    state: Mutex<State>,
}

struct State {
    /// None after a reopen failed: every operation fails until the next one succeeds.
    db: Option<Arc<Database>>,
    /// Some after an I/O error: when to reopen.
    reopen_at: Option<Instant>,
    /// The wait before the next reopen.
    backoff: Duration,
    /// When the last I/O error happened.
    last_fault: Option<Instant>,
    /// Reopened, and no write has succeeded since.
    reopened: bool,
}

/// Whether an operation only read, or also wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Read,
    Write,
}

impl Handle {
    /// Opens the file once; an error here is a startup error, reported as it is.
    pub fn open(path: &Path, opener: Opener) -> Result<Handle, StoreError> {
        let db = open_db(path, &opener)?;
        let state =
            State { db: Some(Arc::new(db)), reopen_at: None, backoff: MIN_BACKOFF, last_fault: None, reopened: false };
        Ok(Handle { path: path.to_path_buf(), opener, state: Mutex::new(state) })
    }

    /// Runs one operation (blocking: call it on the blocking pool), reopening first when due.
    pub fn run<T>(&self, op: Op, f: impl FnOnce(&Database) -> Result<T, Fault>) -> Result<T, StoreError> {
        let db = self.current()?;
        let result = f(&db);
        drop(db);
        match result {
            Ok(v) => {
                if op == Op::Write {
                    self.wrote();
                }
                Ok(v)
            }
            Err(fault) => {
                if fault.io {
                    self.io_failed(&fault.error);
                }
                Err(fault.error)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The database to use now, after reopening it if a reopen is due.
    fn current(&self) -> Result<Arc<Database>, StoreError> {
        let mut st = self.lock();
        let now = Instant::now();
        if st.reopen_at.is_some_and(|at| now >= at) {
            if st.db.as_ref().is_some_and(|db| Arc::strong_count(db) > 1) {
                // Clones are only made under this lock: others still run on it; soon again.
                st.reopen_at = Some(now + BUSY_RETRY);
            } else {
                self.reopen(&mut st, now);
            }
        }
        st.db.clone().ok_or_else(|| {
            StoreError::Unavailable(format!(
                "store file {} could not be opened again after an I/O error",
                self.path.display()
            ))
        })
    }

    fn reopen(&self, st: &mut State, now: Instant) {
        // Dropping the last handle closes the file and releases redb's lock on it.
        st.db = None;
        st.backoff = (st.backoff * 2).min(MAX_BACKOFF);
        let wait = st.backoff;
        match open_db(&self.path, &self.opener) {
            Ok(db) => {
                tracing::warn!(path = %self.path.display(), "store file opened again after an I/O error");
                st.db = Some(Arc::new(db));
                st.reopen_at = None;
                st.reopened = true;
            }
            Err(e) => {
                tracing::error!(
                    path = %self.path.display(), error = %e, retry_in = ?wait,
                    "store file could not be opened again"
                );
                st.reopen_at = Some(now + wait);
                st.last_fault = Some(now);
            }
        }
    }

    fn io_failed(&self, error: &StoreError) {
        let mut st = self.lock();
        if st.reopen_at.is_none() {
            let now = Instant::now();
            if st.last_fault.is_some_and(|t| now.duration_since(t) >= QUIET) {
                st.backoff = MIN_BACKOFF;
            }
            st.last_fault = Some(now);
            let wait = st.backoff;
            tracing::error!(
                path = %self.path.display(), error = %error, reopen_in = ?wait,
                "store I/O error: writes fail until the file is opened again"
            );
            st.reopen_at = Some(now + wait);
        }
    }

    fn wrote(&self) {
        let mut st = self.lock();
        if st.reopened {
            tracing::info!(path = %self.path.display(), "store writes succeed again");
            st.reopened = false;
        }
    }
}

/// Opens the file and makes sure every table exists, so readers never meet a missing one.
fn open_db(path: &Path, opener: &Opener) -> Result<Database, StoreError> {
    let db = opener(path).map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
            "store file {} is already open (is another stepgate running with it?)",
            path.display()
        )),
        e => StoreError::Unavailable(format!("cannot open store file {}: {e}", path.display())),
    })?;
    create_tables(&db)?;
    Ok(db)
}
