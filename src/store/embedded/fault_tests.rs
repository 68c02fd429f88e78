//! A disk that fails writes on demand (a redb `StorageBackend` over the real file): writes then
//! fail and the probe says not ready; once the fault is cleared the store heals by itself,
//! without a restart, and keeps what was committed before.

use super::*;
use crate::store::TotpFactor;
use redb::backends::FileBackend;
use redb::{Builder, StorageBackend};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

const T: UnixTime = UnixTime(1_000_000);

/// The file, but `write`, `set_len` and `sync_data` fail with ENOSPC while `full` is set.
#[derive(Debug)]
struct FlakyDisk {
    file: FileBackend,
    full: Arc<AtomicBool>,
}

impl FlakyDisk {
    fn check(&self) -> Result<(), io::Error> {
        if self.full.load(Ordering::SeqCst) {
            Err(io::Error::from_raw_os_error(28)) // ENOSPC: "No space left on device"
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for FlakyDisk {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.check()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.check()?;
        self.file.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }
}

/// A store on a `FlakyDisk`; returns the switch and a count of the times the file was opened.
fn flaky_store(path: &Path) -> (EmbeddedStore, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let (full, opens) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let (f, o) = (full.clone(), opens.clone());
    let opener: Opener = Box::new(move |p: &Path| {
        o.fetch_add(1, Ordering::SeqCst);
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p)?;
        Builder::new().create_with_backend(FlakyDisk { file: FileBackend::new(file)?, full: f.clone() })
    });
    (EmbeddedStore::open_with(path, opener).unwrap(), full, opens)
}

fn factors(secret: &str) -> Factors {
    Factors {
        totp: Some(TotpFactor { sealed_secret: secret.into(), enrolled_at: T }),
        recovery_hashes: vec!["h1".into(), "h2".into()],
        webauthn: vec![],
    }
}

/// Polls `ready` until it succeeds; how long that took.
async fn until_ready(store: &EmbeddedStore, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if store.ready(T).await.is_ok() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_and_the_store_heals_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (store, full, opens) = flaky_store(&dir.path().join("store.redb"));
    store.put_factors("alice", &factors("before")).await.unwrap();
    store.ready(T).await.unwrap();

    full.store(true, Ordering::SeqCst);
    let e = store.put_factors("bob", &factors("lost")).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    assert!(store.ready(T).await.is_err(), "not ready while writes fail");
    // redb's own state after an I/O error: every later write is refused, even with space back...
    full.store(false, Ordering::SeqCst);
    let e = store.put_session("s", &Session::new("alice", proof()), UnixTime(T.0 + 60)).await.unwrap_err();
    assert!(e.to_string().contains("I/O"), "{e}");

    // ...until the store opens the file again, by itself, after a short wait.
    let took = until_ready(&store, Duration::from_secs(5)).await.expect("the store healed without a restart");
    assert!(took <= handle::MIN_BACKOFF + Duration::from_secs(1), "healed after {took:?}");
    store.put_factors("bob", &factors("after")).await.unwrap();
    assert_eq!(store.get_factors("alice").await.unwrap(), factors("before"), "what was committed stays");
    assert_eq!(store.get_factors("bob").await.unwrap(), factors("after"));
    assert_eq!(opens.load(Ordering::SeqCst), 2, "opened once at start, once to heal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_fault_reopens_with_backoff_not_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let (store, full, opens) = flaky_store(&dir.path().join("store.redb"));
    full.store(true, Ordering::SeqCst);
    // Two seconds of requests every 5 ms, all on a disk that stays full.
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(2) {
        assert!(store.put_factors("alice", &factors("x")).await.is_err());
        requests += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reopened = opens.load(Ordering::SeqCst) - 1;
    // After 250 ms, then 500 ms and 1 s later: 3 within 2 s (4 with scheduling slack), never per request.
    assert!((1..=4).contains(&reopened), "{reopened} reopens for {requests} requests");
    assert!(requests > 100, "{requests}");

    // Healing still works after several failed reopens (the wait is at most MAX_BACKOFF).
    full.store(false, Ordering::SeqCst);
    until_ready(&store, handle::MAX_BACKOFF + Duration::from_secs(2)).await.expect("healed");
    store.put_factors("alice", &factors("y")).await.unwrap();
    assert_eq!(store.get_factors("alice").await.unwrap(), factors("y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_disk_where_some_writes_fit_still_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let (store, full, opens) = flaky_store(&dir.path().join("store.redb"));
    // Two seconds of a write that fits, then one that fails: the successes after each reopen
    // must not reset the wait, or every failure would reopen at once (8 times in 2 s).
    let (started, mut ok) = (Instant::now(), 0);
    while started.elapsed() < Duration::from_secs(2) {
        full.store(false, Ordering::SeqCst);
        ok += usize::from(store.put_factors("alice", &factors("fits")).await.is_ok());
        full.store(true, Ordering::SeqCst);
        assert!(store.put_factors("alice", &factors("x")).await.is_err());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reopened = opens.load(Ordering::SeqCst) - 1;
    assert!((1..=4).contains(&reopened), "{reopened} reopens");
    assert!(ok >= 2, "writes fit after each reopen: {ok}");
    full.store(false, Ordering::SeqCst);
    until_ready(&store, handle::MAX_BACKOFF + Duration::from_secs(2)).await.expect("healed");
}

fn proof() -> crate::policy::level::Proof {
    use crate::policy::level::{AuthMethod, Level, Proof};
    Proof { method: AuthMethod::Password, level: Level::Aal1, auth_time: T }
}
