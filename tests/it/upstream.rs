//! The upstream side: failures, timeouts, upgrades, graceful shutdown.

use crate::support::client::empty;
use crate::support::{raw, Harness, Options, HOST, PATIENCE};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_closed_upstream_gives_502_in_the_clients_format() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let h = Harness::with(Options { upstream_url: Some(format!("http://{closed}")), ..Options::default() }).await;
    let mut c = h.client();
    let r = c.get_with("/public/x", &[("accept", "application/json")]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], "Bad gateway");
    assert!(!r.body.contains(&closed.port().to_string()), "the upstream address is not disclosed");

    let r = c.browse("/public/x").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.contains("<h1>Bad gateway</h1>"), "{}", r.body);
}

#[tokio::test]
async fn a_slow_upstream_gives_504() {
    let h =
        Harness::with(Options { upstream_extra: "response_timeout = \"500ms\"".into(), ..Options::default() }).await;
    let mut c = h.client();
    let r = c.get("/slow?ms=3000").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert_eq!(r.json()["error"], "Gateway timeout");
    // A quick answer within the timeout still goes through.
    let r = c.get("/slow?ms=10").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "slept 10 ms");
}

/// Sends an upgrade request for /ws, expects 101, then checks bytes come back.
async fn upgrade_and_echo(addr: std::net::SocketAddr, cookie: Option<&str>) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{cookie}\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await.expect("answer in time").unwrap();
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = raw::parse_status(&head);
    if status != 101 {
        return Err(format!("status {status}: {head}"));
    }
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{head}");
    for msg in [&b"hello through the gateway"[..], &b"\x00\x01binary\xff"[..]] {
        stream.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut back)).await.expect("echo in time").unwrap();
        assert_eq!(back, msg);
    }
    Ok(())
}

#[tokio::test]
async fn websocket_upgrade_passes_through_on_a_public_route() {
    let h = Harness::start().await;
    upgrade_and_echo(h.addr, None).await.expect("101 and an echo");
}

#[tokio::test]
async fn websocket_upgrade_passes_through_on_a_signed_in_route() {
    let rules = "[[rule]]\nname = \"ws\"\npath = \"/ws\"\nrequire = \"aal1\"\n\n[default]\nrequire = \"none\"\n";
    let h = Harness::with(Options { rules: rules.into(), ..Options::default() }).await;
    let err = upgrade_and_echo(h.addr, None).await.expect_err("anonymous upgrade is refused");
    assert!(err.starts_with("status 401"), "{err}");
    let mut c = h.client();
    c.sign_in().await;
    let cookie = format!("stepgate_session={}", c.session().unwrap());
    upgrade_and_echo(h.addr, Some(&cookie)).await.expect("101 and an echo when signed in");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let mut h = Harness::start().await;
    // One keep-alive connection, known to be accepted and served before the slow request.
    let stream = TcpStream::connect(h.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let get = |path: &str| http::Request::get(path).header("host", HOST).body(empty()).unwrap();
    let warm = sender.send_request(get("/public/x")).await.unwrap();
    assert_eq!(warm.status(), StatusCode::OK);
    warm.into_body().collect().await.unwrap();

    let in_flight = tokio::spawn(async move {
        let resp = sender.send_request(get("/slow?ms=1000")).await.expect("an answer, not a reset");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("the whole body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    // Only to order events: let the request reach the upstream before the shutdown.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = h.addr;
    h.shutdown().await;
    let (status, body) = tokio::time::timeout(PATIENCE, in_flight).await.expect("finishes").expect("the task ran");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "slept 1000 ms");
    assert!(TcpStream::connect(addr).await.is_err(), "no new connections after shutdown");
}

/// An upstream that answers every request after `delay` and remembers how many connections
/// were open at once, at most.
async fn counting_upstream(delay: Duration) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = most.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (open, most) = (open.clone(), most.clone());
            most.fetch_max(open.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"done"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, seen)
}

/// `upstream.max_connections` bounds the connections to the app: 12 clients at once through a
/// bound of 3 are all answered (they queue), over at most 3 upstream connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_pool_is_bounded_and_queues() {
    let (up, most) = counting_upstream(Duration::from_millis(150)).await;
    let h = Harness::with(Options {
        upstream_url: Some(format!("http://{up}")),
        upstream_extra: "max_connections = 3\npool_timeout = \"20s\"".into(),
        ..Options::default()
    })
    .await;
    let asks = (0..12).map(|i| {
        let mut c = h.client();
        tokio::spawn(async move { c.get(&format!("/public/{i}")).await })
    });
    for r in futures_util::future::join_all(asks).await {
        let r = r.unwrap();
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "done"));
    }
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} upstream connections were open at once, above the bound of 3");
}

/// Beyond the bound, a request that waited `upstream.pool_timeout` gets 503 with a clear
/// cause; the gateway opens no connection beyond the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_upstream_pool_is_503_after_the_pool_timeout() {
    let (up, most) = counting_upstream(Duration::from_secs(3)).await;
    let h = Harness::with(Options {
        upstream_url: Some(format!("http://{up}")),
        upstream_extra: "max_connections = 1\npool_timeout = \"200ms\"".into(),
        ..Options::default()
    })
    .await;
    let mut first = h.client();
    let busy = tokio::spawn(async move { first.get("/public/slow").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut c = h.client();
    let r = c.get_with("/public/next", &[("accept", "application/json")]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.json()["error"], "Service unavailable");
    assert!(!r.body.contains(&up.port().to_string()), "the upstream address is not disclosed: {}", r.body);
    let r = c.browse("/public/next").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.contains("The application is busy"), "{}", r.body);
    assert_eq!(busy.await.unwrap().status, StatusCode::OK, "the request holding the connection is answered");
    assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1, "one upstream connection, never more");
    // Once it is free, the next request goes through on the kept-alive connection.
    assert_eq!(c.get("/public/after").await.status, StatusCode::OK);
    assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
}
