//! The listener's limits on the real listener: `listen.max_connections` (closed at accept
//! beyond it, counted), `listen.max_header_bytes` (431, HTTP/1.1 and HTTP/2),
//! `listen.body_timeout` (408 for a stalled body), and a client that aborts mid-body is
//! counted as a client error, never as an upstream one.

use crate::support::{Client, Harness, Options, HOST};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const METRICS: &str = "[metrics]\naddress = \"127.0.0.1:0\"\n";

async fn with(listen_extra: &str) -> (Harness, SocketAddr) {
    let opts = Options { listen_extra: listen_extra.into(), extra: METRICS.into(), ..Options::default() };
    let h = Harness::with(opts).await;
    let metrics = h.running.as_ref().and_then(|r| r.metrics_addr).expect("the metrics listener");
    (h, metrics)
}

/// The value of one sample in the gateway's metrics.
pub async fn sample(metrics: SocketAddr, series: &str) -> f64 {
    let text = Client::new(metrics).get("/metrics").await.body;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Reads what the server sends until it closes (or 10 s pass: then panics).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("the gateway closes the connection")
        .ok();
    String::from_utf8_lossy(&buf).into_owned()
}

async fn served(addr: SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /public/x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    read_to_close(&mut s).await.starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn beyond_max_connections_a_connection_is_closed_at_accept_and_counted() {
    let (h, metrics) = with("max_connections = 2").await;
    // Two connections held open, each with a request served (so both are surely accepted).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        s.write_all(format!("GET /public/x HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await.unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(s);
    }
    assert!(!served(h.addr).await, "a third connection is not served");
    assert_eq!(sample(metrics, "stepgate_connections_refused_total").await, 1.0);
    assert_eq!(sample(metrics, "stepgate_open_connections").await, 2.0);
    // A slot given back is a slot taken again.
    drop(held.pop());
    let mut again = false;
    for _ in 0..50 {
        if served(h.addr).await {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again, "once a connection closes, a new one is served");
}

#[tokio::test]
async fn request_headers_beyond_max_header_bytes_get_431_over_http1() {
    let (h, _) = with("max_header_bytes = 16384").await;
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let big = "a".repeat(20_000);
    let req = format!("GET /public/x HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let answer = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Within the cap: served.
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let fits = "a".repeat(10_000);
    let req = format!("GET /public/x HTTP/1.1\r\nHost: {HOST}\r\nX-Fits: {fits}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    assert!(read_to_close(&mut s).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn request_headers_beyond_max_header_bytes_are_refused_over_http2() {
    let (h, _) = with("max_header_bytes = 16384").await;
    let stream = TcpStream::connect(h.addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
        .await
        .expect("an HTTP/2 handshake");
    tokio::spawn(conn);
    let req = |value: String| {
        http::Request::get(format!("http://{HOST}/public/x"))
            .header("x-big", value)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    let fits = send.send_request(req("a".repeat(10_000))).await.expect("a request within the cap");
    assert_eq!(fits.status(), 200);
    match send.send_request(req("a".repeat(20_000))).await {
        Ok(resp) => assert_eq!(resp.status(), 431),
        // The client may refuse to send what the gateway's SETTINGS said it will not take.
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A POST to the streaming sink that announces `len` bytes and sends only `sent`.
async fn partial_post(addr: SocketAddr, len: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /sink HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'x'; sent]).await.unwrap();
    s
}

#[tokio::test]
async fn a_request_body_that_stalls_is_cut_with_408_and_counted_as_the_clients() {
    let (h, metrics) = with("body_timeout = \"300ms\"").await;
    let mut s = partial_post(h.addr, 100_000, 1_000).await;
    let answer = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    assert_eq!(sample(metrics, r#"stepgate_client_errors_total{kind="body_stalled"}"#).await, 1.0);
    for kind in ["client_body", "upstream", "connect", "timeout"] {
        let series = format!("stepgate_upstream_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(sample(metrics, &series).await, 0.0, "{series}");
    }
    // A body that keeps coming, however slowly, is not cut.
    let mut s = partial_post(h.addr, 6, 0).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(b"y").await.unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_client_that_aborts_mid_body_is_a_client_error_not_an_upstream_failure() {
    let (h, metrics) = with("").await;
    for _ in 0..3 {
        let s = partial_post(h.addr, 100_000, 10_000).await;
        drop(s);
    }
    // The aborts are counted once the forwards have failed.
    let mut cut = 0.0;
    for _ in 0..100 {
        cut = sample(metrics, r#"stepgate_client_errors_total{kind="body_cut"}"#).await;
        if cut >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cut, 3.0);
    for kind in ["client_body", "upstream", "connect", "timeout"] {
        let series = format!("stepgate_upstream_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(sample(metrics, &series).await, 0.0, "{series}");
    }
}
