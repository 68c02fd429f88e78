//! Forwarding against a real hyper upstream on an ephemeral port.

use super::{config, ForwardTarget, ProxyError, Upgrade, UpstreamClient};
use crate::body::{self, Body, BoxError};
use crate::respond::proxy_error_response;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

const MB20: usize = 20 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// Only a guard against a hung test; nothing asserts how fast anything is.
const PATIENCE: Duration = Duration::from_secs(30);

/// A body fed through a channel: proves nothing is collected before it is sent.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn channel_body(total: usize) -> Body {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'x'; CHUNK]);
        let mut left = total;
        while left > 0 {
            let n = left.min(CHUNK);
            if tx.send(chunk.slice(..n)).await.is_err() {
                return;
            }
            left -= n;
        }
    });
    body::stream(ChannelBody(rx))
}

#[derive(Default)]
struct Upstream {
    connections: AtomicUsize,
    /// Connections open now.
    open: AtomicUsize,
    /// `/gated` sends its second chunk only after this is notified.
    gate: Notify,
}

async fn upstream_handle(mut req: Request<Incoming>, state: Arc<Upstream>) -> Result<Response<Body>, Infallible> {
    let resp = match req.uri().path() {
        "/count" => {
            let mut n = 0usize;
            let body = req.body_mut();
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(d) = frame.into_data() {
                    n += d.len();
                }
            }
            let mut r = Response::new(channel_body(MB20));
            r.headers_mut().insert("x-received", n.into());
            r
        }
        "/echo-headers" => {
            let mut out = format!(":version: {:?}\n:path: {}\n", req.version(), req.uri());
            for (k, v) in req.headers() {
                out.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
            }
            let mut r = Response::new(body::full(out));
            let h = r.headers_mut();
            h.insert("x-internal", "1".parse().unwrap());
            h.insert("connection", "x-internal".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("proxy-authenticate", "Basic".parse().unwrap());
            h.insert("x-public", "yes".parse().unwrap());
            r
        }
        "/sleep" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::new(body::full("late"))
        }
        "/gated" => {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first")).await;
                state.gate.notified().await;
                let _ = tx.send(Bytes::from_static(b"second")).await;
            });
            Response::new(body::stream(ChannelBody(rx)))
        }
        "/ws" if req.headers().contains_key("upgrade") => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = on.await {
                    let mut io = TokioIo::new(up);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut().insert("connection", "upgrade".parse().unwrap());
            let agreed = if req.uri().query() == Some("h2c") { "h2c" } else { "websocket" };
            r.headers_mut().insert("upgrade", agreed.parse().unwrap());
            r
        }
        _ => Response::new(body::full("plain")),
    };
    Ok(resp)
}

async fn start_upstream() -> (SocketAddr, Arc<Upstream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Upstream::default());
    let st = state.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            st.connections.fetch_add(1, Ordering::SeqCst);
            st.open.fetch_add(1, Ordering::SeqCst);
            let st = st.clone();
            tokio::spawn(async move {
                let svc = service_fn({
                    let st = st.clone();
                    move |req| upstream_handle(req, st.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
                st.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, state)
}

fn client_for(addr: SocketAddr, response_timeout: Duration) -> UpstreamClient {
    UpstreamClient::new(&config_for(addr, response_timeout))
}

fn config_for(addr: SocketAddr, response_timeout: Duration) -> config::Upstream {
    config::Upstream {
        authority: addr.to_string().parse().unwrap(),
        scheme: http::uri::Scheme::HTTP,
        connect_timeout: Duration::from_secs(2),
        response_timeout,
        pool_idle_timeout: Duration::from_secs(30),
        pool_max_idle_per_host: 8,
        max_connections: 64,
        pool_timeout: Duration::from_secs(5),
        allow_underscores_in_headers: false,
    }
}

fn target(pq: &str, websocket: bool) -> ForwardTarget {
    let upgrade = if websocket { Upgrade::WebSocket { close_when: None } } else { Upgrade::No };
    ForwardTarget { path_and_query: pq.to_string(), upgrade }
}

fn get(pq: &str) -> Request<Body> {
    Request::builder().uri(pq).header("host", "app.example").body(body::empty()).unwrap()
}

async fn text(resp: Response<Body>) -> String {
    String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// A gateway in front of the upstream that forwards everything (HTTP/1.1 and HTTP/2, upgrades on).
async fn start_gateway(client: UpstreamClient) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let client = client.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let client = client.clone();
                    async move {
                        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
                        let req = req.map(body::from_client);
                        Ok::<_, Infallible>(match client.forward(req, target(&pq, true)).await {
                            Ok(r) => r,
                            Err(e) => proxy_error_response(&e, crate::respond::Reply { json: true, request_id: "t" }),
                        })
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn streams_20mb_both_ways() {
    let (addr, _) = start_upstream().await;
    let client = client_for(addr, Duration::from_secs(20));
    let req = Request::builder().method("POST").uri("/count").body(channel_body(MB20)).unwrap();
    let resp = tokio::time::timeout(PATIENCE, client.forward(req, target("/count", false))).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-received"], MB20.to_string().as_str());
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            n += d.len();
        }
    }
    assert_eq!(n, MB20);
}

#[tokio::test]
async fn response_body_is_relayed_before_it_ends() {
    let (addr, state) = start_upstream().await;
    let client = client_for(addr, Duration::from_secs(5));
    let resp = client.forward(get("/gated"), target("/gated", false)).await.unwrap();
    let mut body = resp.into_body();
    // If forward buffered the body, this first chunk would never come: the upstream holds the
    // rest until we have seen it.
    let first = tokio::time::timeout(PATIENCE, body.frame()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first");
    state.gate.notify_one();
    let rest = tokio::time::timeout(PATIENCE, body.collect()).await.unwrap().unwrap().to_bytes();
    assert_eq!(rest, "second");
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let (addr, state) = start_upstream().await;
    let client = client_for(addr, Duration::from_secs(5));
    for _ in 0..20 {
        let resp = client.forward(get("/plain"), target("/plain", false)).await.unwrap();
        assert_eq!(text(resp).await, "plain");
    }
    assert_eq!(state.connections.load(Ordering::SeqCst), 1);
}

/// A connection idle for longer than `pool_idle_timeout` is closed by the pool's reaper, and
/// the next request opens a new one.
#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (addr, state) = start_upstream().await;
    let mut cfg = config_for(addr, Duration::from_secs(5));
    cfg.pool_idle_timeout = Duration::from_millis(200);
    let client = UpstreamClient::new(&cfg);
    assert_eq!(text(client.forward(get("/plain"), target("/plain", false)).await.unwrap()).await, "plain");
    assert_eq!(state.open.load(Ordering::SeqCst), 1, "kept alive");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(state.open.load(Ordering::SeqCst), 0, "the idle connection was closed");
    assert_eq!(text(client.forward(get("/plain"), target("/plain", false)).await.unwrap()).await, "plain");
    assert_eq!(state.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn nothing_listening_is_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client_for(addr, Duration::from_secs(5));
    let err = client.forward(get("/"), target("/", false)).await.unwrap_err();
    assert!(matches!(err, ProxyError::Connect { .. }), "{err:?}");
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let (addr, _) = start_upstream().await;
    let client = client_for(addr, Duration::from_millis(200));
    let err = client.forward(get("/sleep"), target("/sleep", false)).await.unwrap_err();
    assert!(matches!(err, ProxyError::Timeout { .. }), "{err:?}");
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn hop_by_hop_removed_both_ways_and_host_kept() {
    let (addr, _) = start_upstream().await;
    let client = client_for(addr, Duration::from_secs(5));
    let req = Request::builder()
        .uri("/ignored-by-forward")
        .header("host", "app.example")
        .header("connection", "keep-alive, X-Secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("upgrade", "websocket")
        .header("x-keep", "1")
        .body(body::empty())
        .unwrap();
    // upgrade=false: the Upgrade header goes and the upstream sees a plain request.
    let resp = client.forward(req, target("/echo-headers?a=%2F&b", false)).await.unwrap();
    let h = resp.headers();
    for gone in ["x-internal", "connection", "keep-alive", "proxy-authenticate"] {
        assert!(!h.contains_key(gone), "{gone} relayed to the client");
    }
    assert_eq!(h["x-public"], "yes");
    let seen = text(resp).await;
    assert!(seen.contains(":path: /echo-headers?a=%2F&b\n"), "{seen}");
    assert!(seen.contains("host: app.example\n"), "{seen}");
    assert!(seen.contains("x-keep: 1\n"), "{seen}");
    for gone in ["x-secret", "keep-alive", "te:", "proxy-authorization", "upgrade", "connection: keep-alive"] {
        assert!(!seen.contains(gone), "{gone} reached the upstream: {seen}");
    }
}

#[tokio::test]
async fn http2_client_is_forwarded_as_http11() {
    let (addr, _) = start_upstream().await;
    let gw = start_gateway(client_for(addr, Duration::from_secs(5))).await;
    let stream = TcpStream::connect(gw).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .version(Version::HTTP_2)
        .uri("http://app.example/echo-headers")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(body::empty())
        .unwrap();
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(req)).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(seen.contains(":version: HTTP/1.1\n"), "{seen}");
    assert!(seen.contains("host: app.example\n"), "{seen}");
    assert!(seen.contains("cookie: a=1; b=2\n"), "{seen}");
}

#[tokio::test]
async fn upgrade_echo_through_forward() {
    let (addr, _) = start_upstream().await;
    let gw = start_gateway(client_for(addr, Duration::from_secs(5))).await;
    let mut s = TcpStream::connect(gw).await.unwrap();
    s.write_all(WS_HANDSHAKE).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    for msg in [&b"hello"[..], b"stepgate tunnel"] {
        s.write_all(msg).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(PATIENCE, s.read_exact(&mut buf)).await.unwrap().unwrap();
        assert_eq!(buf, msg);
    }
}

const WS_HANDSHAKE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Reads one response head from a raw connection.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut byte)).await.unwrap().unwrap();
        assert_eq!(n, 1, "closed before the response head ended: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

#[tokio::test]
async fn a_101_to_another_protocol_than_websocket_is_not_relayed() {
    let (addr, _) = start_upstream().await;
    let gw = start_gateway(client_for(addr, Duration::from_secs(5))).await;
    let mut s = TcpStream::connect(gw).await.unwrap();
    let req = String::from_utf8(WS_HANDSHAKE.to_vec()).unwrap().replace("GET /ws ", "GET /ws?h2c ");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 502"), "{head}");
}

#[tokio::test]
async fn a_101_without_an_agreed_upgrade_is_not_relayed() {
    let (addr, _) = start_upstream().await;
    let client = client_for(addr, Duration::from_secs(5));
    // The upstream answers 101 to a request that asked for an upgrade the caller did not allow.
    let req = Request::builder()
        .uri("/ws")
        .header("host", "app.example")
        .header("connection", "upgrade")
        .header("upgrade", "h2c")
        .body(body::empty())
        .unwrap();
    let resp = client.forward(req, target("/ws", false)).await;
    // Upgrade::No strips the headers: the upstream sees a plain GET and answers plainly.
    assert_eq!(resp.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_malformed_client_body_is_the_clients_error() {
    let (addr, _) = start_upstream().await;
    let gw = start_gateway(client_for(addr, Duration::from_secs(5))).await;
    for bad in ["zz\r\nabc\r\n0\r\n\r\n", "5\r\nab\r\n0\r\n\r\n", "-1\r\n", "3\r\nabcXY\r\n0\r\n\r\n"] {
        let mut s = TcpStream::connect(gw).await.unwrap();
        let req = format!(
            "POST /count HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n{bad}"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let _ = s.shutdown().await;
        let mut all = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut all)).await.unwrap();
        let text = String::from_utf8_lossy(&all).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 400"), "chunk {bad:?}: {text}");
    }
}
