//! The contract suite and the local cache against a real `redis-server` started here.

use super::*;
use crate::clock::{Clock, SystemClock};
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::store::config::RedisTarget;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// A `redis-server` on a free port, killed on drop.
pub(crate) struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// With extra `redis-server` arguments (`--replicaof HOST PORT`, say).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server ({e}): install the Debian package `redis-server`"));
        wait_for_port(port, "redis-server");
        RedisServer { child, port, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// Waits (10 s at most) until something accepts connections on `port`.
pub(crate) fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn config(url: String) -> RedisConfig {
    let prefix = format!("t{:08x}", rand::random::<u32>());
    RedisConfig { target: RedisTarget::Single { url }, prefix, timeout: Duration::from_secs(1) }
}

pub(crate) fn open(cfg: &RedisConfig) -> Arc<RedisStore> {
    Arc::new(RedisStore::open(cfg, Arc::new(SystemClock)).unwrap())
}

pub(crate) async fn wait_live(store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.cache_is_live() {
        assert!(Instant::now() < deadline, "the invalidation subscription did not come up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_keeps_the_contract() {
    let server = RedisServer::start();
    let store = open(&config(server.url()));
    crate::store::contract::run_contract(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_session_is_evicted_when_another_instance_changes_it() {
    let server = RedisServer::start();
    let cfg = config(server.url());
    let (a, b) = (open(&cfg), open(&cfg));
    wait_live(&a).await;
    wait_live(&b).await;
    let now = SystemClock.now();
    let s = Session::new("alice", Proof { method: AuthMethod::Password, level: Level::Aal1, auth_time: now });
    a.put_session("k", &s, now.plus(Duration::from_secs(600))).await.unwrap();
    let cached = |store: &RedisStore| store.cache.get::<(UnixTime, Session)>(&store.keys.session("k")).is_some();
    // a's put publishes an invalidation that may reach b after b's first read has begun: that
    // read must not fill the cache (it raced), so b reads until a read fills it.
    let mut filled = false;
    for _ in 0..100 {
        assert_eq!(b.get_session("k", now).await.unwrap(), Some(s.clone()));
        if cached(&b) {
            filled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(filled, "b keeps the session it read once no invalidation is in flight");

    let mut stepped = s.clone();
    stepped.record(Proof { method: AuthMethod::Totp, level: Level::Aal2, auth_time: now });
    a.put_session("k", &stepped, now.plus(Duration::from_secs(600))).await.unwrap();
    assert!(eventually(|| !cached(&b)).await, "b evicts on a's put");
    assert_eq!(b.get_session("k", now).await.unwrap(), Some(stepped));

    a.delete_session("k").await.unwrap();
    assert!(eventually(|| !cached(&b)).await, "b evicts on a's delete");
    assert_eq!(b.get_session("k", now).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_risk_history_is_evicted_when_another_instance_changes_it() {
    let server = RedisServer::start();
    let cfg = config(server.url());
    let (a, b) = (open(&cfg), open(&cfg));
    wait_live(&a).await;
    wait_live(&b).await;
    let mut h = RiskHistory::default();
    h.countries.push("GB".into());
    a.put_risk_history("ann", &h).await.unwrap();
    let cached = |store: &RedisStore| store.cache.get::<RiskHistory>(&store.keys.risk_history("ann"));
    let mut filled = false;
    for _ in 0..100 {
        assert_eq!(b.get_risk_history("ann").await.unwrap().countries, vec!["GB".to_string()]);
        if cached(&b).is_some() {
            filled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(filled, "b keeps the history it read: the next protected request costs no round trip");
    // A change written through a reaches b at once, not after the cache's 1 s bound.
    h.countries.push("US".into());
    a.put_risk_history("ann", &h).await.unwrap();
    assert!(eventually(|| cached(&b).is_none()).await, "b evicts on a's put");
    assert_eq!(b.get_risk_history("ann").await.unwrap().countries, vec!["GB".to_string(), "US".to_string()]);
}

/// Polls for up to 500 ms (well inside the 1 s revocation bound).
async fn eventually(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_millis(500);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_unavailable_within_the_timeout_and_the_cache_is_off() {
    let server = RedisServer::start();
    let cfg = config(server.url());
    let store = open(&cfg);
    wait_live(&store).await;
    let now = SystemClock.now();
    let s = Session::new("alice", Proof { method: AuthMethod::Password, level: Level::Aal1, auth_time: now });
    store.put_session("k", &s, now.plus(Duration::from_secs(600))).await.unwrap();
    assert!(store.get_session("k", now).await.unwrap().is_some());
    drop(server);
    assert!(eventually(|| !store.cache_is_live()).await, "losing the subscription turns the cache off");
    let started = Instant::now();
    let err = store.get_session("k", now).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

/// Three `redis-server --cluster-enabled yes` nodes joined by `redis-cli --cluster create`.
struct RedisCluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let (mut nodes, mut ports) = (Vec::new(), Vec::new());
        for i in 0..3 {
            let port = cluster_port();
            let node_dir = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run redis-server ({e}): install the Debian package `redis-server`"));
            nodes.push(child);
            ports.push(port);
        }
        let cluster = RedisCluster { nodes, ports, _dir: dir };
        for &p in &cluster.ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(Instant::now() < deadline, "cluster node {p} did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addrs: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): install the Debian package `redis-tools`"));
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        let deadline = Instant::now() + Duration::from_secs(20);
        for &p in &cluster.ports {
            loop {
                let info = Command::new("redis-cli").args(["-p", &p.to_string(), "cluster", "info"]).output().unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster did not become ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_keeps_the_contract_on_a_cluster() {
    let cluster = RedisCluster::start();
    let nodes = cluster.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
    let mut cfg = config(String::new());
    cfg.target = RedisTarget::Cluster { nodes };
    let store = open(&cfg);
    wait_live(&store).await;
    crate::store::contract::run_contract(store).await;
}
