//! A small HTTP/1.1 client: one connection per request, a cookie jar, form helpers.

use super::{html, HOST, PATIENCE};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE, SET_COOKIE};
use http::{Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::net::TcpStream;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ReqBody = BoxBody<Bytes, BoxError>;

pub fn empty() -> ReqBody {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed()
}

pub fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A response read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn location(&self) -> &str {
        self.header("location").unwrap_or_else(|| panic!("no Location in {} response: {:?}", self.status, self.headers))
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// The `/echo` headers object.
    pub fn echoed_headers(&self) -> serde_json::Map<String, serde_json::Value> {
        assert_eq!(self.status, StatusCode::OK, "echo failed: {}", self.body);
        self.json()["headers"].as_object().cloned().expect("echo has a headers object")
    }
    /// The value of the hidden `csrf` field on this page.
    pub fn csrf(&self) -> String {
        html::input_value(&self.body, "csrf").unwrap_or_else(|| panic!("no csrf field on page: {}", self.body))
    }
}

/// A browser-ish client: keeps the gateway's cookies, sends `Host: stepgate.test`.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub jar: BTreeMap<String, String>,
    /// Headers sent with every request (e.g. a trusted proxy's X-Forwarded-For, a User-Agent).
    pub always: Vec<(String, String)>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, jar: BTreeMap::new(), always: Vec::new() }
    }

    /// The same cookies, aimed at another gateway (after a restart).
    pub fn to(&self, addr: SocketAddr) -> Client {
        Client { addr, jar: self.jar.clone(), always: self.always.clone() }
    }

    /// Sends `name: value` with every request from now on (replacing an earlier value).
    pub fn always_send(&mut self, name: &str, value: &str) {
        self.always.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.always.push((name.to_string(), value.to_string()));
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(String::as_str)
    }

    pub fn session(&self) -> Option<String> {
        self.cookie("stepgate_session").map(str::to_string)
    }

    fn cookie_header(&self) -> Option<String> {
        (!self.jar.is_empty()).then(|| self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
    }

    /// Sends a request; the response headers arrive, the body is left unread.
    pub async fn send_raw(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
    ) -> hyper::Response<Incoming> {
        let mut req = Request::builder().method(method).uri(path).header("host", HOST);
        if let Some(c) = self.cookie_header() {
            req = req.header(COOKIE, c);
        }
        let always = self.always.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in always.chain(headers.iter().copied()) {
            req = req.header(
                HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
                HeaderValue::from_str(v).expect("a header value"),
            );
        }
        let req = req.body(body).expect("a request");
        let stream = TcpStream::connect(self.addr).await.expect("connect to the gateway");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("HTTP/1.1 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
            .await
            .expect("the gateway answers in time")
            .expect("the gateway answers");
        self.take_cookies(resp.headers());
        resp
    }

    pub fn take_cookies(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else { continue };
            let deleted = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            if deleted || value.is_empty() {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }

    pub async fn request(&mut self, method: Method, path: &str, headers: &[(&str, &str)], body: ReqBody) -> Resp {
        let resp = self.send_raw(method, path, headers, body).await;
        let (parts, incoming) = resp.into_parts();
        let bytes = tokio::time::timeout(PATIENCE, incoming.collect())
            .await
            .expect("the body arrives in time")
            .expect("the body arrives")
            .to_bytes();
        Resp { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    /// A GET as an API client would send it (no Accept: the gateway answers JSON).
    pub async fn get(&mut self, path: &str) -> Resp {
        self.request(Method::GET, path, &[], empty()).await
    }

    pub async fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request(Method::GET, path, headers, empty()).await
    }

    /// A GET as a browser navigation (Accept: text/html).
    pub async fn browse(&mut self, path: &str) -> Resp {
        self.request(Method::GET, path, &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")], empty()).await
    }

    /// A urlencoded POST, as a browser form submission.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        self.post_form_with(path, fields, &[]).await
    }

    pub async fn post_form_with(&mut self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
        let body = form(fields);
        let mut all = vec![
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ];
        all.extend_from_slice(headers);
        self.request(Method::POST, path, &all, full(body)).await
    }

    /// The login page for `return_to`, then the form posted: the 303 (or the error page).
    pub async fn sign_in_returning(&mut self, user: &str, password: &str, return_to: &str) -> Resp {
        let page = self.browse(&format!("/.stepgate/login?return={}", enc(return_to))).await;
        assert_eq!(page.status, StatusCode::OK, "login page: {}", page.body);
        let csrf = page.csrf();
        self.post_form(
            "/.stepgate/login",
            &[("csrf", &csrf), ("username", user), ("password", password), ("return", return_to)],
        )
        .await
    }

    /// Signs in as the test user; asserts it worked.
    pub async fn sign_in(&mut self) -> Resp {
        let r = self.sign_in_returning(super::USER, super::PASSWORD, "/").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "sign-in failed: {}", r.body);
        assert!(self.session().is_some(), "no session cookie after sign-in");
        r
    }

    /// A CSRF token for this client's forms (from the account or login page).
    pub async fn csrf_token(&mut self) -> String {
        let page = self.browse("/.stepgate/login").await;
        page.csrf()
    }
}

pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn form(fields: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}
