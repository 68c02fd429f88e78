//! Which address a request came from, believing X-Forwarded-For only from trusted proxies.

use super::headers::X_FORWARDED_FOR;
use http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client's address.
///
/// From an untrusted peer, the peer itself. From a trusted peer, X-Forwarded-For is walked
/// from right to left (the right end was written by the proxy nearest to us), skipping
/// trusted addresses: the first untrusted one is the client. If every entry is trusted, the
/// leftmost is. An unparsable entry ends the walk: whatever lies left of it may be forged,
/// so the last good address (or the peer) is the answer.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if !is_trusted(peer_ip, trusted) {
        return peer_ip;
    }
    let mut entries: Vec<Option<&str>> = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(v) => entries.extend(v.split(',').map(|e| Some(e.trim()))),
            Err(_) => entries.push(None),
        }
    }
    let mut best = peer_ip;
    for entry in entries.into_iter().rev() {
        if entry == Some("") {
            continue; // "a, , b" or a trailing comma: nothing there to believe or distrust
        }
        let Some(ip) = entry.and_then(parse_entry) else {
            break;
        };
        best = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    best
}

/// An XFF entry: `1.2.3.4`, `2001:db8::1`, or with a port (`1.2.3.4:5678`, `[2001:db8::1]:80`).
fn parse_entry(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().or_else(|_| s.parse::<SocketAddr>().map(|sa| sa.ip())).ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PEER: &str = "10.0.0.1:4000";

    #[test]
    fn untrusted_peer_ignores_xff() {
        let got = client_ip("203.0.113.5:1234".parse().unwrap(), &xff(&["1.2.3.4"]), &nets(&["10.0.0.0/8"]));
        assert_eq!(got, ip("203.0.113.5"));
    }

    #[test]
    fn no_trusted_proxies_means_peer() {
        assert_eq!(client_ip(PEER.parse().unwrap(), &xff(&["1.2.3.4"]), &[]), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_peer_first_untrusted_from_the_right() {
        let h = xff(&["6.6.6.6, 198.51.100.7, 10.0.0.9"]);
        assert_eq!(client_ip(PEER.parse().unwrap(), &h, &nets(&["10.0.0.0/8"])), ip("198.51.100.7"));
    }

    #[test]
    fn several_header_lines_form_one_chain() {
        let h = xff(&["6.6.6.6", "198.51.100.7", "10.0.0.9"]);
        assert_eq!(client_ip(PEER.parse().unwrap(), &h, &nets(&["10.0.0.0/8"])), ip("198.51.100.7"));
    }

    #[test]
    fn all_trusted_gives_leftmost() {
        let h = xff(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(client_ip(PEER.parse().unwrap(), &h, &nets(&["10.0.0.0/8"])), ip("10.1.1.1"));
    }

    #[test]
    fn trusted_peer_without_xff_is_peer() {
        assert_eq!(client_ip(PEER.parse().unwrap(), &HeaderMap::new(), &nets(&["10.0.0.0/8"])), ip("10.0.0.1"));
    }

    #[test]
    fn garbage_stops_the_walk() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = xff(&["6.6.6.6, not-an-ip, 10.0.0.9"]);
        assert_eq!(client_ip(PEER.parse().unwrap(), &h, &trusted), ip("10.0.0.9"));
        let h = xff(&["6.6.6.6, garbage"]);
        assert_eq!(client_ip(PEER.parse().unwrap(), &h, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn mapped_addresses_and_ports() {
        let trusted = nets(&["10.0.0.0/8"]);
        // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        let peer: SocketAddr = "[::ffff:10.0.0.1]:4000".parse().unwrap();
        let h = xff(&["[::ffff:198.51.100.7]:555, 10.0.0.9:80"]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("198.51.100.7"));
        let untrusted: SocketAddr = "[::ffff:203.0.113.5]:1".parse().unwrap();
        assert_eq!(client_ip(untrusted, &h, &trusted), ip("203.0.113.5"));
        let h = xff(&["2001:db8::7"]);
        assert_eq!(client_ip(peer, &h, &trusted), ip("2001:db8::7"));
    }
}
