//! Connections to Redis: one server (`ConnectionManager`, which reconnects by itself), the
//! master a Sentinel names (re-asked after a connection error or a READONLY reply), or a Cluster.

use crate::store::config::RedisTarget;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, TlsMode, Value};
use std::sync::Mutex;
use std::time::Duration;

pub enum Backend {
    Single { client: Client, manager: ConnectionManager },
    Sentinel { sentinel: tokio::sync::Mutex<SentinelClient>, current: Mutex<Option<(Client, ConnectionManager)>> },
    Cluster { client: ClusterClient, conn: tokio::sync::Mutex<Option<ClusterConnection>>, seeds: Vec<String> },
}

/// One handle to send commands on; cheap to make per call.
#[derive(Clone)]
pub enum Conn {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1))
}

impl Backend {
    /// Builds the clients without connecting: the gateway starts (and serves public routes)
    /// while Redis is down, and connects when it can.
    pub fn open(target: &RedisTarget, timeout: Duration) -> RedisResult<Backend> {
        match target {
            RedisTarget::Single { url } => {
                let client = Client::open(url.as_str())?;
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config(timeout))?;
                Ok(Backend::Single { client, manager })
            }
            RedisTarget::Sentinel { sentinels, master, master_url, tls } => {
                let redis_settings = master_url.as_str().into_connection_info()?.redis_settings().clone();
                let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis_settings);
                if *tls {
                    node = node.set_tls_mode(TlsMode::Secure);
                }
                let sentinel = SentinelClient::build(
                    sentinels.iter().map(String::as_str).collect(),
                    master.as_str(),
                    Some(node),
                    SentinelServerType::Master,
                )?;
                Ok(Backend::Sentinel { sentinel: tokio::sync::Mutex::new(sentinel), current: Mutex::new(None) })
            }
            RedisTarget::Cluster { nodes } => {
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .build()?;
                Ok(Backend::Cluster { client, conn: tokio::sync::Mutex::new(None), seeds: nodes.clone() })
            }
        }
    }

    pub async fn conn(&self, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Backend::Single { manager, .. } => Ok(Conn::Manager(manager.clone())),
            Backend::Sentinel { .. } => Ok(Conn::Manager(self.sentinel_master(timeout).await?.1)),
            Backend::Cluster { client, conn, .. } => {
                let mut guard = conn.lock().await;
                if let Some(c) = guard.as_ref() {
                    return Ok(Conn::Cluster(c.clone()));
                }
                let c = client.get_async_connection().await?;
                *guard = Some(c.clone());
                Ok(Conn::Cluster(c))
            }
        }
    }

    async fn sentinel_master(&self, timeout: Duration) -> RedisResult<(Client, ConnectionManager)> {
        let Backend::Sentinel { sentinel, current } = self else {
            return Err(RedisError::from((redis::ErrorKind::Client, "not a sentinel backend")));
        };
        if let Some(c) = lock(current).as_ref() {
            return Ok(c.clone());
        }
        let client = sentinel.lock().await.async_get_client().await?;
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config(timeout))?;
        *lock(current) = Some((client.clone(), manager.clone()));
        Ok((client, manager))
    }

    /// After an error: a Sentinel backend asks the sentinels again on the next call, since the
    /// master may have moved.
    pub fn failed(&self, e: &RedisError) {
        if let Backend::Sentinel { current, .. } = self {
            let moved = e.is_io_error()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.code() == Some("READONLY")
                || e.is_unrecoverable_error();
            if moved {
                *lock(current) = None;
            }
        }
    }

    /// A plain client for the pub/sub subscription. In a Cluster, PUBLISH reaches every node, so
    /// any node will do.
    pub async fn pubsub_client(&self, timeout: Duration) -> RedisResult<Client> {
        match self {
            Backend::Single { client, .. } => Ok(client.clone()),
            Backend::Sentinel { .. } => Ok(self.sentinel_master(timeout).await?.0),
            Backend::Cluster { seeds, .. } => {
                let i = rand::random::<usize>() % seeds.len().max(1);
                Client::open(seeds.get(i).map(String::as_str).unwrap_or_default())
            }
        }
    }

    /// Clients for every master, for SCAN.
    pub async fn masters(&self, timeout: Duration) -> RedisResult<Vec<Client>> {
        match self {
            Backend::Single { client, .. } => Ok(vec![client.clone()]),
            Backend::Sentinel { .. } => Ok(vec![self.sentinel_master(timeout).await?.0]),
            Backend::Cluster { seeds, .. } => {
                let mut conn = self.conn(timeout).await?;
                let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn).await?;
                let seed = seeds.first().map(String::as_str).unwrap_or("redis://");
                cluster_masters(&nodes).iter().map(|addr| Client::open(with_addr(seed, addr).as_str())).collect()
            }
        }
    }
}

/// Whether `e` says the connection broke (reset, closed, a broken pipe) rather than that Redis
/// answered with an error or did not answer in time: worth one retry on a fresh connection.
pub fn broken(e: &RedisError) -> bool {
    !e.is_timeout() && (e.is_connection_dropped() || e.is_io_error() || e.is_unrecoverable_error())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `ip:port` of every master in a `CLUSTER NODES` reply.
fn cluster_masters(nodes: &str) -> Vec<String> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (_id, addr, flags) = (f.next()?, f.next()?, f.next()?);
            let is_master = flags.split(',').any(|x| x == "master") && !flags.contains("fail");
            is_master.then(|| addr.split('@').next().unwrap_or(addr).to_string())
        })
        .collect()
}

/// The seed URL (scheme and credentials) pointed at another address.
fn with_addr(seed: &str, addr: &str) -> String {
    let (scheme, rest) = seed.split_once("://").unwrap_or(("redis", seed));
    let creds = rest.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    format!("{scheme}://{creds}{addr}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_nodes_reply() {
        let reply = "a 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460\n\
                     b 127.0.0.1:7002@17002 slave a 0 0 1 connected\n\
                     c 127.0.0.1:7003@17003 master - 0 0 2 connected 5461-10922\n";
        assert_eq!(super::cluster_masters(reply), vec!["127.0.0.1:7001", "127.0.0.1:7003"]);
        assert_eq!(super::with_addr("rediss://:pw@h:1", "10.0.0.1:7000"), "rediss://:pw@10.0.0.1:7000");
    }
}
