//! The built-in demo app: a small HTTP/1.1 server that stands behind the gateway in
//! `stepgate demo` and in the integration tests.
//!
//! Its pages show the identity headers the gateway sets, so a person trying stepgate can see
//! what the app is told. Beside them are a few endpoints for tests: `/echo` and `/echo/...`
//! (the request as JSON), `/bytes/N` and `/sink` (streaming both ways without buffering),
//! `/ws` (an upgrade that echoes raw bytes), `/kernel` (a real WebSocket, Jupyter-style) and
//! `/slow?ms=N` (a late answer).

use crate::body::{self, Body};
use crate::respond::escape;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE, UPGRADE};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The largest form or `/echo` body the app reads into memory.
const MAX_SMALL_BODY: usize = 1024 * 1024;
/// `/bytes/N` sends its body in chunks of this size, all borrowed from one static buffer.
const CHUNK_SIZE: usize = 64 * 1024;
static CHUNK: [u8; CHUNK_SIZE] = [b'a'; CHUNK_SIZE];
/// `/slow` sleeps at most this long.
const MAX_SLOW_MS: u64 = 10 * 60 * 1000;

/// The headers the pages display: what the gateway tells the app about the request.
const IDENTITY_HEADERS: [(&str, &str); 6] = [
    ("x-stepgate-user", "X-Stepgate-User"),
    ("x-stepgate-level", "X-Stepgate-Level"),
    ("x-stepgate-auth-time", "X-Stepgate-Auth-Time"),
    ("x-stepgate-methods", "X-Stepgate-Methods"),
    ("x-stepgate-transaction", "X-Stepgate-Transaction"),
    ("x-forwarded-for", "X-Forwarded-For"),
];

/// A running demo app. It serves until [`DemoApp::shutdown`] is called or it is dropped.
pub struct DemoApp {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl DemoApp {
    /// Stops accepting connections and closes open ones once their in-flight requests are
    /// answered. Upgraded (`/ws`) connections are closed too. Returns at once.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves the demo app on `listener` in a background task.
pub async fn start(listener: TcpListener) -> DemoApp {
    let addr = listener.local_addr().expect("a bound TCP listener has a local address");
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(accept_loop(listener, stopped));
    DemoApp { addr, stop }
}

async fn accept_loop(listener: TcpListener, stopped: watch::Receiver<bool>) {
    let mut stop_signal = stopped.clone();
    loop {
        tokio::select! {
            // Also resolves when the `DemoApp` is dropped.
            _ = stop_requested(&mut stop_signal) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(serve_connection(stream, stopped.clone()));
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::debug!(error = %e, "demo app: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve_connection(stream: TcpStream, stopped: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let for_requests = stopped.clone();
    let service = service_fn(move |req| handle(req, for_requests.clone()));
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(conn);
    let mut stop_signal = stopped;
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "demo app: connection ended with an error");
            }
            return;
        }
        _ = stop_requested(&mut stop_signal) => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "demo app: connection ended with an error");
    }
}

async fn handle(req: Request<Incoming>, stopped: watch::Receiver<bool>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    let response = match path.as_str() {
        "/" if get => home(req.headers()),
        "/account" if get => account(req.headers()),
        "/transfer" if get => transfer_form(req.headers()),
        "/transfer" if method == Method::POST => transfer(req).await,
        "/pay" if get => pay::page_html(),
        "/pay.js" if get => pay::script(),
        "/" | "/account" => method_not_allowed("GET, HEAD"),
        "/transfer" => method_not_allowed("GET, HEAD, POST"),
        p if p == "/echo" || p.starts_with("/echo/") => echo(req).await,
        "/sink" if method == Method::POST => sink(req.into_body()).await,
        "/sink" => method_not_allowed("POST"),
        "/ws" => websocket(req, stopped),
        "/kernel" | "/admin/kernel" => kernel::handle(req, stopped),
        "/slow" => slow(req.uri().query()).await,
        p if p == "/admin" || p.starts_with("/admin/") => {
            if get {
                admin(p, req.headers())
            } else {
                method_not_allowed("GET, HEAD")
            }
        }
        p if p == "/public" || p.starts_with("/public/") => {
            if get {
                public(p, req.headers())
            } else {
                method_not_allowed("GET, HEAD")
            }
        }
        p if p.starts_with("/bytes/") => {
            if get {
                bytes(&p["/bytes/".len()..])
            } else {
                method_not_allowed("GET, HEAD")
            }
        }
        p => text(StatusCode::OK, format!("demo app: {p}")),
    };
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Pages

fn home(headers: &HeaderMap) -> Response<Body> {
    let content = format!(
        "<p>This is the demo app behind stepgate. Some of its pages need a stronger sign-in \
         than others; the gateway asks for it when you follow a link.</p>\
         <ul>\
         <li><a href=\"/account\">Your account</a> (needs a sign-in)</li>\
         <li><a href=\"/transfer\">Transfer money</a> (needs a second factor; each transfer is confirmed on its own)</li>\
         <li><a href=\"/pay\">Transfer money from a script</a> (the same, with <code>fetch</code> and a popup)</li>\
         <li><a href=\"/admin\">Admin</a> (needs a recent second factor)</li>\
         <li><a href=\"/kernel\">Kernel</a> (a WebSocket that needs a second factor, closed at sign-out)</li>\
         <li><a href=\"/public/\">Public pages</a> (open to everyone)</li>\
         </ul>\
         <p><a href=\"/.stepgate/account\">Your sign-in settings, and sign out</a></p>{}",
        identity_table(headers)
    );
    page("Demo app", &content)
}

fn account(headers: &HeaderMap) -> Response<Body> {
    let user = header_text(headers, "x-stepgate-user").unwrap_or_else(|| "(nobody)".to_owned());
    let content = format!(
        "<p>Signed in as <strong>{}</strong>.</p>{}\
         <p><a href=\"/.stepgate/account\">Manage your sign-in methods, or sign out</a></p>",
        escape(&user),
        identity_table(headers)
    );
    page("Your account", &content)
}

fn transfer_form(headers: &HeaderMap) -> Response<Body> {
    let content = format!(
        "<form method=\"post\" action=\"/transfer\">\
         <p><label>To <input name=\"to\" required></label></p>\
         <p><label>Amount <input name=\"amount\" inputmode=\"decimal\" required></label></p>\
         <p><button type=\"submit\">Transfer</button></p>\
         </form>{}",
        identity_table(headers)
    );
    page("Transfer money", &content)
}

async fn transfer(req: Request<Incoming>) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let json = header_text(&parts.headers, "content-type").is_some_and(|t| t.starts_with("application/json"));
    let bytes = match read_small_body(incoming).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    if json {
        return pay::json_transfer(&parts.headers, &bytes);
    }
    let form = parse_form(&bytes);
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match (field("to"), field("amount")) {
        (Some(to), Some(amount)) if !to.is_empty() && !amount.is_empty() => {
            pay::done(&parts.headers, to, amount, false)
        }
        _ => text(StatusCode::BAD_REQUEST, "the form needs the fields `to` and `amount`"),
    }
}

fn admin(path: &str, headers: &HeaderMap) -> Response<Body> {
    let content =
        format!("<p>The admin area. You are looking at <code>{}</code>.</p>{}", escape(path), identity_table(headers));
    page("Admin", &content)
}

fn public(path: &str, headers: &HeaderMap) -> Response<Body> {
    let content = format!(
        "<p>A public page: <code>{}</code>. Anyone can read it without signing in.</p>{}",
        escape(path),
        identity_table(headers)
    );
    page("Public page", &content)
}

/// A complete HTML page: escaped text only, no script, no external resources.
fn page(title: &str, content: &str) -> Response<Body> {
    let title = escape(title);
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · demo app</title></head>\n<body>\
         <nav><a href=\"/\">Home</a> · <a href=\"/account\">Account</a> · \
         <a href=\"/transfer\">Transfer</a> · <a href=\"/admin\">Admin</a> · \
         <a href=\"/public/\">Public</a> · <a href=\"/.stepgate/account\">Sign-in settings</a></nav>\
         <main><h1>{title}</h1>{content}</main></body></html>\n"
    );
    with_type(StatusCode::OK, "text/html; charset=utf-8", html)
}

/// A table of the identity headers as the app received them.
fn identity_table(headers: &HeaderMap) -> String {
    let mut out = String::from("<h2>What the gateway told the app</h2><table>");
    for (name, display) in IDENTITY_HEADERS {
        let value = match header_text(headers, name) {
            Some(v) => escape(&v),
            None => "<em>(not set)</em>".to_owned(),
        };
        out.push_str(&format!("<tr><th>{display}</th><td>{value}</td></tr>"));
    }
    out.push_str("</table>");
    out
}

/// Every value of `name`, joined with ", " (lossy for bytes that are not UTF-8).
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> =
        headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
    if values.is_empty() {
        None
    } else {
        Some(values.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Test endpoints

/// `{"method", "path", "query", "headers": {lower-case name: values joined with ", "}, "body"}`.
async fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        if let Some(joined) = header_text(&parts.headers, name.as_str()) {
            headers.insert(name.as_str().to_owned(), serde_json::Value::String(joined));
        }
    }
    let body = match read_small_body(incoming).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(response) => return response,
    };
    let value = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": body,
    });
    with_type(StatusCode::OK, "application/json", value.to_string())
}

/// `N` bytes of `a`, produced chunk by chunk as the connection takes them.
fn bytes(count: &str) -> Response<Body> {
    match count.parse::<u64>() {
        Ok(remaining) => {
            let mut response = Response::new(body::stream(RepeatBody { remaining }));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            response
        }
        Err(_) => text(StatusCode::BAD_REQUEST, "usage: /bytes/N with N a whole number of bytes"),
    }
}

/// A body of `remaining` bytes of `a`, in chunks of at most [`CHUNK_SIZE`], never buffered.
struct RepeatBody {
    remaining: u64,
}

impl http_body::Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = this.remaining.min(CHUNK_SIZE as u64) as usize;
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads the request body frame by frame, keeping only the count: `{"received": N}`.
async fn sink(mut incoming: Incoming) -> Response<Body> {
    let mut received: u64 = 0;
    while let Some(frame) = incoming.frame().await {
        match frame {
            Ok(frame) => received += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the body failed: {e}")),
        }
    }
    with_type(StatusCode::OK, "application/json", serde_json::json!({ "received": received }).to_string())
}

/// Answers an HTTP/1.1 WebSocket-style upgrade with 101 and then echoes raw bytes (no
/// WebSocket framing) until the client closes or the app shuts down.
fn websocket(mut req: Request<Incoming>, mut stopped: watch::Receiver<bool>) -> Response<Body> {
    if !is_websocket_upgrade(&req) {
        let mut response = text(StatusCode::UPGRADE_REQUIRED, "this endpoint needs `Upgrade: websocket`");
        response.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        return response;
    }
    let accept = req
        .headers()
        .get(http::header::SEC_WEBSOCKET_KEY)
        .map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()));
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "demo app: upgrade did not complete");
                return;
            }
        };
        let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
        tokio::select! {
            result = tokio::io::copy(&mut reader, &mut writer) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "demo app: echo ended with an error");
                }
            }
            _ = stop_requested(&mut stopped) => {}
        }
        let _ = writer.shutdown().await;
    });
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    response.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Some(accept) = accept.and_then(|a| HeaderValue::from_str(&a).ok()) {
        response.headers_mut().insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

pub(crate) fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    let tokens = |name| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    req.version() == Version::HTTP_11
        && tokens(CONNECTION).iter().any(|t| t == "upgrade")
        && tokens(UPGRADE).iter().any(|t| t == "websocket")
}

/// `/slow?ms=N`: answers after N milliseconds.
async fn slow(query: Option<&str>) -> Response<Body> {
    let ms = parse_form(query.unwrap_or("").as_bytes())
        .into_iter()
        .find(|(k, _)| k == "ms")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .filter(|ms| *ms <= MAX_SLOW_MS);
    match ms {
        Some(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(StatusCode::OK, format!("slept {ms} ms"))
        }
        None => text(StatusCode::BAD_REQUEST, format!("usage: /slow?ms=N with N at most {MAX_SLOW_MS}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Resolves once shutdown is asked for, or the [`DemoApp`] is dropped.
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    // The `Ref` this returns is not `Send`; drop it here, before any caller's next await.
    let _ = stopped.wait_for(|s| *s).await;
}

/// Collects a body of at most [`MAX_SMALL_BODY`] bytes, or answers 413 / 400.
async fn read_small_body(incoming: Incoming) -> Result<Bytes, Response<Body>> {
    match Limited::new(incoming, MAX_SMALL_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => {
            Err(text(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_SMALL_BODY} bytes")))
        }
        Err(e) => Err(text(StatusCode::BAD_REQUEST, format!("reading the body failed: {e}"))),
    }
}

/// Parses `application/x-www-form-urlencoded` (also a query string): `+` is a space, `%XX` a
/// byte, invalid UTF-8 replaced. Pairs keep their order; a key without `=` has an empty value.
fn parse_form(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|b| *b == b'=') {
            Some(i) => (form_decode(&pair[..i]), form_decode(&pair[i + 1..])),
            None => (form_decode(pair), String::new()),
        })
        .collect()
}

fn form_decode(raw: &[u8]) -> String {
    let spaced: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    percent_encoding::percent_decode(&spaced).decode_utf8_lossy().into_owned()
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    with_type(status, "text/plain; charset=utf-8", body.into())
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

mod kernel;
mod pay;

#[cfg(test)]
mod tests;
