//! Protocol upgrades and the tunnels they open: only WebSocket switches, CONNECT is refused,
//! and a WebSocket opened by a signed-in user closes when the proof that opened it ends (a
//! real WebSocket client, tokio-tungstenite, against the demo app's Jupyter-style kernel).

use crate::support::flows::enroll_totp;
use crate::support::{raw, Harness, Options, DEMO_RULES, HOST, PATIENCE};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket to `path` through the gateway, with the client's cookies.
async fn open(h: &Harness, cookie: Option<String>, path: &str) -> Result<Ws, String> {
    let mut req = format!("ws://{HOST}{path}").into_client_request().expect("a WebSocket request");
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().expect("a cookie header"));
    }
    let tcp = TcpStream::connect(h.addr).await.expect("connect");
    match tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(req, tcp)).await.expect("handshake in time") {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
            Ok(ws)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Sends `code` and returns the kernel's answer.
async fn run(ws: &mut Ws, code: &str) -> Option<String> {
    ws.send(Message::text(code)).await.ok()?;
    match tokio::time::timeout(PATIENCE, ws.next()).await.expect("an answer in time") {
        Some(Ok(Message::Text(t))) => Some(t.to_string()),
        _ => None,
    }
}

/// Waits until the gateway closes the tunnel: the stream ends or errors.
async fn closed(ws: &mut Ws) -> bool {
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    });
    ended.await.is_ok()
}

fn session_cookie(c: &crate::support::Client) -> String {
    format!("stepgate_session={}", c.session().expect("a session"))
}

/// A stepped-up client (TOTP at aal2), as the `/admin/**` rule of the test policy needs.
async fn stepped_up(h: &Harness) -> crate::support::Client {
    let mut c = h.client();
    c.sign_in().await;
    enroll_totp(h, &mut c).await;
    c
}

#[tokio::test]
async fn a_kernel_websocket_closes_at_sign_out() {
    let h = Harness::start().await;
    let mut c = stepped_up(&h).await;
    let mut ws = open(&h, Some(session_cookie(&c)), "/admin/kernel").await.expect("101 with a fresh proof");
    assert_eq!(run(&mut ws, "2+3").await.as_deref(), Some("5"));
    // Several re-checks later the proof still holds: the tunnel lives on.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(run(&mut ws, "6*7").await.as_deref(), Some("42"));

    let token = c.csrf_token().await;
    let r = c.post_form("/.stepgate/logout", &[("csrf", &token)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(closed(&mut ws).await, "the kernel connection outlived the sign-out");
}

#[tokio::test]
async fn a_kernel_websocket_closes_when_the_rules_max_age_lapses() {
    let h = Harness::start().await;
    let c = stepped_up(&h).await;
    let mut ws = open(&h, Some(session_cookie(&c)), "/admin/kernel").await.expect("101 with a fresh proof");
    assert_eq!(run(&mut ws, "1+1").await.as_deref(), Some("2"));
    // The admin rule wants a proof from the last 5 minutes; the session itself lives on.
    h.advance(Duration::from_secs(6 * 60));
    assert!(closed(&mut ws).await, "the kernel connection outlived max_age");
    // A new connection with the same (still signed-in) session is refused until a step-up.
    let again = open(&h, Some(session_cookie(&c)), "/admin/kernel").await;
    assert!(again.is_err(), "an upgrade with a stale proof must be refused");
}

#[tokio::test]
async fn a_websocket_on_a_public_route_closes_when_its_session_ends() {
    let rules = format!("[[rule]]\nname = \"kernel\"\npath = \"/kernel\"\nrequire = \"none\"\n{DEMO_RULES}");
    let h = Harness::with(Options { rules, ..Options::default() }).await;
    let mut c = h.client();
    c.sign_in().await;
    // A public kernel: anonymous tunnels have nothing to end...
    let mut anon = open(&h, None, "/kernel").await.expect("101 on a public route");
    assert_eq!(run(&mut anon, "3+4").await.as_deref(), Some("7"));
    drop(anon);
    // ...but one opened with a session (the app was told who) ends with it.
    let mut ws = open(&h, Some(session_cookie(&c)), "/kernel").await.expect("101 for a signed-in user");
    assert_eq!(run(&mut ws, "3+4").await.as_deref(), Some("7"));
    let token = c.csrf_token().await;
    c.post_form("/.stepgate/logout", &[("csrf", &token)]).await;
    assert!(closed(&mut ws).await, "the tunnel outlived the session that opened it");
}

#[tokio::test]
async fn an_anonymous_websocket_on_a_protected_route_is_refused() {
    let h = Harness::start().await;
    let err = open(&h, None, "/admin/kernel").await.expect_err("no 101 without a session");
    assert!(err.contains("401"), "{err}");
}

#[tokio::test]
async fn h2c_and_other_upgrades_are_not_relayed() {
    let h = Harness::start().await;
    let upgrades = [
        ("upgrade, http2-settings", "h2c"),
        ("Upgrade", "h2c"),
        ("upgrade", "websocket, h2c"),
        ("upgrade", "TLS/1.2"),
        ("upgrade", "foo"),
        // A WebSocket without key and version is not the RFC 6455 handshake.
        ("upgrade", "websocket"),
    ];
    for (connection, upgrade) in upgrades {
        let extra = [("Connection", connection), ("Upgrade", upgrade), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")];
        let r = raw::get(h.addr, "/echo/public/x", &extra).await;
        assert_eq!(r.status, 200, "Upgrade: {upgrade}: {}", r.head);
        let echoed: serde_json::Value = serde_json::from_str(&r.body_text()).expect("the echo");
        let headers = echoed["headers"].as_object().expect("headers");
        for name in ["upgrade", "http2-settings"] {
            assert!(!headers.contains_key(name), "Upgrade: {upgrade}: {name} reached the app: {headers:?}");
        }
        assert_ne!(headers.get("connection").and_then(|v| v.as_str()), Some("upgrade"));
    }
}

#[tokio::test]
async fn an_h2c_upgrade_cannot_smuggle_a_request_for_a_protected_path() {
    let h = Harness::start().await;
    // The attack: upgrade a public request to h2c, then speak HTTP/2 for /admin in the tunnel.
    let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let req = format!(
        "GET /public/x HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
         HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n{preface}"
    );
    let r = raw::send(h.addr, req.as_bytes()).await;
    assert_eq!(r.status, 200, "the public page, as a plain request: {}", r.head);
    assert!(!r.head.to_ascii_lowercase().contains("101"), "{}", r.head);
}

#[tokio::test]
async fn connect_is_refused() {
    let h = Harness::start().await;
    for target in ["stepgate.test:443", "127.0.0.1:22", "/admin"] {
        let r = raw::send(h.addr, format!("CONNECT {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await;
        assert_eq!(r.status, 405, "CONNECT {target}: {}", r.head);
    }
}
