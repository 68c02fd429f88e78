//! The contract every `Store` implementation keeps, as one test suite.
//!
//! `run_contract` takes a fresh, empty store (the sweep counts assume nothing else in it has
//! expired). It never reads a clock: every `now` is a `UnixTime` chosen here, far in the future
//! (year 2096), so an implementation that also sets real expiries (Redis `EXPIREAT`) keeps the
//! records alive during the test while its answers must still follow the `now` it is given.
//! Keys carry a per-run random tag and a prefix per section, so the sections do not interfere.

use crate::clock::UnixTime;
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::session::Session;
use crate::store::{Factors, SharedStore, TotpFactor};
use std::collections::BTreeSet;
use std::time::Duration;

const T0: UnixTime = UnixTime(4_000_000_000);
const CONCURRENCY: usize = 8;

fn at(offset: u64) -> UnixTime {
    UnixTime(T0.0 + offset)
}

fn session(user: &str, t: UnixTime) -> Session {
    let mut s = Session::new(user, Proof { method: AuthMethod::Password, level: Level::Aal1, auth_time: t });
    s.record(Proof { method: AuthMethod::Totp, level: Level::Aal2, auth_time: at(5) });
    s
}

struct Keys(String);

impl Keys {
    fn new() -> Keys {
        Keys(format!("contract-{:016x}", rand::random::<u64>()))
    }
    fn k(&self, section: &str, name: &str) -> String {
        format!("{}:{section}:{name}", self.0)
    }
}

pub(crate) async fn run_contract(store: SharedStore) {
    let keys = Keys::new();
    // First, while the store holds nothing else that can expire.
    ready(&store).await;
    sweep(&store, &keys).await;
    sessions(&store, &keys).await;
    end_user_sessions(&store, &keys).await;
    idp_sessions(&store, &keys).await;
    factors(&store, &keys).await;
    risk_history(&store, &keys).await;
    credential_index(&store, &keys).await;
    recovery_codes(&store, &keys).await;
    ephemeral(&store, &keys).await;
    high_water(&store, &keys).await;
    counters(&store, &keys).await;
}

/// The readiness probe writes and reads back, and leaves nothing behind.
async fn ready(store: &SharedStore) {
    store.ready(at(0)).await.unwrap();
    store.ready(at(1)).await.unwrap();
    assert_eq!(store.sweep(at(3600)).await.unwrap(), 0, "no probe record is left behind");
}

async fn sessions(store: &SharedStore, keys: &Keys) {
    let k = keys.k("sess", "a");
    let other = keys.k("sess", "b");
    assert_eq!(store.get_session(&k, at(0)).await.unwrap(), None);

    let s = session("alice", at(0));
    store.put_session(&k, &s, at(100)).await.unwrap();
    assert_eq!(store.get_session(&k, at(0)).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get_session(&k, at(99)).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get_session(&k, at(100)).await.unwrap(), None, "expires_at <= now is expired");
    assert_eq!(store.get_session(&k, at(1000)).await.unwrap(), None);
    assert_eq!(store.get_session(&other, at(0)).await.unwrap(), None);

    // overwrite: new content and new expiry
    let mut s2 = s.clone();
    s2.last_seen = at(50);
    store.put_session(&k, &s2, at(200)).await.unwrap();
    assert_eq!(store.get_session(&k, at(150)).await.unwrap(), Some(s2.clone()));

    // an expired session can be renewed by a put
    store.put_session(&other, &session("bob", at(0)), at(10)).await.unwrap();
    assert_eq!(store.get_session(&other, at(20)).await.unwrap(), None);
    store.put_session(&other, &session("bob", at(0)), at(30)).await.unwrap();
    assert_eq!(store.get_session(&other, at(20)).await.unwrap().map(|s| s.user), Some("bob".into()));

    store.delete_session(&k).await.unwrap();
    assert_eq!(store.get_session(&k, at(0)).await.unwrap(), None);
    store.delete_session(&k).await.unwrap(); // deleting nothing is fine
    assert!(store.get_session(&other, at(20)).await.unwrap().is_some(), "others untouched");
}

/// Ending a user's sessions removes them all (read through any cache first) and no one else's.
async fn end_user_sessions(store: &SharedStore, keys: &Keys) {
    let (carol, dave) = (keys.k("end", "carol"), keys.k("end", "dave"));
    let names = ["s1", "s2", "s3"].map(|n| keys.k("end", n));
    for (name, user) in names.iter().zip([&carol, &carol, &dave]) {
        store.put_session(name, &session(user, at(0)), at(100)).await.unwrap();
        assert!(store.get_session(name, at(1)).await.unwrap().is_some(), "cached before it ends");
    }
    assert_eq!(store.end_user_sessions(&carol).await.unwrap(), 2);
    assert_eq!(store.get_session(&names[0], at(1)).await.unwrap(), None);
    assert_eq!(store.get_session(&names[1], at(1)).await.unwrap(), None);
    assert_eq!(store.get_session(&names[2], at(1)).await.unwrap().map(|s| s.user), Some(dave.clone()));
    assert_eq!(store.end_user_sessions(&carol).await.unwrap(), 0, "nothing left to end");
    // A user whose name is a prefix of another's keeps nothing of the other's.
    assert_eq!(store.end_user_sessions(&dave[..dave.len() - 1]).await.unwrap(), 0);
    store.delete_session(&names[2]).await.unwrap();
}

/// Sessions filed under an identity provider's session end together (read through any cache
/// first), once; other indexes and unindexed sessions are untouched.
async fn idp_sessions(store: &SharedStore, keys: &Keys) {
    let (sid1, sid2) = (keys.k("idp", "sid-1"), keys.k("idp", "sid-2"));
    let names = ["a", "b", "c", "gone"].map(|n| keys.k("idp-sess", n));
    for name in &names[..3] {
        store.put_session(name, &session("erin", at(0)), at(100)).await.unwrap();
        assert!(store.get_session(name, at(1)).await.unwrap().is_some(), "cached before it ends");
    }
    store.index_idp_session(&sid1, &names[0], at(100)).await.unwrap();
    store.index_idp_session(&sid1, &names[1], at(50)).await.unwrap();
    store.index_idp_session(&sid1, &names[1], at(100)).await.unwrap(); // twice: once
    store.index_idp_session(&sid1, &names[3], at(100)).await.unwrap(); // its session is gone
    store.index_idp_session(&sid2, &names[2], at(100)).await.unwrap();
    assert_eq!(store.end_idp_sessions(&keys.k("idp", "none")).await.unwrap(), 0, "an unknown index ends nothing");
    assert_eq!(store.end_idp_sessions(&sid1).await.unwrap(), 2);
    assert_eq!(store.get_session(&names[0], at(1)).await.unwrap(), None);
    assert_eq!(store.get_session(&names[1], at(1)).await.unwrap(), None);
    assert!(store.get_session(&names[2], at(1)).await.unwrap().is_some(), "another IdP session's stays");
    assert_eq!(store.end_idp_sessions(&sid1).await.unwrap(), 0, "an index ends once");
    // A session filed under two indexes (its sid and its subject) ends by either.
    let sub = keys.k("idp", "sub-erin");
    store.index_idp_session(&sub, &names[2], at(100)).await.unwrap();
    assert_eq!(store.end_idp_sessions(&sub).await.unwrap(), 1);
    assert_eq!(store.get_session(&names[2], at(1)).await.unwrap(), None);
    assert_eq!(store.end_idp_sessions(&sid2).await.unwrap(), 0, "already ended by the other index");
}

async fn factors(store: &SharedStore, keys: &Keys) {
    let alice = keys.k("fact", "alice");
    let bob = keys.k("fact", "bob");
    assert_eq!(store.get_factors(&alice).await.unwrap(), Factors::default());

    let f = Factors {
        totp: Some(TotpFactor { sealed_secret: "sealed-secret".into(), enrolled_at: at(1) }),
        recovery_hashes: vec!["h1".into(), "h2".into()],
        webauthn: vec![crate::store::WebauthnCredential {
            id: "Y3JlZA".into(),
            name: "laptop".into(),
            created_at: at(1),
            last_used: Some(at(2)),
            passkey: serde_json::json!({"cred": {"counter": 3}}),
        }],
    };
    store.put_factors(&alice, &f).await.unwrap();
    assert_eq!(store.get_factors(&alice).await.unwrap(), f);
    assert_eq!(store.get_factors(&bob).await.unwrap(), Factors::default());

    let g = Factors { totp: None, recovery_hashes: vec!["h3".into()], webauthn: vec![] };
    store.put_factors(&alice, &g).await.unwrap();
    assert_eq!(store.get_factors(&alice).await.unwrap(), g);

    // factors do not expire: a sweep far in the future keeps them
    store.sweep(at(1_000_000)).await.unwrap();
    assert_eq!(store.get_factors(&alice).await.unwrap(), g);
}

async fn risk_history(store: &SharedStore, keys: &Keys) {
    use crate::risk::history::RiskHistory;
    let alice = keys.k("risk", "alice");
    let bob = keys.k("risk", "bob");
    assert_eq!(store.get_risk_history(&alice).await.unwrap(), RiskHistory::default());
    let mut h = RiskHistory::default();
    h.remember_device("device-1", at(1));
    h.remember_place(Some((51.5142, -0.0931)), Some("GB"), at(2));
    store.put_risk_history(&alice, &h).await.unwrap();
    assert_eq!(store.get_risk_history(&alice).await.unwrap(), h);
    assert_eq!(store.get_risk_history(&bob).await.unwrap(), RiskHistory::default());
    h.remember_place(Some((47.2513, -122.3149)), Some("US"), at(3));
    store.put_risk_history(&alice, &h).await.unwrap();
    store.sweep(at(1_000_000)).await.unwrap();
    let back = store.get_risk_history(&alice).await.unwrap();
    assert_eq!(back, h, "history does not expire");
    assert_eq!(back.countries, vec!["GB".to_string(), "US".to_string()]);
}

async fn credential_index(store: &SharedStore, keys: &Keys) {
    let cred = keys.k("cred", "Y3JlZC0x");
    assert!(store.claim_credential(&cred, "alice").await.unwrap(), "a new id is claimed");
    assert!(store.claim_credential(&cred, "alice").await.unwrap(), "claiming your own again is fine");
    assert!(!store.claim_credential(&cred, "bob").await.unwrap(), "another user's id is refused");
    store.release_credential(&cred).await.unwrap();
    assert!(store.claim_credential(&cred, "bob").await.unwrap(), "released, it can be registered again");
    store.sweep(at(1_000_000)).await.unwrap();
    assert!(!store.claim_credential(&cred, "alice").await.unwrap(), "the index does not expire");
}

async fn recovery_codes(store: &SharedStore, keys: &Keys) {
    let user = keys.k("rec", "alice");
    let totp = Some(TotpFactor { sealed_secret: "s".into(), enrolled_at: at(0) });
    let f =
        Factors { totp: totp.clone(), recovery_hashes: vec!["h1".into(), "h2".into(), "h3".into()], webauthn: vec![] };
    store.put_factors(&user, &f).await.unwrap();

    assert!(!store.take_recovery_code(&user, "nope").await.unwrap());
    assert!(store.take_recovery_code(&user, "h2").await.unwrap());
    assert!(!store.take_recovery_code(&user, "h2").await.unwrap(), "a code works once");
    let left = store.get_factors(&user).await.unwrap();
    assert_eq!(left.recovery_hashes, vec!["h1".to_string(), "h3".to_string()]);
    assert_eq!(left.totp, totp, "the rest of the record is kept");

    assert!(!store.take_recovery_code(&keys.k("rec", "nobody"), "h1").await.unwrap());
    assert_eq!(store.get_factors(&keys.k("rec", "nobody")).await.unwrap(), Factors::default());
    assert!(!store.take_recovery_code(&keys.k("rec", "bob"), "h1").await.unwrap(), "per user");

    // concurrent takers of the same code: exactly one wins
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, user) = (store.clone(), user.clone());
        tasks.push(tokio::spawn(async move { store.take_recovery_code(&user, "h1").await }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1, "one of {CONCURRENCY} concurrent takers gets the code");
    assert_eq!(store.get_factors(&user).await.unwrap().recovery_hashes, vec!["h3".to_string()]);

    assert!(store.take_recovery_code(&user, "h3").await.unwrap());
    assert!(store.get_factors(&user).await.unwrap().recovery_hashes.is_empty());
    assert!(!store.take_recovery_code(&user, "h3").await.unwrap());
}

async fn ephemeral(store: &SharedStore, keys: &Keys) {
    let k = keys.k("eph", "a");
    assert_eq!(store.get_ephemeral(&k, at(0)).await.unwrap(), None);
    assert_eq!(store.take_ephemeral(&k, at(0)).await.unwrap(), None);

    store.put_ephemeral(&k, b"ceremony", at(60)).await.unwrap();
    assert_eq!(store.get_ephemeral(&k, at(0)).await.unwrap(), Some(b"ceremony".to_vec()));
    assert_eq!(store.get_ephemeral(&k, at(59)).await.unwrap(), Some(b"ceremony".to_vec()), "get does not consume");
    assert_eq!(store.get_ephemeral(&k, at(60)).await.unwrap(), None, "expired at expires_at");
    assert_eq!(store.take_ephemeral(&k, at(1)).await.unwrap(), Some(b"ceremony".to_vec()));
    assert_eq!(store.take_ephemeral(&k, at(1)).await.unwrap(), None, "taken once");
    assert_eq!(store.get_ephemeral(&k, at(1)).await.unwrap(), None);

    // binary and empty values survive
    let bin: Vec<u8> = (0..=255).collect();
    store.put_ephemeral(&k, &bin, at(60)).await.unwrap();
    assert_eq!(store.take_ephemeral(&k, at(2)).await.unwrap(), Some(bin));
    store.put_ephemeral(&k, b"", at(60)).await.unwrap();
    assert_eq!(store.take_ephemeral(&k, at(2)).await.unwrap(), Some(Vec::new()));

    // an expired value cannot be taken
    store.put_ephemeral(&k, b"old", at(10)).await.unwrap();
    assert_eq!(store.take_ephemeral(&k, at(10)).await.unwrap(), None);
    assert_eq!(store.take_ephemeral(&k, at(5)).await.unwrap(), None, "nor taken later with an earlier now");

    // overwrite replaces value and expiry
    store.put_ephemeral(&k, b"v1", at(10)).await.unwrap();
    store.put_ephemeral(&k, b"v2", at(100)).await.unwrap();
    assert_eq!(store.get_ephemeral(&k, at(50)).await.unwrap(), Some(b"v2".to_vec()));

    // concurrent takers: exactly one gets it
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move { store.take_ephemeral(&k, at(50)).await }));
    }
    let mut got = Vec::new();
    for t in tasks {
        if let Some(v) = t.await.unwrap().unwrap() {
            got.push(v);
        }
    }
    assert_eq!(got, vec![b"v2".to_vec()]);
    assert_eq!(store.get_ephemeral(&keys.k("eph", "b"), at(0)).await.unwrap(), None);
}

async fn high_water(store: &SharedStore, keys: &Keys) {
    let k = keys.k("hw", "totp:alice");
    let zero = keys.k("hw", "zero");
    assert!(store.raise_high_water(&zero, 0).await.unwrap(), "nothing stored: any value raises");
    assert!(!store.raise_high_water(&zero, 0).await.unwrap());

    assert!(store.raise_high_water(&k, 10).await.unwrap());
    assert!(!store.raise_high_water(&k, 10).await.unwrap(), "the same value is not accepted twice");
    assert!(!store.raise_high_water(&k, 9).await.unwrap(), "an older value is refused");
    assert!(store.raise_high_water(&k, 11).await.unwrap());
    assert!(!store.raise_high_water(&k, 10).await.unwrap(), "a refused value does not lower the mark");
    assert!(store.raise_high_water(&k, 12).await.unwrap());
    assert!(store.raise_high_water(&k, u64::MAX).await.unwrap());
    assert!(!store.raise_high_water(&k, u64::MAX).await.unwrap());
    assert!(store.raise_high_water(&keys.k("hw", "totp:bob"), 5).await.unwrap(), "keys are separate");

    // concurrent raisers of one value: exactly one succeeds
    let c = keys.k("hw", "concurrent");
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, c) = (store.clone(), c.clone());
        tasks.push(tokio::spawn(async move { store.raise_high_water(&c, 42).await }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);

    // concurrent raisers of different values end at the maximum
    let m = keys.k("hw", "max");
    let mut tasks = Vec::new();
    for v in 1..=CONCURRENCY as u64 {
        let (store, m) = (store.clone(), m.clone());
        tasks.push(tokio::spawn(async move { store.raise_high_water(&m, v).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(!store.raise_high_water(&m, CONCURRENCY as u64).await.unwrap());
    assert!(store.raise_high_water(&m, CONCURRENCY as u64 + 1).await.unwrap());

    // high-water marks do not expire
    store.sweep(at(10_000_000)).await.unwrap();
    assert!(!store.raise_high_water(&k, 12).await.unwrap());
}

async fn counters(store: &SharedStore, keys: &Keys) {
    let k = keys.k("ctr", "login:alice");
    let w = Duration::from_secs(60);
    assert_eq!(store.read_counter(&k, at(0)).await.unwrap(), 0);

    // the window starts at the first hit (t = 7), not at a boundary
    assert_eq!(store.hit_counter(&k, w, at(7)).await.unwrap(), 1);
    assert_eq!(store.hit_counter(&k, w, at(20)).await.unwrap(), 2);
    assert_eq!(store.read_counter(&k, at(20)).await.unwrap(), 2);
    assert_eq!(store.hit_counter(&k, w, at(66)).await.unwrap(), 3, "still inside 7..67");
    assert_eq!(store.read_counter(&k, at(66)).await.unwrap(), 3);
    assert_eq!(store.read_counter(&k, at(67)).await.unwrap(), 0, "window_end <= now is expired");
    // a hit after the window starts a new one, of count 1
    assert_eq!(store.hit_counter(&k, w, at(67)).await.unwrap(), 1);
    assert_eq!(store.hit_counter(&k, w, at(100)).await.unwrap(), 2);
    assert_eq!(store.read_counter(&k, at(126)).await.unwrap(), 2, "new window is 67..127");
    assert_eq!(store.read_counter(&k, at(127)).await.unwrap(), 0);

    // reset
    store.reset_counter(&k).await.unwrap();
    assert_eq!(store.read_counter(&k, at(101)).await.unwrap(), 0);
    assert_eq!(store.hit_counter(&k, w, at(101)).await.unwrap(), 1);
    store.reset_counter(&keys.k("ctr", "never-hit")).await.unwrap();

    // keys are separate
    let other = keys.k("ctr", "login:bob");
    assert_eq!(store.read_counter(&other, at(101)).await.unwrap(), 0);
    assert_eq!(store.hit_counter(&other, Duration::from_secs(5), at(101)).await.unwrap(), 1);
    assert_eq!(store.read_counter(&k, at(101)).await.unwrap(), 1);

    // concurrent hits are all counted
    let c = keys.k("ctr", "concurrent");
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (store, c) = (store.clone(), c.clone());
        tasks.push(tokio::spawn(async move { store.hit_counter(&c, w, at(0)).await }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(seen, (1..=CONCURRENCY as u64).collect::<BTreeSet<_>>());
    assert_eq!(store.read_counter(&c, at(1)).await.unwrap(), CONCURRENCY as u64);
}

async fn sweep(store: &SharedStore, keys: &Keys) {
    let sk = |n: &str| keys.k("sweep-sess", n);
    let ek = |n: &str| keys.k("sweep-eph", n);
    let ck = |n: &str| keys.k("sweep-ctr", n);
    let s = session("carol", at(0));

    assert_eq!(store.sweep(at(0)).await.unwrap(), 0, "an empty store sweeps nothing");

    store.put_session(&sk("old1"), &s, at(10)).await.unwrap();
    store.put_session(&sk("old2"), &s, at(20)).await.unwrap(); // expires exactly at the sweep
    store.put_session(&sk("live"), &s, at(21)).await.unwrap();
    store.put_ephemeral(&ek("old"), b"x", at(5)).await.unwrap();
    store.put_ephemeral(&ek("live"), b"y", at(500)).await.unwrap();
    store.hit_counter(&ck("old"), Duration::from_secs(10), at(0)).await.unwrap(); // ends at 10
    store.hit_counter(&ck("live"), Duration::from_secs(100), at(0)).await.unwrap();
    store
        .put_factors(
            &keys.k("sweep", "carol"),
            &Factors { totp: None, recovery_hashes: vec!["h".into()], webauthn: vec![] },
        )
        .await
        .unwrap();
    store.raise_high_water(&keys.k("sweep", "hw"), 7).await.unwrap();

    assert_eq!(store.sweep(at(20)).await.unwrap(), 4, "2 sessions, 1 ephemeral, 1 counter");
    assert_eq!(store.sweep(at(20)).await.unwrap(), 0, "nothing left to sweep");

    // swept records are gone, not merely hidden: asking with an earlier `now` finds nothing
    assert_eq!(store.get_session(&sk("old1"), at(0)).await.unwrap(), None);
    assert_eq!(store.get_session(&sk("old2"), at(0)).await.unwrap(), None);
    assert_eq!(store.get_ephemeral(&ek("old"), at(0)).await.unwrap(), None);
    assert_eq!(store.read_counter(&ck("old"), at(0)).await.unwrap(), 0);
    // live records and records without expiry stay
    assert_eq!(store.get_session(&sk("live"), at(20)).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get_ephemeral(&ek("live"), at(20)).await.unwrap(), Some(b"y".to_vec()));
    assert_eq!(store.read_counter(&ck("live"), at(20)).await.unwrap(), 1);
    assert_eq!(store.get_factors(&keys.k("sweep", "carol")).await.unwrap().recovery_hashes, vec!["h".to_string()]);
    assert!(!store.raise_high_water(&keys.k("sweep", "hw"), 7).await.unwrap());

    assert_eq!(store.sweep(at(1000)).await.unwrap(), 3);
    assert_eq!(store.get_session(&sk("live"), at(0)).await.unwrap(), None);
}
