//! The access log: one JSON line per request (public routes too), under the target `access`,
//! apart from the audit records. Switched by `[access_log]` (`enabled`, and `query`, off by
//! default because a query string may carry secrets). Never a cookie, header value other than
//! the User-Agent, password or code.

use crate::config::observe::AccessLog;
use crate::metrics::labels::{DecisionLabel, Mode};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// The longest User-Agent written (in bytes); a longer one is cut at a character boundary.
const USER_AGENT_MAX: usize = 512;

/// One request, as the access log records it.
#[derive(Debug, Clone)]
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    /// The normalized path (what the route table matched and the upstream got).
    pub path: &'a str,
    /// The query string without `?`; written only with `access_log.query = true`.
    pub query: Option<&'a str>,
    pub status: u16,
    /// From the request's arrival to its response headers.
    pub duration: Duration,
    /// The response body's length, when known (Content-Length or a full body).
    pub bytes: Option<u64>,
    pub user_agent: Option<&'a str>,
    /// The client address (after trusted proxies).
    pub client_ip: IpAddr,
    pub user: Option<&'a str>,
    pub rule: Option<&'a str>,
    pub decision: DecisionLabel,
    pub mode: Mode,
}

static SINK: crate::log_line::Sink = crate::log_line::Sink::new();

/// Sends access lines to `write` from now on (the binary installs its log writer at start-up).
/// Until a sink is installed, lines go nowhere.
pub fn install(write: crate::log_line::Write) {
    SINK.install(write);
}

/// Writes `line` as `cfg` says: nothing when the access log is off; the query only when asked for.
pub fn write(cfg: &AccessLog, line: &AccessLine<'_>) {
    if !cfg.enabled {
        return;
    }
    if SINK.is_installed() {
        SINK.send(&render(cfg, line, SystemTime::now()));
    }
}

/// The JSON line, in the same envelope as the other log lines and audit records (`timestamp`,
/// `level`, `fields`, `target`): `timestamp` is the time the line was written.
pub fn render(cfg: &AccessLog, l: &AccessLine<'_>, at: SystemTime) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        request_id: &'a str,
        method: &'a str,
        host: &'a str,
        path: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        query: Option<&'a str>,
        status: u16,
        duration_ms: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        user_agent: &'a str,
        client_ip: IpAddr,
        user: &'a str,
        rule: &'a str,
        decision: &'static str,
        mode: &'static str,
    }
    let fields = Fields {
        request_id: l.request_id,
        method: l.method,
        host: l.host,
        path: l.path,
        query: l.query.filter(|_| cfg.query),
        status: l.status,
        duration_ms: l.duration.as_micros() as f64 / 1000.0,
        bytes: l.bytes,
        user_agent: cut(l.user_agent.unwrap_or("-"), USER_AGENT_MAX),
        client_ip: l.client_ip.to_canonical(),
        user: l.user.unwrap_or("-"),
        rule: l.rule.unwrap_or("-"),
        decision: l.decision.as_str(),
        mode: l.mode.as_str(),
    };
    crate::log_line::render("access", &fields, at, 384)
}

/// The `bytes` field for a response: its body's exact length when the body knows it (a full
/// body, or Content-Length), else None (a streamed body of unknown length).
pub fn response_bytes<B: http_body::Body>(resp: &http::Response<B>) -> Option<u64> {
    let hint = http_body::Body::size_hint(resp.body());
    hint.exact().or_else(|| resp.headers().get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse::<u64>().ok())
}

/// `s`, at most `max` bytes long, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AccessLine<'static> {
        AccessLine {
            request_id: "0123abcd",
            method: "POST",
            host: "app.example",
            path: "/transfer",
            query: Some("token=s3cret&to=bob"),
            status: 302,
            duration: Duration::from_micros(1_234),
            bytes: Some(17),
            user_agent: Some("curl/8.5 \"quoted\""),
            client_ip: "::ffff:192.0.2.7".parse().unwrap(),
            user: Some("alice"),
            rule: Some("transfer"),
            decision: DecisionLabel::Challenge,
            mode: Mode::Proxy,
        }
    }

    fn parse(cfg: AccessLog, line: &AccessLine<'_>) -> serde_json::Value {
        let at = std::time::UNIX_EPOCH + Duration::from_micros(1_764_556_800_123_456);
        let bytes = render(&cfg, line, at);
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1, "exactly one line");
        assert_eq!(bytes.last(), Some(&b'\n'));
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn a_line_has_every_field_and_no_query_unless_asked() {
        let v = parse(AccessLog::default(), &sample());
        assert_eq!(v["timestamp"], "2025-12-01T02:40:00.123456Z");
        assert_eq!(v["target"], "access");
        let f = &v["fields"];
        assert_eq!(f["request_id"], "0123abcd");
        assert_eq!(f["method"], "POST");
        assert_eq!(f["host"], "app.example");
        assert_eq!(f["path"], "/transfer");
        assert!(f.get("query").is_none(), "the query is off by default: {f}");
        assert!(!v.to_string().contains("s3cret"));
        assert_eq!(f["status"], 302);
        assert_eq!(f["duration_ms"], 1.234);
        assert_eq!(f["bytes"], 17);
        assert_eq!(f["user_agent"], "curl/8.5 \"quoted\"");
        assert_eq!(f["client_ip"], "192.0.2.7");
        assert_eq!(f["user"], "alice");
        assert_eq!(f["rule"], "transfer");
        assert_eq!(f["decision"], "challenge");
        assert_eq!(f["mode"], "proxy");

        let v = parse(AccessLog { enabled: true, query: true }, &sample());
        assert_eq!(v["fields"]["query"], "token=s3cret&to=bob");
    }

    #[test]
    fn what_is_unknown_is_absent_or_a_dash() {
        let line = AccessLine {
            query: None,
            bytes: None,
            user_agent: None,
            user: None,
            rule: None,
            decision: DecisionLabel::Forward,
            mode: Mode::ForwardAuth,
            ..sample()
        };
        let v = parse(AccessLog { enabled: true, query: true }, &line);
        let f = &v["fields"];
        assert!(f.get("query").is_none() && f.get("bytes").is_none(), "{f}");
        assert_eq!(f["user_agent"], "-");
        assert_eq!(f["user"], "-");
        assert_eq!(f["rule"], "-");
        assert_eq!(f["decision"], "forward");
        assert_eq!(f["mode"], "forward_auth");
    }

    #[test]
    fn bytes_are_the_body_length_when_known() {
        let full = http::Response::new(crate::body::full("hello"));
        assert_eq!(response_bytes(&full), Some(5));
        let frames = vec![Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from("chunk")))];
        let mut streamed = http::Response::new(http_body_util::StreamBody::new(futures_util::stream::iter(frames)));
        assert_eq!(response_bytes(&streamed), None, "a stream of unknown length");
        streamed.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("5"));
        assert_eq!(response_bytes(&streamed), Some(5));
    }

    #[test]
    fn a_long_user_agent_is_cut_on_a_character_boundary() {
        let ua = "é".repeat(400); // 800 bytes
        let line = AccessLine { user_agent: Some(&ua), ..sample() };
        let v = parse(AccessLog::default(), &line);
        let written = v["fields"]["user_agent"].as_str().unwrap();
        assert!(written.len() <= USER_AGENT_MAX && written.len() >= USER_AGENT_MAX - 1, "{}", written.len());
        assert!(ua.starts_with(written));
    }
}
