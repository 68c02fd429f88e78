//! The request path, as fixed phases:
//! normalize → /.stepgate/ pages? → classify → identify → risk → decide → act (forward | challenge | deny) → audit.

pub mod identify;
pub mod risk;
pub mod route;
pub mod stepup;
pub mod tunnel;

use crate::audit::{self, Kind};
use crate::body::{self, Body};
use crate::clock::UnixTime;
use crate::policy::decide::{decide_with_risk, effective_level, Decision};
use crate::policy::level::{Level, Proof};
use crate::policy::normalize::{normalize_host, normalize_path, NormalizedPath};
use crate::policy::routes::Action;
use crate::proxy::client_ip::{client_ip, is_trusted};
use crate::proxy::headers::{remove_hop_by_hop, set_forwarded, strip_spoofable_headers, RequestHygiene};
use crate::proxy::upgrade::is_websocket_handshake;
use crate::proxy::{ForwardTarget, Upgrade};
use crate::respond::{error_page, proxy_error_response, wants_json};
use crate::session::cookies;
use crate::state::{Live, SharedState};
use http::header::{HeaderName, HeaderValue, HOST};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use identify::Who;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub const PREFIX: &str = "/.stepgate";

pub const X_USER: HeaderName = HeaderName::from_static("x-stepgate-user");
pub const X_LEVEL: HeaderName = HeaderName::from_static("x-stepgate-level");
pub const X_AUTH_TIME: HeaderName = HeaderName::from_static("x-stepgate-auth-time");
pub const X_METHODS: HeaderName = HeaderName::from_static("x-stepgate-methods");
pub const X_RISK: HeaderName = HeaderName::from_static("x-stepgate-risk");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything about one request that the phases after normalization need.
pub struct Ctx {
    pub state: SharedState,
    pub live: Arc<Live>,
    pub now: UnixTime,
    pub request_id: String,
    pub client_ip: IpAddr,
    pub json: bool,
    pub host: String,
    pub path: NormalizedPath,
    pub query: Option<String>,
    /// The user a trusted proxy asserts (identity source "header" only).
    pub asserted: Option<String>,
    /// What the risk scorer reads off the request (empty when `[risk]` is absent).
    pub risk_ctx: RiskRequest,
}

/// The request headers the risk scorer needs, read once.
#[derive(Debug, Clone, Default)]
pub struct RiskRequest {
    pub user_agent: String,
    pub device_cookie: Option<String>,
}

impl RiskRequest {
    fn read(cfg: &crate::config::Config, headers: &http::HeaderMap) -> RiskRequest {
        if !cfg.risk.enabled {
            return RiskRequest::default();
        }
        RiskRequest {
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            device_cookie: cookies::get(headers, cookies::DEVICE, cfg.public.https),
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

pub async fn handle(state: SharedState, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let live = state.live();
    let cfg = &live.config;
    let now = state.clock.now();
    let peer_trusted = is_trusted(peer.ip(), &cfg.trusted_proxies);
    let json = wants_json(req.headers());
    // CONNECT asks the gateway to open a tunnel to a place of the client's choosing: never.
    // Checked before normalizing, since its target is no path.
    if route::method_refused(req.method()) {
        return method_not_allowed(json);
    }
    // The client's hop-by-hop headers (and those its `Connection` names) belong to this hop:
    // removed before anything reads the request and before the gateway adds its own headers,
    // so a `Connection` token can never remove one of those. Only a WebSocket handshake may
    // switch protocols; any other `Upgrade` goes with the hop-by-hop headers.
    let websocket = is_websocket_handshake(req.method(), req.version(), req.headers());
    remove_hop_by_hop(req.headers_mut());
    let ip = client_ip(peer, req.headers(), &cfg.trusted_proxies);

    // Normalize: the path matched is the path forwarded. What cannot be normalized is refused.
    let host = match request_host(&req) {
        Ok(h) => h,
        Err(why) => return error_page(StatusCode::BAD_REQUEST, "Bad request", why, json),
    };
    let path = match normalize_path(req.uri().path()) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Bad request", &e.to_string(), json),
    };
    let query = req.uri().query().map(str::to_string);
    let ctx = Ctx {
        state: state.clone(),
        live: live.clone(),
        now,
        request_id: new_request_id(),
        client_ip: ip,
        json,
        host,
        path,
        query,
        asserted: identify::asserted_user(cfg, req.headers(), peer_trusted),
        risk_ctx: RiskRequest::read(cfg, req.headers()),
    };
    let rule = match route::route(cfg, &ctx.host, &ctx.path, req.method(), ctx.client_ip) {
        // Refused before normalizing (above); kept so the match stays the one for every phase.
        route::Routed::MethodRefused => return method_not_allowed(json),
        route::Routed::DeniedNetwork(net) => {
            let reason = format!("client address in risk.location.deny_networks ({net})");
            audit_decision(&ctx, None, "-", "deny", &reason);
            return error_page(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Requests from your network are not accepted.",
                json,
            );
        }
        route::Routed::GatewayPage => return crate::web::handle(&ctx, req).await,
        route::Routed::Rule(rule) => rule,
    };

    // Identity headers: the asserted one was read above (trusted proxies only); strip them all,
    // and any method override.
    let asserted = ctx.asserted.clone();
    let identity_header = match &cfg.identity {
        crate::config::Identity::Header { header } => Some(header.clone()),
        _ => None,
    };
    let hygiene = RequestHygiene {
        identity_header: identity_header.as_ref(),
        keep_underscores: cfg.upstream.allow_underscores_in_headers,
    };
    strip_spoofable_headers(req.headers_mut(), hygiene);

    let public = matches!(&rule.action, Action::Require(r) if r.level == Level::None);
    let who = if public && cfg.identity_is_builtin() && !has_session_cookie(&ctx, &req) {
        None
    } else {
        match identify::identify(&*state.store, cfg, req.headers(), asserted, now).await {
            Ok(w) => w,
            Err(e) if public => {
                tracing::warn!(request_id = %ctx.request_id, error = %e, "store unavailable; public route forwarded without identity");
                None
            }
            Err(e) => return store_unavailable(&ctx, &rule.name, &e),
        }
    };

    // Public routes are not scored: they need nobody, and scoring would cost them a store read.
    let scored = if public {
        risk::Scored::default()
    } else {
        match risk::score(&ctx, rule, who.as_ref(), risk::Count::ThisRequest).await {
            Ok(s) => s,
            Err(e) => return store_unavailable(&ctx, &rule.name, &e),
        }
    };
    let decision = decide_with_risk(&rule.action, who.as_ref().map(|w| w.proofs.as_slice()), now, &scored.verdict);
    let user = who.as_ref().map(|w| w.user.as_str());
    let audit = |decision: &str, reason: &str| audit_decision_scored(&ctx, user, &rule.name, decision, reason, &scored);
    match decision {
        Decision::Forward { proof } => {
            if !public {
                audit("forward", proof.as_ref().map_or("", |p| p.method.as_str()));
            }
            let risk_header = (!public).then_some(scored.assessment.score);
            if let (Some(w), false) = (&who, public) {
                if let Err(e) = risk::remember_request(&ctx, w, scored.clone()).await {
                    tracing::warn!(request_id = %ctx.request_id, error = %e, "risk history not updated");
                }
            }
            let upgrade = if websocket {
                Upgrade::WebSocket { close_when: tunnel_watch(&ctx, &req, who.as_ref(), &scored) }
            } else {
                Upgrade::No
            };
            forward(&ctx, req, who.as_ref(), risk_header, peer.ip(), peer_trusted, upgrade).await
        }
        Decision::SignIn { need } => {
            audit("signin", "no session");
            stepup::respond(&ctx, req.method(), req.headers(), &need, stepup::Need::SignIn)
        }
        Decision::StepUp { need } => {
            let why = if scored.verdict.raise.is_some() || scored.verdict.distrust_elevation {
                "risk raised the requirement"
            } else {
                "proof too weak or too old"
            };
            audit("challenge", why);
            stepup::respond(&ctx, req.method(), req.headers(), &need, stepup::Need::StepUp)
        }
        Decision::Deny { reason } => {
            audit("deny", reason);
            error_page(StatusCode::FORBIDDEN, "Forbidden", "This address is not available through the gateway.", json)
        }
    }
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

/// 405 for a method the gateway never serves (`CONNECT`). The connection is closed: what
/// follows a CONNECT is meant as tunnel bytes, never to be read as requests.
fn method_not_allowed(json: bool) -> Response<Body> {
    let mut resp =
        error_page(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", "CONNECT is not accepted here.", json);
    let h = resp.headers_mut();
    h.insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
    h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A protected route while the store cannot answer: fail closed with 503.
fn store_unavailable(ctx: &Ctx, rule: &str, e: &crate::store::StoreError) -> Response<Body> {
    tracing::error!(request_id = %ctx.request_id, error = %e, "store unavailable; protected route refused");
    audit_decision(ctx, None, rule, "unavailable", "store unavailable");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The gateway cannot check your session right now. Please try again shortly.",
        ctx.json,
    )
}

fn has_session_cookie(ctx: &Ctx, req: &Request<Incoming>) -> bool {
    cookies::get(req.headers(), cookies::SESSION, ctx.live.config.public.https).is_some()
}

fn audit_decision(ctx: &Ctx, user: Option<&str>, rule: &str, decision: &str, reason: &str) {
    audit_decision_scored(ctx, user, rule, decision, reason, &risk::Scored::default());
}

fn audit_decision_scored(
    ctx: &Ctx,
    user: Option<&str>,
    rule: &str,
    decision: &str,
    reason: &str,
    scored: &risk::Scored,
) {
    let reasons = scored.assessment.reasons();
    audit::emit(&audit::Record {
        kind: Kind::Decision,
        request_id: &ctx.request_id,
        user,
        client_ip: ctx.client_ip,
        rule: Some(rule),
        decision,
        reason,
        risk: Some((scored.assessment.score, reasons.as_str())),
    });
}

/// For a WebSocket opened by a signed-in user: the watch that closes it when the proof that
/// opened it ends (see `tunnel`). Anonymous tunnels (public routes) have nothing to end.
fn tunnel_watch(
    ctx: &Ctx,
    req: &Request<Incoming>,
    who: Option<&Who>,
    scored: &risk::Scored,
) -> Option<crate::proxy::upgrade::CloseWhen> {
    let who = who?;
    let (session, _) = who.session.as_ref()?;
    let mut cookies = http::HeaderMap::new();
    for v in req.headers().get_all(http::header::COOKIE) {
        cookies.append(http::header::COOKIE, v.clone());
    }
    let opened = tunnel::Opened {
        host: ctx.host.clone(),
        path: ctx.path.clone(),
        method: req.method().clone(),
        cookies,
        asserted: ctx.asserted.clone(),
        session: session.clone(),
        verdict: scored.verdict,
        user: who.user.clone(),
        request_id: ctx.request_id.clone(),
        client_ip: ctx.client_ip,
    };
    Some(tunnel::watch(ctx.state.clone(), opened))
}

/// The identity headers the app receives, from the strongest proof the session holds.
fn identity_headers(who: &Who) -> Vec<(HeaderName, String)> {
    let strongest: Option<&Proof> = who.proofs.iter().max_by_key(|p| (effective_level(p), p.auth_time));
    let mut methods: Vec<&str> = who.proofs.iter().map(|p| p.method.as_str()).collect();
    methods.sort_unstable();
    methods.dedup();
    vec![
        (X_USER, who.user.clone()),
        (X_LEVEL, strongest.map_or(Level::None, effective_level).as_str().to_string()),
        (X_AUTH_TIME, strongest.map_or(0, |p| p.auth_time.0).to_string()),
        (X_METHODS, methods.join(",")),
    ]
}

async fn forward(
    ctx: &Ctx,
    mut req: Request<Incoming>,
    who: Option<&Who>,
    risk_score: Option<u8>,
    peer_ip: IpAddr,
    peer_trusted: bool,
    upgrade: Upgrade,
) -> Response<Body> {
    let cfg = &ctx.live.config;
    let headers = req.headers_mut();
    cookies::strip_own(headers, cfg.public.https);
    if let Some(who) = who {
        for (name, value) in identity_headers(who) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
    if let Some(score) = risk_score {
        headers.insert(X_RISK, HeaderValue::from(u16::from(score)));
    }
    let proto = if cfg.public.https { "https" } else { "http" };
    // The chain grows by the hop that connected to us, not by the client address read from it.
    set_forwarded(headers, peer_ip, proto, &ctx.host, peer_trusted);
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(X_REQUEST_ID, v);
    }
    let target = ForwardTarget { path_and_query: ctx.path_and_query(), upgrade };
    match ctx.live.upstream.forward(req.map(body::from_client), target).await {
        Ok(resp) => resp,
        Err(e) => {
            ctx.state.metrics.upstream_error(&e);
            proxy_error_response(&e, ctx.json)
        }
    }
}
