//! Protocol upgrades (WebSocket): detect them, and splice the two upgraded connections.

use super::headers::connection_tokens;
use http::header::{HeaderMap, HeaderValue, CONNECTION, UPGRADE};
use http::Version;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// The `Upgrade` value of an HTTP/1.1 request that asks for one (`Connection: upgrade` and
/// `Upgrade: x`). HTTP/2 requests never upgrade this way (RFC 8441 is not supported).
pub fn requested(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    if !connection_tokens(headers).iter().any(|t| t == "upgrade") {
        return None;
    }
    headers.get(UPGRADE).filter(|v| !v.is_empty()).cloned()
}

/// Puts back the two headers an upgrade needs after hop-by-hop removal.
pub fn restore_headers(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, upgrade);
}

/// Once both sides have switched protocols, copies bytes both ways until either side closes.
pub fn spawn_tunnel(downstream: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (down, up) = match tokio::try_join!(downstream, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut down = TokioIo::new(down);
        let mut up = TokioIo::new(up);
        match tokio::io::copy_bidirectional(&mut down, &mut up).await {
            Ok((to_up, to_down)) => tracing::debug!(to_up, to_down, "upgraded connection closed"),
            Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn detects_http11_upgrade_only() {
        let ws = h(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")]);
        assert_eq!(requested(Version::HTTP_11, &ws).unwrap(), "websocket");
        assert!(requested(Version::HTTP_2, &ws).is_none());
        assert!(requested(Version::HTTP_10, &ws).is_none());
        assert!(requested(Version::HTTP_11, &h(&[("upgrade", "websocket")])).is_none());
        assert!(requested(Version::HTTP_11, &h(&[("connection", "upgrade")])).is_none());
    }
}
