//! Slow and idle clients: a request's headers must arrive within `listen.header_timeout`, and a
//! kept-alive connection is let go when no next request starts within it (slowloris).

use crate::support::{Harness, Options, HOST};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn harness() -> Options {
    Options { listen_extra: "header_timeout = \"300ms\"".into(), ..Options::default() }
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("the gateway closes the connection")
        .ok();
    (String::from_utf8_lossy(&buf).into_owned(), start.elapsed())
}

#[tokio::test]
async fn headers_that_trickle_in_too_slowly_are_cut_off() {
    let h = Harness::with(harness()).await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    stream.write_all(format!("GET /public/x HTTP/1.1\r\nHost: {HOST}\r\n").as_bytes()).await.unwrap();
    let (answer, after) = read_until_closed(&mut stream).await;
    assert!(!answer.contains("200 OK"), "an unfinished request is not served: {answer}");
    assert!(after < Duration::from_secs(5), "closed after {after:?}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_let_go_and_a_prompt_one_is_served() {
    let h = Harness::with(harness()).await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    stream.write_all(format!("GET /public/x HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await.unwrap();
    let (answer, after) = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "a prompt request is served: {answer}");
    assert!(answer.contains("A public page"), "{answer}");
    assert!(after < Duration::from_secs(5), "the idle connection was closed after {after:?}");
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed_after_the_header_timeout() {
    let h = Harness::with(harness()).await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    let (answer, after) = read_until_closed(&mut stream).await;
    assert_eq!(answer, "", "nothing is answered to a silent client");
    assert!(after < Duration::from_secs(5), "closed after {after:?}");
}

#[tokio::test]
async fn a_connection_stalled_in_the_http2_preface_is_closed_after_the_header_timeout() {
    // The first bytes of the HTTP/2 preface: the server cannot tell HTTP/1.1 from HTTP/2 yet.
    let h = Harness::with(harness()).await;
    let mut stream = TcpStream::connect(h.addr).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let (answer, after) = read_until_closed(&mut stream).await;
    assert_eq!(answer, "", "{answer}");
    assert!(after < Duration::from_secs(5), "closed after {after:?}");
}

#[tokio::test]
async fn an_http2_connection_that_opens_no_stream_is_closed_after_the_header_timeout() {
    let h = Harness::with(harness()).await;
    let stream = TcpStream::connect(h.addr).await.unwrap();
    let (_send, conn) = h2c_handshake(stream).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the gateway closes an HTTP/2 connection on which no request came");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_not() {
    let opts =
        Options { listen_extra: "header_timeout = \"5s\"\nidle_timeout = \"400ms\"".into(), ..Options::default() };
    let h = Harness::with(opts).await;
    let stream = TcpStream::connect(h.addr).await.unwrap();
    let (mut send, conn) = h2c_handshake(stream).await;
    let conn = tokio::spawn(conn);
    // A request that takes longer than the idle timeout: in flight, so not idle.
    let resp = send.send_request(h2_get("/slow?ms=1200")).await.expect("the slow request is answered");
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.expect("the whole body").to_bytes();
    assert!(!body.is_empty());
    let resp = send.send_request(h2_get("/public/x")).await.expect("a second request on the same connection");
    assert_eq!(resp.status(), 200);
    drop(resp);
    // Now idle: GOAWAY, then the connection ends (well before the 5 s header timeout would).
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection is closed");
    assert!(started.elapsed() < Duration::from_secs(4), "closed by the idle timeout, after {:?}", started.elapsed());
}

fn h2_get(path: &str) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    http::Request::get(format!("http://{HOST}{path}")).body(http_body_util::Empty::new()).unwrap()
}

/// An HTTP/2 cleartext connection with prior knowledge; the connection future ends when the
/// server closes it.
async fn h2c_handshake(
    stream: TcpStream,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let io = hyper_util::rt::TokioIo::new(stream);
    let (send, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
        .await
        .expect("an HTTP/2 handshake with the gateway");
    (send, async move {
        let _ = conn.await;
    })
}
