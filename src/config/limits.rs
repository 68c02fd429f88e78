//! `listen.*` limits that keep the listener bounded under load and abuse: how long a client may
//! be silent, stall a body or keep an idle connection, how many connections and header bytes it
//! may hold. Read at start-up only (a reload that changes one says it needs a restart).

use super::ConfigError;
use crate::parse::parse_duration;
use std::time::Duration;

/// The smallest header cap hyper's HTTP/1.1 reader accepts (its read buffer's floor).
const MIN_HEADER_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenLimits {
    /// A connection with no request in flight is closed after this long (HTTP/2 with GOAWAY,
    /// HTTP/1.1 keep-alive too; HTTP/1.1 is also bound by `header_timeout` for its next request).
    pub idle_timeout: Duration,
    /// The longest a request body may pause between two chunks.
    pub body_timeout: Duration,
    /// Client connections open at once across all serving threads; more are closed at accept.
    pub max_connections: usize,
    /// Bytes of request headers a client may send for one request (HTTP/1.1: the connection's
    /// read buffer; HTTP/2: the decoded header list). Beyond it: 431.
    pub max_header_bytes: usize,
    /// HTTP/2 streams a client may have open at once on one connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 keep-alive PING interval; a peer that does not answer within `header_timeout` is
    /// dropped. None: no pings.
    pub h2_keepalive_interval: Option<Duration>,
}

pub fn d_idle_timeout() -> String {
    "60s".into()
}
pub fn d_body_timeout() -> String {
    "30s".into()
}
pub fn d_max_connections() -> usize {
    10_000
}
pub fn d_max_header_bytes() -> usize {
    64 * 1024
}
pub fn d_max_concurrent_streams() -> u32 {
    100
}
pub fn d_h2_keepalive_interval() -> String {
    "30s".into()
}

pub fn parse(raw: &super::raw::RawListen) -> Result<ListenLimits, ConfigError> {
    let nonzero = |key: &str, d: Duration| match d.is_zero() {
        true => Err(ConfigError::new(key, "must be longer than 0s")),
        false => Ok(d),
    };
    let idle_timeout = nonzero("listen.idle_timeout", parse_duration("listen.idle_timeout", &raw.idle_timeout)?)?;
    let body_timeout = nonzero("listen.body_timeout", parse_duration("listen.body_timeout", &raw.body_timeout)?)?;
    if raw.max_connections == 0 {
        return Err(ConfigError::new("listen.max_connections", "must be at least 1"));
    }
    if raw.max_header_bytes < MIN_HEADER_BYTES {
        let why = format!("{} is too small; at least {MIN_HEADER_BYTES} (8 KiB)", raw.max_header_bytes);
        return Err(ConfigError::new("listen.max_header_bytes", why));
    }
    if raw.max_header_bytes > 16 * 1024 * 1024 {
        let why = format!("{} is too large; at most 16777216 (16 MiB)", raw.max_header_bytes);
        return Err(ConfigError::new("listen.max_header_bytes", why));
    }
    if raw.max_concurrent_streams == 0 {
        return Err(ConfigError::new("listen.max_concurrent_streams", "must be at least 1"));
    }
    let h2_keepalive_interval = match raw.h2_keepalive_interval.trim() {
        "off" => None,
        v => Some(nonzero("listen.h2_keepalive_interval", parse_duration("listen.h2_keepalive_interval", v)?)?),
    };
    Ok(ListenLimits {
        idle_timeout,
        body_timeout,
        max_connections: raw.max_connections,
        max_header_bytes: raw.max_header_bytes,
        max_concurrent_streams: raw.max_concurrent_streams,
        h2_keepalive_interval,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Overrides};
    use std::path::Path;

    fn listen(extra: &str) -> Result<super::ListenLimits, String> {
        let text = format!(
            "[listen]\naddress = \"127.0.0.1:0\"\npublic_url = \"https://app.example\"\n{extra}\n\
             [upstream]\nurl = \"http://127.0.0.1:3000\"\n[sessions]\nsecret_key = \"{}\"\n\
             [default]\nrequire = \"aal1\"\n",
            "ab".repeat(32)
        );
        parse(&text, Path::new("/srv"), &Overrides::default()).map(|c| c.limits).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_bounded() {
        let l = listen("").unwrap();
        assert_eq!(l.idle_timeout.as_secs(), 60);
        assert_eq!(l.body_timeout.as_secs(), 30);
        assert_eq!(l.max_connections, 10_000);
        assert_eq!(l.max_header_bytes, 65_536);
        assert_eq!(l.max_concurrent_streams, 100);
        assert_eq!(l.h2_keepalive_interval.map(|d| d.as_secs()), Some(30));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (extra, key) in [
            ("idle_timeout = \"0s\"", "listen.idle_timeout"),
            ("body_timeout = \"soon\"", "listen.body_timeout"),
            ("max_connections = 0", "listen.max_connections"),
            ("max_header_bytes = 1024", "listen.max_header_bytes"),
            ("max_header_bytes = 100000000", "listen.max_header_bytes"),
            ("max_concurrent_streams = 0", "listen.max_concurrent_streams"),
            ("h2_keepalive_interval = \"0s\"", "listen.h2_keepalive_interval"),
        ] {
            let err = listen(extra).unwrap_err();
            assert!(err.contains(key), "{extra}: {err}");
        }
        assert_eq!(listen("h2_keepalive_interval = \"off\"").unwrap().h2_keepalive_interval, None);
    }
}
