//! Sentinel against real processes started here: a master, its replica and one sentinel.
//! The store finds the master through the sentinel, keeps the contract, and follows a failover.

use super::tests::{config, open, wait_for_port, wait_live, RedisServer};
use super::*;
use crate::clock::{Clock, SystemClock};
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::store::config::RedisTarget;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// `redis-server --sentinel` watching `mymaster` at `master_port`, killed on drop.
struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(master_port: u16) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds mymaster 500\n\
                 sentinel failover-timeout mymaster 3000\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server --sentinel ({e}): install `redis-server`"));
        wait_for_port(port, "the sentinel");
        Sentinel { child, port, _dir: dir }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until `cond` holds, for at most `limit`.
fn wait_for(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_sentinel_the_store_keeps_the_contract_and_follows_a_failover() {
    let master = RedisServer::start();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_for(Duration::from_secs(10), "the replica is in sync", || {
        redis_cli(replica.port, &["info", "replication"]).contains("master_link_status:up")
    });
    let sentinel = Sentinel::start(master.port);
    wait_for(Duration::from_secs(10), "the sentinel sees the replica", || {
        redis_cli(sentinel.port, &["sentinel", "replicas", "mymaster"]).contains(&replica.port.to_string())
    });

    let mut cfg = config(String::new());
    cfg.target = RedisTarget::Sentinel {
        sentinels: vec![format!("redis://127.0.0.1:{}", sentinel.port)],
        master: "mymaster".into(),
        master_url: "redis://sentinel-resolved:6379/0".into(),
        tls: false,
    };
    let store = open(&cfg);
    wait_live(&store).await;
    crate::store::contract::run_contract(store.clone()).await;

    // A session written before the master dies is served by the promoted replica.
    let now = SystemClock.now();
    let s = Session::new("alice", Proof { method: AuthMethod::Password, level: Level::Aal1, auth_time: now });
    store.put_session("before", &s, now.plus(Duration::from_secs(600))).await.unwrap();
    let replica_port = replica.port.to_string();
    let key = store.keys.session("before");
    wait_for(Duration::from_secs(5), "the session reaches the replica", || {
        !redis_cli(replica.port, &["exists", &key]).starts_with('0')
    });
    drop(master);
    wait_for(Duration::from_secs(20), "the sentinel promotes the replica", || {
        redis_cli(sentinel.port, &["sentinel", "get-master-addr-by-name", "mymaster"]).contains(&replica_port)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Errors (503 for the gateway) until the store has asked the sentinel again.
        if let Ok(Some(got)) = store.get_session("before", now).await {
            assert_eq!(got, s);
            break;
        }
        assert!(Instant::now() < deadline, "the store did not follow the failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.put_session("after", &s, now.plus(Duration::from_secs(600))).await.unwrap();
    assert_eq!(redis_cli(replica.port, &["exists", &store.keys.session("after")]), "1", "written to the new master");
    // The invalidation subscription follows too, so the local cache comes back on.
    wait_live(&store).await;
}
