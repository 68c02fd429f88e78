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
const METHOD_OVERRIDES: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// Removes every header a client could use to pose as an identity stepgate asserts (anything
/// that folds to `x-stepgate-*`, and the configured identity header in any spelling) or to
/// make the app see another method than the one the rules matched (method-override headers).
pub fn strip_spoofable_headers(headers: &mut HeaderMap, identity_header: Option<&HeaderName>) {
    let doomed = |name: &HeaderName| {
        let n = name.as_str();
        folds_to(n, STEPGATE_PREFIX, true)
            || identity_header.is_some_and(|h| folds_to(n, h.as_str(), false))
            || METHOD_OVERRIDES.iter().any(|m| folds_to(n, m, false))
    };
    if !headers.keys().any(doomed) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| doomed(n)).cloned().collect();
    for name in names {
        headers.remove(&name);
    }
}

/// The headers RFC 9110 §7.6.1 (and common practice) makes hop-by-hop.
const HOP_BY_HOP: [HeaderName; 9] = [
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

/// Removes hop-by-hop headers, including every header named by `Connection`.
/// Used on requests to the upstream and on its responses.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        for token in connection_tokens(headers) {
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                headers.remove(name);
            }
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Sets X-Forwarded-For/-Proto/-Host for the upstream.
///
/// `peer_ip` is the address of the connection's peer: the hop appended to the chain. A chain
/// sent by the client is kept only when the peer is a trusted proxy; otherwise it is a spoof
/// and dropped, and the chain is the peer alone. `Forwarded` and `X-Real-IP` from an untrusted
/// peer go too, so the app never sees a client-chosen address in any of the usual places.
pub fn set_forwarded(headers: &mut HeaderMap, peer_ip: IpAddr, proto: &str, host: &str, peer_trusted: bool) {
    let ip = peer_ip.to_canonical().to_string();
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
    headers.remove(&X_FORWARDED_FOR);
    if let Ok(v) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    replace(headers, X_FORWARDED_PROTO, proto);
    replace(headers, X_FORWARDED_HOST, host);
}

fn replace(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    headers.remove(&name);
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
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
        strip_spoofable_headers(&mut h, None);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "x-stepgatex"]);
    }

    #[test]
    fn strips_identity_header_variants() {
        let mut h =
            map(&[("X-Remote-User", "a"), ("X_Remote_User", "b"), ("x_remote-user", "c"), ("x-remote-users", "d")]);
        let id = HeaderName::from_static("x-remote-user");
        strip_spoofable_headers(&mut h, Some(&id));
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-remote-users"], "d");

        // The configured name itself written with an underscore folds the same way.
        let mut h = map(&[("X-Remote-User", "a"), ("X_Remote_User", "b")]);
        let id = HeaderName::from_static("x_remote_user");
        strip_spoofable_headers(&mut h, Some(&id));
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
