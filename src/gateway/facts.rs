//! The facts of a request, read once into a `Ctx`: the request the gateway proxies, or the
//! one a front proxy asks about (forward-auth). Both go through the same normalization.

use crate::pipeline::identify::{asserted_groups, asserted_user};
use crate::pipeline::{is_navigation, Conn, Ctx, RiskRequest};
use crate::policy::method_override::query_overrides;
use crate::policy::normalize::{normalize_host, normalize_path, NormalizedPath};
use crate::proxy::client_ip::{client_ip, is_trusted};
use crate::respond::wants_json;
use crate::session::cookies;
use crate::state::{Live, SharedState};
use http::header::HOST;
use http::{HeaderMap, Method, Request};
use std::sync::Arc;

/// Why a request's facts cannot be read: a 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// What a request says about itself, before normalization.
pub struct Asked<'a> {
    pub method: Method,
    pub host: String,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// The context of a request the gateway received: the host it names (one only) and its
/// normalized path.
pub fn of_request<B>(
    state: &SharedState,
    live: Arc<Live>,
    conn: &Arc<Conn>,
    req: &Request<B>,
    request_id: String,
) -> Result<Ctx, BadRequest> {
    let host = request_host(req).map_err(|why| BadRequest(why.to_string()))?;
    let asked = Asked {
        method: req.method().clone(),
        host,
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    };
    build(state, live, conn, asked, request_id)
}

/// Normalizes what a request asks for and reads the rest of its facts.
pub fn build(
    state: &SharedState,
    live: Arc<Live>,
    conn: &Arc<Conn>,
    asked: Asked<'_>,
    request_id: String,
) -> Result<Ctx, BadRequest> {
    let path: NormalizedPath = normalize_path(asked.path).map_err(|e| BadRequest(e.to_string()))?;
    if asked.query.is_some_and(query_overrides) {
        return Err(BadRequest(
            "The query names another method (_method): send the request with the method itself.".into(),
        ));
    }
    let cfg = &live.config;
    let headers = asked.headers;
    let peer_trusted = is_trusted(conn.peer.ip(), &cfg.trusted_proxies);
    Ok(Ctx {
        state: state.clone(),
        now: state.clock.now(),
        request_id,
        conn: conn.clone(),
        peer_trusted,
        client_ip: client_ip(conn.peer, headers, &cfg.trusted_proxies),
        json: wants_json(headers),
        navigation: is_navigation(&asked.method, headers),
        method: asked.method,
        host: asked.host,
        path,
        query: asked.query.map(str::to_string),
        asserted: asserted_user(cfg, headers, peer_trusted),
        asserted_groups: asserted_groups(cfg, headers, peer_trusted),
        session_cookie: cookies::get(headers, cookies::SESSION, cfg.public.https),
        client_cert: client_cert(cfg, conn, headers, peer_trusted, state.clock.now())
            .map(crate::workload::Presented::Der),
        bearer: cfg
            .bearer
            .as_ref()
            .and_then(|_| crate::bearer::from_headers(headers))
            .map(crate::bearer::Presented::Token),
        risk_ctx: RiskRequest::read(cfg, headers),
        live,
    })
}

/// RFC 9440: the header a TLS-terminating proxy passes the client's certificate in.
pub const CLIENT_CERT: http::HeaderName = http::HeaderName::from_static("client-cert");
pub const CLIENT_CERT_CHAIN: http::HeaderName = http::HeaderName::from_static("client-cert-chain");

/// The client's certificate: the TLS handshake's, else a trusted proxy's `Client-Cert` (one
/// header, chaining to `listen.tls_client_ca`). From anyone else the header is ignored.
fn client_cert(
    cfg: &crate::config::Config,
    conn: &Conn,
    headers: &HeaderMap,
    peer_trusted: bool,
    now: crate::clock::UnixTime,
) -> Option<Arc<[u8]>> {
    let ca = cfg.client_ca.as_ref()?;
    if let Some(der) = conn.tls.as_ref().and_then(|t| t.client_cert.clone()) {
        return Some(der);
    }
    if !peer_trusted {
        return None;
    }
    let mut values = headers.get_all(CLIENT_CERT).iter();
    let (Some(v), None) = (values.next(), values.next()) else { return None };
    ca.verify_header(v.as_bytes(), now).map(Arc::from)
}

/// Normalizes a host name as the rules see it.
pub fn host(name: &str) -> Result<String, BadRequest> {
    normalize_host(name).ok_or_else(|| BadRequest("The request has no valid host.".into()))
}

/// The one host a request is for, normalized: the host the rules are matched against, and the
/// one the upstream is told (see `proxy::client`). A request that names two hosts is refused,
/// because the upstream might serve the one the gateway did not check: several Host headers
/// (RFC 9112 §3.2 says 400), or an absolute-form target or HTTP/2 `:authority` that differs
/// from the Host header (RFC 9113 §8.3.1 calls that malformed).
fn request_host<B>(req: &Request<B>) -> Result<String, &'static str> {
    const NO_HOST: &str = "The request has no valid host.";
    let mut host_headers = req.headers().get_all(HOST).iter();
    let header = host_headers.next();
    if host_headers.next().is_some() {
        return Err("The request has more than one Host header.");
    }
    let header = match header {
        Some(v) => Some(v.to_str().ok().and_then(normalize_host).ok_or(NO_HOST)?),
        None => None,
    };
    let target = match req.uri().authority() {
        Some(a) if a.as_str().contains('@') => return Err("The request's target carries user information."),
        Some(a) => Some(normalize_host(a.host()).ok_or(NO_HOST)?),
        None => None,
    };
    match (target, header) {
        (Some(t), Some(h)) if t != h => Err("The request's target and its Host header name different hosts."),
        (Some(host), _) | (None, Some(host)) => Ok(host),
        (None, None) => Err(NO_HOST),
    }
}
