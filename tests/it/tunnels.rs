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

/// Reads one HTTP/1.1 response (headers and a Content-Length body) off `stream`, no more.
async fn read_response(stream: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await.expect("an answer in time").unwrap();
        assert_eq!(n, 1, "the connection closed mid-answer: {}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

#[tokio::test]
async fn a_parked_keep_alive_connection_serves_its_next_request_a_split_one_and_a_websocket() {
    // Idle for PARK_AFTER, an HTTP/1.1 connection keeps only its socket; the client must not
    // notice: the next request, one whose head arrives across a park, and an upgrade all work
    // on the same TCP connection.
    use tokio::io::AsyncWriteExt;
    let rules = format!("[[rule]]\nname = \"kernel\"\npath = \"/kernel\"\nrequire = \"none\"\n{DEMO_RULES}");
    let listen_extra = "header_timeout = \"10s\"".to_string();
    let extra = crate::limits::METRICS.to_string();
    let h = Harness::with(Options { rules, listen_extra, extra, ..Options::default() }).await;
    let metrics = h.running.as_ref().and_then(|r| r.metrics_addr).expect("the metrics listener");
    let parked = || crate::limits::sample(metrics, "stepgate_parked_connections");
    let mut tcp = TcpStream::connect(h.addr).await.unwrap();
    let park = stepgate::server::PARK_AFTER + Duration::from_millis(500);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    tcp.write_all(get("/echo/public/one").as_bytes()).await.unwrap();
    assert!(read_response(&mut tcp).await.contains("/echo/public/one"));
    assert_eq!(parked().await, 0.0, "a connection in use is not parked");
    tokio::time::sleep(park).await;
    assert_eq!(parked().await, 1.0, "idle for PARK_AFTER: parked");
    tcp.write_all(get("/echo/public/two").as_bytes()).await.unwrap();
    let two = read_response(&mut tcp).await;
    assert_eq!(parked().await, 0.0, "serving again");
    assert!(two.starts_with("HTTP/1.1 200") && two.contains("/echo/public/two"), "{two}");
    // A head split across a park: the bytes read before it are served after it.
    let three = get("/echo/public/three");
    let (first, rest) = three.split_at(20);
    tcp.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(park).await;
    tcp.write_all(rest.as_bytes()).await.unwrap();
    let three = read_response(&mut tcp).await;
    assert!(three.starts_with("HTTP/1.1 200") && three.contains("/echo/public/three"), "{three}");
    // Two pipelined requests in one write after a park: both answered, in order.
    tokio::time::sleep(park).await;
    tcp.write_all(format!("{}{}", get("/echo/public/four"), get("/echo/public/five")).as_bytes()).await.unwrap();
    assert!(read_response(&mut tcp).await.contains("/echo/public/four"));
    assert!(read_response(&mut tcp).await.contains("/echo/public/five"));
    // And a WebSocket handshake on the parked connection upgrades it.
    tokio::time::sleep(park).await;
    let req = format!("ws://{HOST}/kernel").into_client_request().unwrap();
    let (mut ws, resp) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(req, tcp)).await.expect("in time").unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(run(&mut ws, "6*7").await.as_deref(), Some("42"));
}
