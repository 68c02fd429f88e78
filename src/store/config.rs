//! `[store]`: the embedded file or Redis (one server, Sentinel, or Cluster).

use crate::parse::{parse_duration, ConfigError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    #[serde(default = "d_store_kind")]
    pub kind: String,
    /// embedded only (default "stepgate.db").
    #[serde(default)]
    pub path: Option<String>,
    /// redis only: redis://, rediss://, redis+sentinel://h1,h2, redis+cluster://h1,h2.
    #[serde(default)]
    pub url: Option<String>,
    /// redis only: the key prefix (default "stepgate").
    #[serde(default)]
    pub prefix: Option<String>,
    /// redis only, with a redis+sentinel:// url: the master's name.
    #[serde(default)]
    pub sentinel_master: Option<String>,
    /// redis only: how long one Redis call may take (default "1s").
    #[serde(default)]
    pub timeout: Option<String>,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore { kind: d_store_kind(), path: None, url: None, prefix: None, sentinel_master: None, timeout: None }
    }
}

fn d_store_kind() -> String {
    "embedded".into()
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Embedded { path: PathBuf },
    Redis(RedisConfig),
}

#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub target: RedisTarget,
    /// Every key starts with `PREFIX:`; the invalidation channel is `PREFIX:inval`.
    pub prefix: String,
    /// How long one Redis call may take before the store reports itself unavailable.
    pub timeout: Duration,
}

/// Where Redis is. URLs may carry a password, so `Debug` prints none of them.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://` or `rediss://` (TLS with rustls), as written.
    Single { url: String },
    /// Ask these sentinels (`redis[s]://host:port` each) for `master`; `master_url` is a
    /// template (`redis[s]://[user:pass@]sentinel-resolved/DB`) whose credentials and db apply
    /// to the master.
    Sentinel { sentinels: Vec<String>, master: String, master_url: String, tls: bool },
    /// A Redis Cluster: seed nodes as `redis[s]://[user:pass@]host:port`.
    Cluster { nodes: Vec<String> },
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.target {
            RedisTarget::Single { .. } => "single",
            RedisTarget::Sentinel { .. } => "sentinel",
            RedisTarget::Cluster { .. } => "cluster",
        };
        f.debug_struct("RedisConfig")
            .field("target", &kind)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Single { .. } => f.write_str("Single(..)"),
            RedisTarget::Sentinel { master, .. } => write!(f, "Sentinel({master}, ..)"),
            RedisTarget::Cluster { nodes } => write!(f, "Cluster({} seeds)", nodes.len()),
        }
    }
}

const MAX_TIMEOUT: Duration = Duration::from_secs(30);

pub fn parse(raw: &RawStore, base: &Path) -> Result<StoreConfig, ConfigError> {
    match raw.kind.as_str() {
        "embedded" => {
            let only_redis = [
                ("store.url", raw.url.is_some()),
                ("store.prefix", raw.prefix.is_some()),
                ("store.sentinel_master", raw.sentinel_master.is_some()),
                ("store.timeout", raw.timeout.is_some()),
            ];
            if let Some((key, _)) = only_redis.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(*key, "only for store.kind = \"redis\""));
            }
            Ok(StoreConfig::Embedded { path: base.join(raw.path.as_deref().unwrap_or("stepgate.db")) })
        }
        "redis" => {
            if raw.path.is_some() {
                return Err(ConfigError::new("store.path", "only for store.kind = \"embedded\""));
            }
            let url = raw.url.as_deref().ok_or_else(|| {
                ConfigError::new(
                    "store.url",
                    "required when store.kind = \"redis\" (e.g. \"redis://127.0.0.1:6379/0\")",
                )
            })?;
            let target = parse_target(url.trim(), raw.sentinel_master.as_deref())?;
            let prefix = raw.prefix.clone().unwrap_or_else(|| "stepgate".into());
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 64
                && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
            if !prefix_ok {
                return Err(ConfigError::new(
                    "store.prefix",
                    "must be 1 to 64 letters, digits, '_', '.', ':' or '-' (no braces or glob characters)",
                ));
            }
            let timeout = parse_duration("store.timeout", raw.timeout.as_deref().unwrap_or("1s"))?;
            if timeout > MAX_TIMEOUT {
                return Err(ConfigError::new("store.timeout", "must be at most 30s: requests wait this long"));
            }
            Ok(StoreConfig::Redis(RedisConfig { target, prefix, timeout }))
        }
        other => {
            Err(ConfigError::new("store.kind", format!("unknown store '{other}'; expected \"embedded\" or \"redis\"")))
        }
    }
}

fn parse_target(url: &str, sentinel_master: Option<&str>) -> Result<RedisTarget, ConfigError> {
    let key = "store.url";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ConfigError::new(
            key,
            "must start with redis://, rediss://, redis+sentinel:// or redis+cluster://",
        ));
    };
    let (tls, kind) = match scheme {
        "redis" => (false, ""),
        "rediss" => (true, ""),
        "redis+sentinel" => (false, "sentinel"),
        "rediss+sentinel" => (true, "sentinel"),
        "redis+cluster" => (false, "cluster"),
        "rediss+cluster" => (true, "cluster"),
        other => {
            return Err(ConfigError::new(
                key,
                format!(
                    "scheme '{other}' is not supported; use redis://, rediss://, redis+sentinel:// or redis+cluster://"
                ),
            ))
        }
    };
    if kind != "sentinel" && sentinel_master.is_some() {
        return Err(ConfigError::new(
            "store.sentinel_master",
            "only with a redis+sentinel:// (or rediss+sentinel://) url",
        ));
    }
    let node_scheme = if tls { "rediss" } else { "redis" };
    if kind.is_empty() {
        check_url(url)?;
        return Ok(RedisTarget::Single { url: url.to_string() });
    }
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let db: i64 = match path {
        "" => 0,
        p => p.parse().map_err(|_| ConfigError::new(key, format!("'/{p}' is not a database number")))?,
    };
    let default_port = if kind == "sentinel" { 26379 } else { 6379 };
    let mut addrs = Vec::new();
    for h in hosts.split(',') {
        let h = h.trim();
        if h.is_empty() {
            return Err(ConfigError::new(key, "lists an empty host; write host:port,host:port"));
        }
        let has_port = h.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !h.ends_with(']');
        addrs.push(if has_port { h.to_string() } else { format!("{h}:{default_port}") });
    }
    if kind == "sentinel" {
        let master = sentinel_master
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ConfigError::new("store.sentinel_master", "required with a redis+sentinel:// url"))?;
        let sentinels: Vec<String> = addrs.iter().map(|a| format!("{node_scheme}://{a}")).collect();
        for s in &sentinels {
            check_url(s)?;
        }
        let master_url = format!("{node_scheme}://{userinfo}sentinel-resolved:6379/{db}");
        check_url(&master_url)?;
        return Ok(RedisTarget::Sentinel { sentinels, master: master.to_string(), master_url, tls });
    }
    if db != 0 {
        return Err(ConfigError::new(key, "Redis Cluster has only database 0"));
    }
    let nodes: Vec<String> = addrs.iter().map(|a| format!("{node_scheme}://{userinfo}{a}")).collect();
    for n in &nodes {
        check_url(n)?;
    }
    Ok(RedisTarget::Cluster { nodes })
}

/// Checks a URL the way the Redis client will read it, without naming any password.
fn check_url(url: &str) -> Result<(), ConfigError> {
    redis::IntoConnectionInfo::into_connection_info(url).map(|_| ()).map_err(|e| {
        ConfigError::new(
            "store.url",
            format!("is not a Redis URL the client accepts: {}", e.detail().unwrap_or("invalid")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: &str, url: Option<&str>) -> RawStore {
        RawStore { kind: kind.into(), url: url.map(String::from), ..RawStore::default() }
    }

    fn err(r: &RawStore) -> ConfigError {
        parse(r, Path::new("/")).unwrap_err()
    }

    #[test]
    fn redis_urls() {
        let c = |u: &str| match parse(&raw("redis", Some(u)), Path::new("/")).unwrap() {
            StoreConfig::Redis(r) => r,
            StoreConfig::Embedded { .. } => panic!("embedded"),
        };
        let single = c("redis://127.0.0.1:6379/0");
        assert_eq!(single.target, RedisTarget::Single { url: "redis://127.0.0.1:6379/0".into() });
        assert_eq!((single.prefix.as_str(), single.timeout), ("stepgate", Duration::from_secs(1)));
        assert!(matches!(c("rediss://:pw@redis.example:6380").target, RedisTarget::Single { .. }));
        let RedisTarget::Cluster { nodes } = c("redis+cluster://:pw@a:7000,b").target else { panic!() };
        assert_eq!(nodes, vec!["redis://:pw@a:7000".to_string(), "redis://:pw@b:6379".into()]);
        let mut r = raw("redis", Some("redis+sentinel://h1:26379,h2/2"));
        r.sentinel_master = Some("mymaster".into());
        let StoreConfig::Redis(RedisConfig {
            target: RedisTarget::Sentinel { sentinels, master, master_url, tls },
            ..
        }) = parse(&r, Path::new("/")).unwrap()
        else {
            panic!()
        };
        assert_eq!(sentinels, vec!["redis://h1:26379".to_string(), "redis://h2:26379".into()]);
        assert_eq!(
            (master.as_str(), master_url.as_str(), tls),
            ("mymaster", "redis://sentinel-resolved:6379/2", false)
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(err(&raw("redis", None)).key, "store.url");
        assert_eq!(err(&raw("redis", Some("http://x"))).key, "store.url");
        assert_eq!(err(&raw("redis", Some("redis+sentinel://h1"))).key, "store.sentinel_master");
        assert_eq!(err(&raw("redis", Some("redis+cluster://a,,b"))).key, "store.url");
        assert_eq!(err(&raw("redis", Some("redis+cluster://a/3"))).key, "store.url");
        assert_eq!(err(&raw("embedded", Some("redis://x"))).key, "store.url");
        assert_eq!(err(&raw("etcd", None)).key, "store.kind");
        let mut r = raw("redis", Some("redis://x"));
        r.sentinel_master = Some("m".into());
        assert_eq!(err(&r).key, "store.sentinel_master");
        let mut r = raw("redis", Some("redis://x"));
        r.prefix = Some("a{b}".into());
        assert_eq!(err(&r).key, "store.prefix");
        let mut r = raw("redis", Some("redis://x"));
        r.timeout = Some("5m".into());
        assert_eq!(err(&r).key, "store.timeout");
        let mut r = raw("redis", Some("redis://x"));
        r.path = Some("x.db".into());
        assert_eq!(err(&r).key, "store.path");
    }
}
