//! `[metrics]` (the Prometheus listener) and `[access_log]` (one JSON line per request).

use super::ConfigError;
use serde::Deserialize;
use std::net::SocketAddr;

/// `[metrics]`: absent, no metrics listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// ip:port of the listener serving `GET /metrics`.
    #[serde(default)]
    pub address: Option<String>,
}

/// `[access_log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Log the query string too (off: it may hold secrets, tokens in links say).
    #[serde(default)]
    pub query: bool,
}

impl Default for RawAccessLog {
    fn default() -> Self {
        RawAccessLog { enabled: true, query: false }
    }
}

fn yes() -> bool {
    true
}

/// What `[access_log]` asks for; read per request, so a reload applies at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLog {
    pub enabled: bool,
    pub query: bool,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog { enabled: true, query: false }
    }
}

pub fn parse_access_log(raw: &RawAccessLog) -> AccessLog {
    AccessLog { enabled: raw.enabled, query: raw.query }
}

/// `metrics.address`: an ip:port other than the gateway's own (port 0 picks a free one).
pub fn parse_metrics(raw: Option<&RawMetrics>, listen: SocketAddr) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let key = "metrics.address";
    let text = raw.address.as_deref().ok_or_else(|| {
        ConfigError::new(key, "missing: [metrics] needs the listener's ip:port, e.g. address = \"127.0.0.1:9108\"")
    })?;
    let addr: SocketAddr =
        text.trim().parse().map_err(|_| ConfigError::new(key, format!("'{text}' is not an ip:port")))?;
    if addr.port() != 0 && addr == listen {
        return Err(ConfigError::new(
            key,
            format!("{addr} is listen.address too; give the metrics listener its own port"),
        ));
    }
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, ConfigError, Overrides};
    use std::path::Path;

    fn load(extra: &str) -> Result<crate::config::Config, ConfigError> {
        let text = format!(
            "[listen]\naddress = \"127.0.0.1:8080\"\npublic_url = \"https://app.example\"\n\
             [upstream]\nurl = \"http://127.0.0.1:3000\"\n[sessions]\nsecret_key = \"{}\"\n{extra}\n\
             [default]\nrequire = \"aal1\"\n",
            "ab".repeat(32)
        );
        parse(&text, Path::new("/srv"), &Overrides::default())
    }

    #[test]
    fn metrics_listener_is_off_unless_configured_and_checked_when_it_is() {
        assert_eq!(load("").unwrap().metrics, None);
        assert_eq!(
            load("[metrics]\naddress = \"127.0.0.1:9108\"").unwrap().metrics,
            Some("127.0.0.1:9108".parse().unwrap())
        );
        assert_eq!(load("[metrics]\naddress = \"127.0.0.1:0\"").unwrap().metrics, Some("127.0.0.1:0".parse().unwrap()));
        for (text, words) in [
            ("[metrics]\naddress = \"localhost\"", "'localhost' is not an ip:port"),
            ("[metrics]\naddress = \"127.0.0.1:8080\"", "is listen.address too"),
            ("[metrics]\n", "missing"),
        ] {
            let e = load(text).unwrap_err();
            assert_eq!(e.key, "metrics.address", "{text}: {e}");
            assert!(e.reason.contains(words), "{text}: {e}");
        }
        let e = load("[metrics]\nadress = \"127.0.0.1:9108\"").unwrap_err();
        assert!(e.reason.contains("adress"), "{e}");
    }

    #[test]
    fn access_log_is_on_without_the_query_by_default() {
        let a = load("").unwrap().access_log;
        assert!(a.enabled && !a.query);
        let a = load("[access_log]\nenabled = false\nquery = true").unwrap().access_log;
        assert!(!a.enabled && a.query);
        let e = load("[access_log]\nenabled = \"yes\"").unwrap_err();
        assert!(e.reason.contains("bool"), "{e}");
        let e = load("[access_log]\nqueries = true").unwrap_err();
        assert!(e.reason.contains("queries"), "{e}");
    }
}
