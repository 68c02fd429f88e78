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
