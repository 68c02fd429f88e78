//! Header hygiene on the way through: identity headers a client must never set,
//! hop-by-hop headers that belong to one connection, and the X-Forwarded-* family.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, FORWARDED, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use std::net::IpAddr;

/// The prefix of every header stepgate itself sets for the upstream (after folding).
pub const STEPGATE_PREFIX: &str = "x-stepgate-";

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Whether header `name` is `target` once `_` counts as `-`. Header names are already lower
/// case in `http`; `_` counts as `-` because many servers (and CGI-style frameworks) treat
/// `X_Stepgate_User` and `X-Stepgate-User` as one header. `prefix` compares only the start.
fn folds_to(name: &str, target: &str, prefix: bool) -> bool {
    let (n, t) = (name.as_bytes(), target.as_bytes());
    let len_ok = if prefix { n.len() >= t.len() } else { n.len() == t.len() };
    let dash = |c: u8| if c == b'_' { b'-' } else { c };
    len_ok && n.iter().zip(t).all(|(&a, &b)| dash(a) == dash(b))
}

/// Headers with which many frameworks (Laravel, Symfony, Express's method-override, Google
/// APIs) let a request claim another method than the one it was sent with. Rules match the
/// method sent; an app must not see a different one.
const METHOD_OVERRIDES: [&str; 4] =
    ["x-http-method-override", "x-http-method", "x-method-override", "x-original-method"];

/// Client-supplied headers with which common frameworks and servers believe another path,
/// host, scheme, port or client address than the one the gateway checked. Rules match the
/// request the gateway saw, so none of them may reach the app from a client:
/// - path: IIS URL Rewrite and Symfony/Zend (`X-Original-URL`, `X-Rewrite-URL`), nginx
///   auth_request set-ups (`X-Original-URI`), Traefik (`X-Forwarded-Uri`), Spring and ASP.NET
///   path bases (`X-Forwarded-Prefix`, `X-Forwarded-Path`), Envoy (`X-Envoy-Original-Path`);
/// - host: `X-Host`, `X-Original-Host`, `X-Forwarded-Server`, `X-HTTP-Host-Override`
///   (`X-Forwarded-Host` is set by the gateway);
/// - scheme and port: `X-Forwarded-Port`, `-Scheme`, `-Ssl`, `-Protocol`, `X-Url-Scheme`,
///   `X-Scheme`, `Front-End-Https` (`X-Forwarded-Proto` is set by the gateway);
/// - client address: `X-Client-IP`, `X-Cluster-Client-IP`, `True-Client-IP`,
///   `CF-Connecting-IP`, `Fastly-Client-IP`, `X-Originating-IP`, `X-Remote-IP`,
///   `X-Remote-Addr`, `Client-IP`, `X-ProxyUser-IP`, `X-Forwarded`, `Forwarded-For`
///   (`X-Forwarded-For` is set by the gateway; `X-Real-IP` and `Forwarded` are kept only from
///   a trusted proxy, see `set_forwarded`).
pub const ROUTING_OVERRIDES: [&str; 31] = [
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-override-url",
    "x-forwarded-uri",
    "x-forwarded-url",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-envoy-original-path",
    "x-host",
    "x-original-host",
    "x-forwarded-server",
    "x-http-host-override",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-protocol",
    "x-url-scheme",
    "x-scheme",
    "front-end-https",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "client-ip",
    "x-proxyuser-ip",
    "x-forwarded",
];

/// Also routing overrides, spelled as "the forwarded-for list": stripped like the others.
const FORWARDED_FOR_ALIAS: &str = "forwarded-for";

/// What the gateway removes from a client's request headers before anything reads them.
#[derive(Debug, Clone, Copy)]
pub struct RequestHygiene<'a> {
    /// The configured identity header (identity source `header`), removed in every spelling.
    pub identity_header: Option<&'a HeaderName>,
    /// The configured groups header (`identity.groups_header`), removed in every spelling.
    pub groups_header: Option<&'a HeaderName>,
    /// Keep headers whose name contains `_` (`upstream.allow_underscores_in_headers`). Even
    /// then, a `_` spelling of a header the gateway treats specially is removed.
    pub keep_underscores: bool,
}

/// Why a request header is removed, or None when it is kept.
fn removal(name: &HeaderName, hygiene: RequestHygiene<'_>) -> Option<&'static str> {
    let n = name.as_str();
    if folds_to(n, STEPGATE_PREFIX, true) {
        return Some("x-stepgate-*");
    }
    if hygiene.identity_header.is_some_and(|h| folds_to(n, h.as_str(), false)) {
        return Some("identity header");
    }
    if hygiene.groups_header.is_some_and(|h| folds_to(n, h.as_str(), false)) {
        return Some("groups header");
    }
    // RFC 9440: the gateway verifies a trusted proxy's certificate header itself and tells the
    // app what it found (`X-Stepgate-Workload`); the header as sent never reaches the app.
    if folds_to(n, "client-cert", false) || folds_to(n, "client-cert-chain", false) {
        return Some("client certificate header");
    }
    if METHOD_OVERRIDES.iter().any(|m| folds_to(n, m, false)) {
        return Some("method override");
    }
    if ROUTING_OVERRIDES.iter().any(|m| folds_to(n, m, false)) || folds_to(n, FORWARDED_FOR_ALIAS, false) {
        return Some("routing override");
    }
    if n.contains('_') {
        // A `_` spelling of a header with a meaning here (framing, hop-by-hop, the forwarded
        // family, the request id) is always removed; other `_` names unless kept on purpose.
        let special = GATEWAY_SET.iter().chain(&FRAMING).chain(&HOP_BY_HOP).any(|h| folds_to(n, h.as_str(), false))
            || folds_to(n, "x-real-ip", false)
            || folds_to(n, "forwarded", false);
        if special || !hygiene.keep_underscores {
            return Some("underscore in name");
        }
    }
    None
}

/// Removes every header a client could use to pose as an identity stepgate asserts (anything
/// that folds to `x-stepgate-*`, and the configured identity header in any spelling), to make
/// the app see another method, path, host, scheme or client than the ones the rules matched
/// (method and routing overrides), and, unless kept on purpose, every header whose name
/// contains `_` (nginx's `underscores_in_headers off`: CGI-style stacks read `_` as `-`).
pub fn strip_spoofable_headers(headers: &mut HeaderMap, hygiene: RequestHygiene<'_>) {
    if !headers.keys().any(|n| removal(n, hygiene).is_some()) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| removal(n, hygiene).is_some()).cloned().collect();
    for name in names {
        headers.remove(&name);
    }
}

/// The headers the gateway itself sets on a forwarded request. Set after the client's
/// hop-by-hop headers are gone, and never removed by a `Connection` token.
const GATEWAY_SET: [HeaderName; 4] =
    [X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST, HeaderName::from_static("x-request-id")];

/// Framing and routing headers that are end-to-end: a `Connection` token never removes them
/// (removing `Content-Length` or `Host` on the way would change how the next hop reads the
/// message).
const FRAMING: [HeaderName; 2] = [http::header::CONTENT_LENGTH, http::header::HOST];

/// The headers RFC 9110 §7.6.1 (and common practice) makes hop-by-hop, and `HTTP2-Settings`,
/// which belongs to an h2c upgrade of this one connection (RFC 7540 §3.2.1).
const HOP_BY_HOP: [HeaderName; 10] = [
    HeaderName::from_static("http2-settings"),
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// The tokens listed in every `Connection` header, lower-cased.
pub fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Removes hop-by-hop headers, including every header named by `Connection` (but never one
/// of the gateway's own, `x-stepgate-*`, `Host` or `Content-Length`). The gateway calls it on a
/// client's request before it sets its own headers, and on the upstream's responses.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        for token in connection_tokens(headers) {
            let Ok(name) = HeaderName::from_bytes(token.as_bytes()) else { continue };
            let protected = GATEWAY_SET.contains(&name)
                || FRAMING.contains(&name)
                || folds_to(name.as_str(), STEPGATE_PREFIX, true);
            if !protected {
                headers.remove(name);
            }
        }
    }
    // One pass over the (few) names present instead of ten hashed look-ups: most requests and
    // responses carry no hop-by-hop header but `Connection`.
    if headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
    }
}

/// Sets X-Forwarded-For/-Proto/-Host for the upstream.
///
/// `peer_ip` is the address of the connection's peer: the hop appended to the chain. A chain
/// sent by the client is kept only when the peer is a trusted proxy; otherwise it is a spoof
/// and dropped, and the chain is the peer alone. `Forwarded` and `X-Real-IP` from an untrusted
/// peer go too, so the app never sees a client-chosen address in any of the usual places.
pub fn set_forwarded(headers: &mut HeaderMap, peer_ip: IpAddr, proto: &str, host: &str, peer_trusted: bool) {
    let ip = ip_text(peer_ip.to_canonical());
    let chain = if peer_trusted {
        let existing: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if existing.is_empty() {
            ip
        } else {
            format!("{}, {ip}", existing.join(", "))
        }
    } else {
        headers.remove(FORWARDED);
        headers.remove(&X_REAL_IP);
        ip
    };
    replace(headers, X_FORWARDED_FOR, &chain);
    replace(headers, X_FORWARDED_PROTO, proto);
    replace(headers, X_FORWARDED_HOST, host);
}

/// An address as text; IPv4 (nearly every peer) without the formatting machinery.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

/// Sets `name` to `value` alone (`insert` drops any earlier values), or removes it when
/// `value` is no valid header value.
fn replace(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => {
            headers.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_is_the_usual_spelling() {
        for ip in ["0.0.0.0", "127.0.0.1", "10.20.100.255", "1.2.3.4", "::1", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
        for n in [0u32, 9, 10, 99, 100, 199, 200, 255, 0x0a0b0c0d, u32::MAX] {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(n));
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn hygiene(identity_header: Option<&HeaderName>, keep_underscores: bool) -> RequestHygiene<'_> {
        RequestHygiene { identity_header, groups_header: None, keep_underscores }
    }

    fn left_after(pairs: &[(&str, &str)], keep_underscores: bool) -> Vec<String> {
        let mut h = map(pairs);
        strip_spoofable_headers(&mut h, hygiene(None, keep_underscores));
        let mut left: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
        left.sort();
        left
    }

    #[test]
    fn routing_overrides_are_removed_in_every_spelling() {
        for name in ROUTING_OVERRIDES.iter().copied().chain(["forwarded-for", "x-original-method"]) {
            let upper = name.to_ascii_uppercase();
            let under = name.replace('-', "_");
            for spelling in [name.to_string(), upper, under] {
                let left = left_after(&[(&spelling, "/admin/users"), ("accept", "*/*")], true);
                assert_eq!(left, vec!["accept"], "{spelling} must not reach the app");
            }
        }
        // Names that merely contain an override's name are not the override.
        let left = left_after(&[("x-original-url-note", "1"), ("x-hostname", "h")], false);
        assert_eq!(left, vec!["x-hostname", "x-original-url-note"]);
    }

    #[test]
    fn underscore_names_are_dropped_unless_kept() {
        let pairs = [
            ("x_forwarded_for", "1.2.3.4"),
            ("x_forwarded_host", "evil"),
            ("x_forwarded_proto", "https"),
            ("x_real_ip", "1.2.3.4"),
            ("transfer_encoding", "chunked"),
            ("content_length", "0"),
            ("x_request_id", "x"),
            ("Forwarded", "for=1"),
            ("connection_", "x"),
            ("x_custom_flag", "1"),
            ("x-custom-flag", "2"),
        ];
        assert_eq!(left_after(&pairs, false), vec!["forwarded", "x-custom-flag"]);
        // Kept on purpose: only names without a special meaning survive.
        assert_eq!(left_after(&pairs, true), vec!["connection_", "forwarded", "x-custom-flag", "x_custom_flag"]);
    }

    #[test]
    fn connection_tokens_never_remove_gateway_or_framing_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Forwarded-For, X-Stepgate-User, x-request-id, host, content-length, x-gone"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-stepgate-user", "alice"),
            ("x-request-id", "abc"),
            ("host", "app.example"),
            ("content-length", "3"),
            ("x-gone", "1"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["content-length", "host", "x-forwarded-for", "x-request-id", "x-stepgate-user"]);
    }

    #[test]
    fn client_certificate_headers_never_reach_the_app_in_any_spelling() {
        let pairs = [
            ("Client-Cert", ":MIIB:"),
            ("client_cert", ":MIIB:"),
            ("CLIENT-CERT-CHAIN", ":MIIC:"),
            ("Client_Cert_Chain", ":MIIC:"),
            ("client-certificate", "kept: another name"),
        ];
        for keep_underscores in [false, true] {
            let mut h = map(&pairs);
            strip_spoofable_headers(&mut h, hygiene(None, keep_underscores));
            let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
            assert_eq!(left, vec!["client-certificate"], "keep_underscores = {keep_underscores}");
        }
    }

    #[test]
    fn strips_stepgate_headers_in_every_spelling() {
        let mut h = map(&[
            ("X-Stepgate-User", "admin"),
            ("X_Stepgate_User", "admin"),
            ("x-stepgate-level", "3"),
            ("x_stepgate-Level", "3"),
            ("x-stepgatex", "keep"),
            ("accept", "text/html"),
        ]);
        strip_spoofable_headers(&mut h, hygiene(None, false));
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "x-stepgatex"]);
    }

    #[test]
    fn strips_identity_header_variants() {
        let mut h =
            map(&[("X-Remote-User", "a"), ("X_Remote_User", "b"), ("x_remote-user", "c"), ("x-remote-users", "d")]);
        let id = HeaderName::from_static("x-remote-user");
        strip_spoofable_headers(&mut h, hygiene(Some(&id), false));
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-remote-users"], "d");

        // The configured name itself written with an underscore folds the same way.
        let mut h = map(&[("X-Remote-User", "a"), ("X_Remote_User", "b")]);
        let id = HeaderName::from_static("x_remote_user");
        strip_spoofable_headers(&mut h, hygiene(Some(&id), false));
        assert!(h.is_empty());
    }

    #[test]
    fn removes_hop_by_hop_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret ,Other"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic abc"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
            ("other", "2"),
            ("content-type", "text/plain"),
            ("content-length", "4"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["content-length", "content-type"]);
    }

    #[test]
    fn untrusted_peer_cannot_spoof_forwarded_headers() {
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
        ]);
        set_forwarded(&mut h, "203.0.113.9".parse().unwrap(), "http", "app.example", false);
        assert_eq!(h.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.9");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "app.example");
        assert!(h.get(FORWARDED).is_none());
        assert!(h.get(&X_REAL_IP).is_none());
    }

    #[test]
    fn trusted_peer_chain_is_kept_and_extended() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.1, 10.0.0.2"),
            ("x-forwarded-for", "10.0.0.3"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        set_forwarded(&mut h, "::ffff:10.0.0.4".parse().unwrap(), "https", "app.example", true);
        assert_eq!(h.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h[&X_FORWARDED_FOR], "198.51.100.1, 10.0.0.2, 10.0.0.3, 10.0.0.4");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[FORWARDED], "for=198.51.100.1");
    }

    #[test]
    fn trusted_peer_without_chain_starts_one() {
        let mut h = HeaderMap::new();
        set_forwarded(&mut h, "2001:db8::1".parse().unwrap(), "https", "app.example", true);
        assert_eq!(h[&X_FORWARDED_FOR], "2001:db8::1");
    }
}
