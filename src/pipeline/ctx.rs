//! The facts of one request, as every phase after normalization reads them, and the facts of
//! the connection it came on (built once per connection).

use crate::clock::UnixTime;
use crate::policy::normalize::NormalizedPath;
use crate::session::cookies;
use crate::state::{Live, SharedState};
use http::header::ACCEPT;
use http::{HeaderMap, Method};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The prefix of the gateway's own pages: never forwarded.
pub const PREFIX: &str = "/.stepgate";

/// What the gateway knows about a connection, read once when it is accepted.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The TCP peer: the client, or the proxy in front of the gateway.
    pub peer: SocketAddr,
    /// None: plain HTTP.
    pub tls: Option<TlsFacts>,
}

impl Conn {
    pub fn plain(peer: SocketAddr) -> Conn {
        Conn { peer, tls: None }
    }
}

/// What the TLS handshake settled.
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    /// The server name the client asked for (SNI), if it sent one.
    pub server_name: Option<String>,
    /// The application protocol agreed by ALPN (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
    /// The client's leaf certificate (DER), verified in the handshake against `listen.tls_client_ca`.
    pub client_cert: Option<Arc<[u8]>>,
}

/// Everything about one request that the phases after normalization need.
#[derive(Clone)]
pub struct Ctx {
    pub state: SharedState,
    pub live: Arc<Live>,
    pub now: UnixTime,
    pub request_id: String,
    pub conn: Arc<Conn>,
    /// Whether the TCP peer is in `listen.trusted_proxies`.
    pub peer_trusted: bool,
    /// The client: the peer, or the address a trusted proxy reports.
    pub client_ip: IpAddr,
    /// Answer in JSON rather than HTML.
    pub json: bool,
    /// A top-level browser navigation (GET or HEAD accepting HTML).
    pub navigation: bool,
    pub method: Method,
    pub host: String,
    pub path: NormalizedPath,
    pub query: Option<String>,
    /// The user a trusted proxy asserts (identity source "header" only).
    pub asserted: Option<String>,
    /// The groups a trusted proxy asserts (`identity.groups_header`); empty otherwise.
    pub asserted_groups: Vec<String>,
    /// The session cookie's value, if the request carries one.
    pub session_cookie: Option<String>,
    /// The `Authorization: Bearer` token, read only when `[bearer]` is configured. Never logged.
    pub bearer: Option<crate::bearer::Presented>,
    /// A verified client certificate (DER): from the TLS handshake, or a trusted proxy's
    /// RFC 9440 `Client-Cert` header checked against `listen.tls_client_ca`.
    pub client_cert: Option<crate::workload::Presented>,
    /// What the risk scorer reads off the request (the User-Agent, also for the access log;
    /// the device cookie only when `[risk]` is present).
    pub risk_ctx: RiskRequest,
}

/// The request headers the risk scorer needs, read once.
#[derive(Debug, Clone, Default)]
pub struct RiskRequest {
    pub user_agent: String,
    pub device_cookie: Option<String>,
}

impl RiskRequest {
    pub fn read(cfg: &crate::config::Config, headers: &http::HeaderMap) -> RiskRequest {
        RiskRequest {
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            device_cookie: cfg.risk.enabled.then(|| cookies::get(headers, cookies::DEVICE, cfg.public.https)).flatten(),
        }
    }
}

impl Ctx {
    /// The normalized path plus the query, as forwarded and as used for return URLs.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path.as_str(), q),
            None => self.path.as_str().to_string(),
        }
    }

    /// An API client or a workload (a bearer token, or a client certificate without a session
    /// cookie): answered 401/403, never sent to a page.
    pub fn machine_client(&self) -> bool {
        self.bearer.is_some() || (self.client_cert.is_some() && self.session_cookie.is_none())
    }

    /// How refusals to this request are written.
    pub fn reply(&self) -> crate::respond::Reply<'_> {
        crate::respond::Reply { json: self.json, request_id: &self.request_id }
    }

    /// The same request asked about again at `now`, under the config in force then.
    pub fn again_at(&self, now: UnixTime) -> Ctx {
        Ctx { live: self.state.live(), now, ..self.clone() }
    }

    /// The same client asking about another request (the challenge page asks about the one
    /// the user was challenged on).
    pub fn for_request(&self, method: Method, path: NormalizedPath, query: Option<String>) -> Ctx {
        Ctx { method, path, query, ..self.clone() }
    }
}

/// A top-level browser navigation: GET or HEAD that accepts HTML.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// Whether a normalized path belongs to the gateway (never forwarded, whatever its case).
pub fn is_gateway_path(path: &str) -> bool {
    let p = path.as_bytes();
    p.len() >= PREFIX.len()
        && p[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
        && (p.len() == PREFIX.len() || p[PREFIX.len()] == b'/')
}

pub fn new_request_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}
