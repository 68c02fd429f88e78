//! Hand-written HTTP/1.1 over TCP: for request targets a client library would "fix".

use super::{HOST, PATIENCE};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Sends `GET {target}` with `Connection: close` and the extra header lines; reads to EOF.
pub async fn get(addr: SocketAddr, target: &str, extra: &[(&str, &str)]) -> RawResp {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    send(addr, req.as_bytes()).await
}

/// Writes `request` as is, reads until the server closes, parses the status line.
pub async fn send(addr: SocketAddr, request: &[u8]) -> RawResp {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the gateway");
    stream.write_all(request).await.expect("write the request");
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut buf))
        .await
        .expect("the gateway answers and closes in time")
        .expect("read the response");
    parse(&buf)
}

pub fn parse(buf: &[u8]) -> RawResp {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = parse_status(&head);
    RawResp { status, head, body: buf[split + 4..].to_vec() }
}

/// The code from `HTTP/1.1 200 OK`.
pub fn parse_status(head: &str) -> u16 {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or("");
    assert!(version.starts_with("HTTP/1."), "not an HTTP/1 status line: {line:?}");
    parts.next().and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status code in {line:?}"))
}
