//! The demo app on an ephemeral port, driven by a hyper client and by raw TCP.

use super::*;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Only a guard against a hung test; nothing asserts how fast anything is.
const PATIENCE: Duration = Duration::from_secs(30);

async fn started() -> DemoApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start(listener).await
}

/// Sends one request on a fresh connection and returns the response with its body unread.
async fn send(addr: SocketAddr, req: Request<Body>) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    tokio::time::timeout(PATIENCE, sender.send_request(req)).await.unwrap().unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, HeaderMap, String) {
    let req = Request::get(path).header("host", "demo.test").body(body::empty()).unwrap();
    read_all(send(addr, req).await).await
}

async fn read_all(response: Response<Incoming>) -> (StatusCode, HeaderMap, String) {
    let (parts, incoming) = response.into_parts();
    let bytes = tokio::time::timeout(PATIENCE, incoming.collect()).await.unwrap().unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn echo_reports_method_path_and_every_header() {
    let app = started().await;
    let req = Request::post("/echo/a/../b?x=1&y=2")
        .header("host", "demo.test")
        .header("X-Multi", "one")
        .header("x-multi", "two")
        .header("X-Stepgate-User", "alice")
        .body(body::full("payload"))
        .unwrap();
    let (status, headers, text) = read_all(send(app.addr, req).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["method"], "POST");
    // The app reports the path exactly as received; normalizing is the gateway's job.
    assert_eq!(v["path"], "/echo/a/../b");
    assert_eq!(v["query"], "x=1&y=2");
    assert_eq!(v["headers"]["x-multi"], "one, two");
    assert_eq!(v["headers"]["x-stepgate-user"], "alice");
    assert_eq!(v["headers"]["host"], "demo.test");
    assert_eq!(v["headers"]["content-length"], "7");
    assert_eq!(v["body"], "payload");
    assert!(v["headers"].as_object().unwrap().keys().all(|k| *k == k.to_ascii_lowercase()));

    let (_, _, text) = get(app.addr, "/echo").await;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["query"], serde_json::Value::Null);
    assert!(v["headers"].get("x-multi").is_none());
}

#[tokio::test]
async fn bytes_streams_exactly_n_bytes_of_a() {
    let app = started().await;
    let req = Request::get("/bytes/1000000").header("host", "demo.test").body(body::empty()).unwrap();
    let response = send(app.addr, req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/octet-stream");
    let mut incoming = response.into_body();
    let (mut total, mut frames) = (0usize, 0usize);
    while let Some(frame) = tokio::time::timeout(PATIENCE, incoming.frame()).await.unwrap() {
        if let Some(data) = frame.unwrap().data_ref() {
            assert!(data.iter().all(|b| *b == b'a'));
            total += data.len();
            frames += 1;
        }
    }
    assert_eq!(total, 1_000_000);
    assert!(frames > 1, "a megabyte should arrive in more than one frame");

    let (status, _, text) = get(app.addr, "/bytes/0").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, ""));
    let (status, _, _) = get(app.addr, "/bytes/lots").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sink_counts_a_streamed_request_body() {
    let app = started().await;
    const TOTAL: u64 = 8 * 1024 * 1024 + 17;
    // No Content-Length: the request goes out chunked, frame by frame.
    let req =
        Request::post("/sink").header("host", "demo.test").body(body::stream(RepeatBody { remaining: TOTAL })).unwrap();
    let (status, _, text) = read_all(send(app.addr, req).await).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["received"], TOTAL);

    let (status, headers, _) = get(app.addr, "/sink").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[ALLOW], "POST");
}

#[tokio::test]
async fn transfer_form_and_post() {
    let app = started().await;
    let (status, headers, html) = get(app.addr, "/transfer").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(html.contains("<form method=\"post\" action=\"/transfer\">"));
    assert!(html.contains("name=\"to\"") && html.contains("name=\"amount\""));

    let req = Request::post("/transfer")
        .header("host", "demo.test")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body::full("amount=12.50&to=Alice+%3Cb%3E+%26+Bob"))
        .unwrap();
    let (status, _, html) = read_all(send(app.addr, req).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Transferred 12.50 to Alice &lt;b&gt; &amp; Bob"), "{html}");

    let req = Request::post("/transfer").header("host", "demo.test").body(body::full("to=bob")).unwrap();
    let (status, _, _) = read_all(send(app.addr, req).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let req = Request::put("/transfer").header("host", "demo.test").body(body::empty()).unwrap();
    let (status, _, _) = read_all(send(app.addr, req).await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn ws_upgrade_echoes_raw_bytes() {
    let app = started().await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    // The first bytes after the request head travel in the same write: hyper must hand them on.
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: demo.test\r\nConnection: keep-alive, Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\nearly ",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut byte)).await.unwrap().unwrap();
        assert_eq!(n, 1, "connection closed inside the response head: {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 switching protocols\r\n"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");

    tcp.write_all(b"hello \x00\xff world").await.unwrap();
    let expected = b"early hello \x00\xff world";
    let mut echoed = vec![0u8; expected.len()];
    tokio::time::timeout(PATIENCE, tcp.read_exact(&mut echoed)).await.unwrap().unwrap();
    assert_eq!(&echoed, expected);

    // Closing our side ends the echo, which closes its side.
    tcp.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn ws_without_upgrade_headers_is_426() {
    let app = started().await;
    let (status, headers, _) = get(app.addr, "/ws").await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(headers[UPGRADE], "websocket");
}

#[tokio::test]
async fn pages_show_identity_headers_escaped() {
    let app = started().await;
    let req = Request::get("/account")
        .header("host", "demo.test")
        .header("X-Stepgate-User", "<alice>")
        .header("X-Stepgate-Level", "aal2")
        .header("X-Stepgate-Auth-Time", "2024-05-01T10:00:00Z")
        .header("X-Stepgate-Methods", "pwd totp")
        .header("X-Forwarded-For", "203.0.113.9")
        .body(body::empty())
        .unwrap();
    let (status, headers, html) = read_all(send(app.addr, req).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(html.contains("Signed in as <strong>&lt;alice&gt;</strong>"), "{html}");
    assert!(!html.contains("<alice>"));
    for shown in ["aal2", "2024-05-01T10:00:00Z", "pwd totp", "203.0.113.9", "X-Stepgate-Methods"] {
        assert!(html.contains(shown), "{shown} missing from {html}");
    }
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));

    let (status, _, html) = get(app.addr, "/").await;
    assert_eq!(status, StatusCode::OK);
    for link in ["href=\"/account\"", "href=\"/transfer\"", "href=\"/admin\"", "href=\"/.stepgate/account\""] {
        assert!(html.contains(link), "{link} missing from home");
    }
    assert!(html.contains("<em>(not set)</em>"));
}

#[tokio::test]
async fn admin_public_and_fallback_routes() {
    let app = started().await;
    let (status, _, html) = get(app.addr, "/admin/users/%3Cx%3E").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Admin</h1>") && html.contains("<code>/admin/users/%3Cx%3E</code>"));
    let (_, _, html) = get(app.addr, "/admin").await;
    assert!(html.contains("<h1>Admin</h1>"));
    // `/administrator` is not under `/admin/`.
    let (_, _, text) = get(app.addr, "/administrator").await;
    assert_eq!(text, "demo app: /administrator");

    let (status, _, html) = get(app.addr, "/public/x").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Public page</h1>") && html.contains("<code>/public/x</code>"));

    let (status, headers, text) = get(app.addr, "/anything/else?q=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(text, "demo app: /anything/else");
}

#[tokio::test]
async fn slow_answers_after_the_delay() {
    let app = started().await;
    let before = std::time::Instant::now();
    let (status, _, text) = get(app.addr, "/slow?ms=50").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "slept 50 ms"));
    // A lower bound only: the sleep happened. Nothing here asserts speed.
    assert!(before.elapsed() >= Duration::from_millis(50));
    for bad in ["/slow", "/slow?ms=soon", "/slow?ms=-1", "/slow?ms=99999999999"] {
        let (status, _, _) = get(app.addr, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_connections() {
    let app = started().await;
    let addr = app.addr;
    // An idle keep-alive connection, opened before the shutdown.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /public/x HTTP/1.1\r\nHost: demo.test\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, idle.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));

    app.shutdown();
    // The idle connection is closed (whatever remains of the response, then EOF)...
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, idle.read_to_end(&mut rest)).await.unwrap().unwrap();
    // ...and once the accept loop has noticed, new connections are refused.
    let refused = tokio::time::timeout(PATIENCE, async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the listener still accepts after shutdown");
}

#[test]
fn parse_form_decodes_plus_and_percent() {
    let form = parse_form(b"to=Alice+B%26B&amount=1%2C5&flag&&empty=&to=again&bad=%zz%C3%A9");
    let expect =
        [("to", "Alice B&B"), ("amount", "1,5"), ("flag", ""), ("empty", ""), ("to", "again"), ("bad", "%zzé")];
    let got: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, expect);
    assert!(parse_form(b"").is_empty());
}
