//! Protocol upgrades: only WebSocket, only in its RFC 6455 shape, and a tunnel that closes
//! when the caller says its proof has ended.
//!
//! Any other `Upgrade` (h2c, TLS, a made-up protocol) is not relayed: the header is hop-by-hop
//! and goes, and the upstream sees a plain request. An `h2c` upgrade relayed to the app would
//! let the client speak HTTP/2 straight to it through the tunnel, past every rule.

use super::headers::connection_tokens;
use futures_util::future::BoxFuture;
use http::header::{HeaderMap, HeaderValue, CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{Method, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// The one protocol the gateway lets a request switch to.
pub const WEBSOCKET: HeaderValue = HeaderValue::from_static("websocket");

/// Whether a request is a WebSocket opening handshake (RFC 6455 §4.1): HTTP/1.1 `GET`,
/// `Connection: upgrade`, exactly `Upgrade: websocket`, a `Sec-WebSocket-Key` of 16 bytes in
/// base64, and `Sec-WebSocket-Version: 13`. HTTP/2 requests never upgrade this way (RFC 8441
/// is not supported).
pub fn is_websocket_handshake(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    if method != Method::GET || version != Version::HTTP_11 {
        return false;
    }
    if !connection_tokens(headers).iter().any(|t| t == "upgrade") {
        return false;
    }
    let single = |name| {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok().map(str::trim),
            _ => None,
        }
    };
    let key_ok = single(SEC_WEBSOCKET_KEY).is_some_and(|k| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(k).is_ok_and(|b| b.len() == 16)
    });
    single(UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        && key_ok
        && single(SEC_WEBSOCKET_VERSION) == Some("13")
}

/// Whether the upstream's 101 agreed to the WebSocket the gateway asked for.
pub fn agreed_to_websocket(headers: &HeaderMap) -> bool {
    let mut all = headers.get_all(UPGRADE).iter();
    matches!((all.next(), all.next()), (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Puts back the two headers an upgrade needs after hop-by-hop removal.
pub fn restore_headers(headers: &mut HeaderMap) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, WEBSOCKET);
}

/// A future that resolves when an open tunnel must close (its session ended, its proof is no
/// longer fresh enough): the caller decides, the tunnel obeys.
pub type CloseWhen = BoxFuture<'static, ()>;

/// Once both sides have switched protocols, copies bytes both ways until either side closes or
/// `close_when` resolves; then both connections are dropped.
pub fn spawn_tunnel(downstream: OnUpgrade, upstream: OnUpgrade, close_when: Option<CloseWhen>) {
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
        let close_when = async move {
            match close_when {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut down, &mut up) => match copied {
                Ok((to_up, to_down)) => tracing::debug!(to_up, to_down, "upgraded connection closed"),
                Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
            },
            _ = close_when => tracing::debug!("upgraded connection closed by the gateway"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(http::HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    const KEY: (&str, &str) = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    const VERSION: (&str, &str) = ("sec-websocket-version", "13");

    #[test]
    fn only_the_rfc6455_handshake_upgrades() {
        let ws = h(&[("connection", "keep-alive, Upgrade"), ("upgrade", "WebSocket"), KEY, VERSION]);
        assert!(is_websocket_handshake(&Method::GET, Version::HTTP_11, &ws));
        let refused: [(&str, Method, Version, HeaderMap); 13] = [
            ("HTTP/2", Method::GET, Version::HTTP_2, ws.clone()),
            ("HTTP/1.0", Method::GET, Version::HTTP_10, ws.clone()),
            ("POST", Method::POST, Version::HTTP_11, ws.clone()),
            ("no Connection: upgrade", Method::GET, Version::HTTP_11, h(&[("upgrade", "websocket"), KEY, VERSION])),
            (
                "h2c",
                Method::GET,
                Version::HTTP_11,
                h(&[
                    ("connection", "upgrade, http2-settings"),
                    ("upgrade", "h2c"),
                    ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
                ]),
            ),
            (
                "h2c with ws headers",
                Method::GET,
                Version::HTTP_11,
                h(&[("connection", "upgrade"), ("upgrade", "h2c"), KEY, VERSION]),
            ),
            (
                "two protocols",
                Method::GET,
                Version::HTTP_11,
                h(&[("connection", "upgrade"), ("upgrade", "websocket, h2c"), KEY, VERSION]),
            ),
            (
                "two Upgrade headers",
                Method::GET,
                Version::HTTP_11,
                h(&[("connection", "upgrade"), ("upgrade", "websocket"), ("upgrade", "h2c"), KEY, VERSION]),
            ),
            (
                "TLS",
                Method::GET,
                Version::HTTP_11,
                h(&[("connection", "upgrade"), ("upgrade", "TLS/1.2"), KEY, VERSION]),
            ),
            (
                "no key",
                Method::GET,
                Version::HTTP_11,
                h(&[("connection", "upgrade"), ("upgrade", "websocket"), VERSION]),
            ),
            (
                "short key",
                Method::GET,
                Version::HTTP_11,
                h(&[("connection", "upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "c2hvcnQ="), VERSION]),
            ),
            (
                "old version",
                Method::GET,
                Version::HTTP_11,
                h(&[("connection", "upgrade"), ("upgrade", "websocket"), KEY, ("sec-websocket-version", "8")]),
            ),
            (
                "no version",
                Method::GET,
                Version::HTTP_11,
                h(&[("connection", "upgrade"), ("upgrade", "websocket"), KEY]),
            ),
        ];
        for (why, method, version, headers) in refused {
            assert!(!is_websocket_handshake(&method, version, &headers), "{why} must not upgrade");
        }
    }

    #[test]
    fn a_101_must_agree_to_websocket() {
        assert!(agreed_to_websocket(&h(&[("upgrade", "websocket")])));
        assert!(agreed_to_websocket(&h(&[("upgrade", "WebSocket")])));
        assert!(!agreed_to_websocket(&h(&[("upgrade", "h2c")])));
        assert!(!agreed_to_websocket(&h(&[])));
        assert!(!agreed_to_websocket(&h(&[("upgrade", "websocket"), ("upgrade", "h2c")])));
    }
}
