use super::*;
use crate::clock::ManualClock;
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::store::contract::run_contract;
use crate::store::{SharedStore, TotpFactor};

fn session(user: &str) -> Session {
    Session::new(user, Proof { method: AuthMethod::Password, level: Level::Aal1, auth_time: UnixTime(1000) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    run_contract(store).await;
}

#[tokio::test]
async fn records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("dir").join("store.redb");
    let factors = Factors {
        totp: Some(TotpFactor { sealed_secret: "sealed".into(), enrolled_at: UnixTime(1000) }),
        recovery_hashes: vec!["a".into(), "b".into(), "c".into()],
        webauthn: vec![],
    };
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.put_session("s1", &session("alice"), UnixTime(5000)).await.unwrap();
        store.put_factors("alice", &factors).await.unwrap();
        assert!(store.take_recovery_code("alice", "b").await.unwrap());
        assert!(store.raise_high_water("totp:alice", 77).await.unwrap());
        store.put_ephemeral("e1", b"state", UnixTime(5000)).await.unwrap();
        assert_eq!(store.hit_counter("c1", Duration::from_secs(600), UnixTime(1000)).await.unwrap(), 1);
        // a second open of the same file while this one holds it fails clearly
        let err = EmbeddedStore::open(&path).unwrap_err().to_string();
        assert!(err.contains("already open") && err.contains("store.redb"), "{err}");
    }
    let store = EmbeddedStore::open(&path).unwrap();
    assert_eq!(store.get_session("s1", UnixTime(1000)).await.unwrap(), Some(session("alice")));
    let got = store.get_factors("alice").await.unwrap();
    assert_eq!(got.recovery_hashes, vec!["a".to_string(), "c".to_string()]);
    assert_eq!(got.totp, factors.totp);
    assert!(!store.take_recovery_code("alice", "b").await.unwrap(), "a used code stays used");
    assert!(!store.raise_high_water("totp:alice", 77).await.unwrap());
    assert_eq!(store.take_ephemeral("e1", UnixTime(1000)).await.unwrap(), Some(b"state".to_vec()));
    assert_eq!(store.hit_counter("c1", Duration::from_secs(600), UnixTime(1001)).await.unwrap(), 2);
}

#[tokio::test]
async fn open_fails_clearly_on_a_bad_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    // the parent is a file, so the directory cannot be made
    let err = EmbeddedStore::open(&file.join("store.redb")).unwrap_err().to_string();
    assert!(err.contains("a-file"), "{err}");
    // a file that is not a redb database
    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let err = EmbeddedStore::open(&junk).unwrap_err().to_string();
    assert!(err.contains("junk.redb"), "{err}");
}

#[tokio::test]
async fn sweeper_removes_expired_records_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store.redb")).unwrap());
    let clock = ManualClock::new(UnixTime(1000));
    store.put_session("gone", &session("alice"), UnixTime(1010)).await.unwrap();
    store.put_session("kept", &session("bob"), UnixTime(9999)).await.unwrap();
    let sweeper = store.clone().spawn_sweeper(Arc::new(clock.clone()), Duration::from_millis(10));
    clock.advance(Duration::from_secs(20));
    let mut swept = false;
    for _ in 0..500 {
        // ask with an earlier `now`: only a deleted record is missing then
        if store.get_session("gone", UnixTime(1000)).await.unwrap().is_none() {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sweeper.abort();
    assert!(swept, "the sweeper removed the expired session");
    assert!(store.get_session("kept", UnixTime(1000)).await.unwrap().is_some());
}

#[test]
fn debug_shows_only_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
    let dbg = format!("{store:?}");
    assert!(dbg.starts_with("EmbeddedStore") && dbg.contains("s.redb"), "{dbg}");
}
