//! The gateway as the proxy: read the request's facts, `pipeline::evaluate` them, and act on
//! the outcome (forward | challenge | deny | a gateway page). Forward-auth (`forward_auth`)
//! acts on the same evaluation with answers for a front proxy.

pub mod facts;
pub mod forward_auth;
pub mod kept;
pub mod method_override;
pub mod record;
pub mod stepup;
pub mod tunnel;

use crate::body::{self, Body};
use crate::pipeline::identify::Who;
use crate::pipeline::risk::{remember_request, Scored};
use crate::pipeline::{evaluate, new_request_id, route, Conn, Ctx, Evaluation, Outcome, Pass};
use crate::policy::decide::{effective_level, Cause};
use crate::policy::level::{Level, Proof};
use crate::proxy::headers::{remove_hop_by_hop, set_forwarded, strip_spoofable_headers, RequestHygiene};
use crate::proxy::upgrade::is_websocket_handshake;
use crate::proxy::{ForwardTarget, Upgrade};
use crate::respond::{error_page, proxy_error_response, wants_json, Blame, Reply, X_REQUEST_ID};
use crate::session::cookies;
use crate::state::SharedState;
use crate::web::urls::Need;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;

pub use crate::pipeline::kept::KEPT_PATH;
pub use crate::pipeline::{is_gateway_path, PREFIX};

pub const X_USER: HeaderName = HeaderName::from_static("x-stepgate-user");
pub const X_LEVEL: HeaderName = HeaderName::from_static("x-stepgate-level");
pub const X_AUTH_TIME: HeaderName = HeaderName::from_static("x-stepgate-auth-time");
pub const X_METHODS: HeaderName = HeaderName::from_static("x-stepgate-methods");
pub const X_RISK: HeaderName = HeaderName::from_static("x-stepgate-risk");
/// The workload's ID, proved by a client certificate (its SPIFFE ID or subject).
pub const X_WORKLOAD: HeaderName = HeaderName::from_static("x-stepgate-workload");
/// A bearer token's client (`client_id`, else `azp`), as the token's issuer names it.
pub const X_CLIENT: HeaderName = HeaderName::from_static("x-stepgate-client");

pub async fn handle(state: SharedState, mut req: Request<Incoming>, conn: Arc<Conn>) -> Response<Body> {
    let started = Instant::now();
    let live = state.live();
    let request_id = request_id(&live.config, &conn, req.headers());
    // CONNECT asks the gateway to open a tunnel to a place of the client's choosing: never.
    // Checked before normalizing, since its target is no path.
    if route::method_refused(req.method()) {
        let resp = method_not_allowed(Reply { json: wants_json(req.headers()), request_id: &request_id });
        return record::finish_refused(&refused(&state, &live, &conn, &req, &request_id), resp, started);
    }
    // The client's hop-by-hop headers (and those its `Connection` names) belong to this hop:
    // removed before anything reads the request and before the gateway adds its own headers,
    // so a `Connection` token can never remove one of those. Only a WebSocket handshake may
    // switch protocols; any other `Upgrade` goes with the hop-by-hop headers.
    let websocket = is_websocket_handshake(req.method(), req.version(), req.headers());
    remove_hop_by_hop(req.headers_mut());
    // Normalize: the path matched is the path forwarded. What cannot be normalized is refused.
    let ctx = match facts::of_request(&state, live.clone(), &conn, &req, request_id.clone()) {
        Ok(ctx) => ctx,
        Err(bad) => {
            let reply = Reply { json: wants_json(req.headers()), request_id: &request_id };
            let resp = error_page(StatusCode::BAD_REQUEST, "Bad request", &bad.0, reply);
            return record::finish_refused(&refused(&state, &live, &conn, &req, &request_id), resp, started);
        }
    };
    if let Some(question) = forward_auth::question(req.uri().path()) {
        // Evaluated and recorded as the request the front proxy asks about.
        return forward_auth::answer(&ctx, req.headers(), question, started).await;
    }
    let mut eval = evaluate(&ctx, Pass::Request).await;
    let body_timeout = ctx.live.config.limits.body_timeout;
    let req = match method_override::checked(&ctx, &eval, req.map(|b| body::from_client_within(b, body_timeout))).await
    {
        Ok(req) => req,
        Err(refused) => {
            eval.outcome = Outcome::Deny { cause: Cause::MethodOverride };
            record::audit_decision(&ctx, &eval);
            return record::finish(&ctx, &eval, record::Mode::Proxy, refused.response(&ctx), started);
        }
    };
    if kept::applies(&ctx, &req, &eval) {
        // A body-carrying request that needs a step-up, or one for a bound rule.
        let resp = kept::act(&ctx, req, &mut eval).await;
        record::audit_decision(&ctx, &eval);
        return record::finish(&ctx, &eval, record::Mode::Proxy, resp, started);
    }
    record::audit_decision(&ctx, &eval);
    let resp = match eval.outcome.clone() {
        Outcome::GatewayPage if ctx.path.as_str() == KEPT_PATH && ctx.method == http::Method::GET => {
            return kept::replay(&ctx, started).await
        }
        Outcome::GatewayPage => crate::web::handle(&ctx, req).await,
        Outcome::MethodRefused => method_not_allowed(ctx.reply()),
        Outcome::Forward { .. } => {
            if let (Some(w), false) = (&eval.who, eval.public) {
                if let Err(e) = remember_request(&ctx, w, eval.scored.clone()).await {
                    tracing::warn!(request_id = %ctx.request_id, error = %e, "risk history not updated");
                }
            }
            let upgrade = match websocket {
                true => Upgrade::WebSocket { close_when: tunnel_watch(&ctx, &eval) },
                false => Upgrade::No,
            };
            forward(&ctx, req, &eval, upgrade, None).await
        }
        Outcome::SignIn { need } if kept::is_form(req.headers()) && !ctx.navigation => {
            // A browser form sent while signed out: to the sign-in page, then back to the
            // page (the form is not kept: there is no session to keep it for).
            let page = Ctx { navigation: true, method: http::Method::GET, ..ctx.clone() };
            stepup::respond(&page, &need, Need::SignIn, stepup::SendTo::Redirect)
        }
        Outcome::SignIn { need } => stepup::respond(&ctx, &need, Need::SignIn, stepup::SendTo::Redirect),
        Outcome::StepUp { need, .. } => stepup::respond(&ctx, &need, Need::StepUp, stepup::SendTo::Redirect),
        Outcome::Deny { cause } => denied(&ctx, cause, eval.rule),
        Outcome::Unavailable => store_unavailable(&ctx, &eval),
    };
    record::finish(&ctx, &eval, record::Mode::Proxy, resp, started)
}

/// What a request refused before evaluation is recorded with: the target as it was sent.
fn refused<'a, B>(
    state: &'a SharedState,
    live: &'a crate::state::Live,
    conn: &Conn,
    req: &'a Request<B>,
    request_id: &'a str,
) -> record::Refused<'a> {
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    record::Refused {
        live,
        metrics: &state.metrics,
        request_id,
        method: req.method().as_str(),
        host: header(http::header::HOST).or(req.uri().host()).unwrap_or("-"),
        path: req.uri().path(),
        user_agent: header(http::header::USER_AGENT),
        client_ip: crate::proxy::client_ip::client_ip(conn.peer, req.headers(), &live.config.trusted_proxies),
        mode: record::Mode::Proxy,
    }
}

/// The request's id: a trusted proxy's `X-Request-Id` when it is a plain token (so one id
/// follows the request through both), else a new one.
fn request_id(cfg: &crate::config::Config, conn: &Conn, headers: &http::HeaderMap) -> String {
    let trusted = crate::proxy::client_ip::is_trusted(conn.peer.ip(), &cfg.trusted_proxies);
    let mut given = headers.get_all(X_REQUEST_ID).iter();
    match (trusted, given.next(), given.next()) {
        (true, Some(v), None) if is_plain_id(v.as_bytes()) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        _ => new_request_id(),
    }
}

fn is_plain_id(v: &[u8]) -> bool {
    (1..=64).contains(&v.len()) && v.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// 405 for a method the gateway never serves (`CONNECT`). The connection is closed: what
/// follows a CONNECT is meant as tunnel bytes, never to be read as requests.
fn method_not_allowed(reply: Reply<'_>) -> Response<Body> {
    let mut resp =
        error_page(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", "CONNECT is not accepted here.", reply);
    let h = resp.headers_mut();
    h.insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
    h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// 403 for a denied request; a bearer token's refusal in RFC 6750 terms (`stepup::token_refusal`).
pub fn denied(ctx: &Ctx, cause: Cause, rule: Option<&crate::policy::routes::Rule>) -> Response<Body> {
    if let Some(resp) = stepup::token_refusal(ctx, cause, rule) {
        return resp;
    }
    let detail = match cause {
        Cause::DeniedNetwork => "Requests from your network are not accepted.",
        Cause::GatewayPath => "The gateway's own pages are served by the gateway, not the application.",
        Cause::NotInGroup | Cause::ClaimMismatch => {
            "You are signed in, but this page is only for members of certain groups or roles. \
             If you need it, ask your administrator for access."
        }
        Cause::MissingScope => "The token does not carry the scope this address needs.",
        Cause::WorkloadNotAllowed => "This address is only for certain services (workload identities).",
        Cause::ClientNotAllowed => "This address is only for certain API clients.",
        Cause::CredentialTooOld => "The credential was issued too long ago; use a freshly issued one.",
        Cause::TransactionUnconfirmed => {
            "This action is confirmed on its own through the gateway (bind = \"transaction\"), \
             which a front proxy's forward-auth question cannot do: send it through the gateway as the proxy."
        }
        Cause::InvalidCertificate => {
            "The client certificate is not a valid workload identity (SPIFFE X.509-SVID rules: one spiffe:// URI SAN, \
             not a CA, digitalSignature key usage)."
        }
        _ => "This address is not available through the gateway.",
    };
    error_page(StatusCode::FORBIDDEN, "Forbidden", detail, ctx.reply())
}

/// A protected route while the store cannot answer: fail closed with 503.
pub fn store_unavailable(ctx: &Ctx, eval: &Evaluation<'_>) -> Response<Body> {
    let error = eval.store_error.as_ref().map(ToString::to_string).unwrap_or_default();
    tracing::error!(request_id = %ctx.request_id, error = %error, "store unavailable; protected route refused");
    unavailable_page(ctx)
}

/// `store_unavailable` for a store error met while acting (keeping or replaying a request).
pub fn store_unavailable_error(ctx: &Ctx, e: &crate::store::StoreError) -> Response<Body> {
    tracing::error!(request_id = %ctx.request_id, error = %e, "store unavailable; kept request refused");
    unavailable_page(ctx)
}

fn unavailable_page(ctx: &Ctx) -> Response<Body> {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The gateway cannot check your session right now. Please try again shortly.",
        ctx.reply(),
    )
}

/// For a WebSocket opened by a signed-in user: the watch that closes it when the proof that
/// opened it ends (see `tunnel`). Anonymous tunnels (public routes) have nothing to end.
fn tunnel_watch(ctx: &Ctx, eval: &Evaluation<'_>) -> Option<crate::proxy::upgrade::CloseWhen> {
    let who = eval.who.as_ref()?;
    let session = who.session.as_ref().map(|(id, _)| id.clone());
    // Without a session, only a machine credential (re-verified on every check) is watched.
    if session.is_none() && !ctx.machine_client() {
        return None;
    }
    let opened = tunnel::Opened { ctx: ctx.clone(), session, verdict: eval.scored.verdict, user: who.user.clone() };
    Some(tunnel::watch(opened))
}

/// The identity headers the app receives, from the strongest proof the session holds, and the
/// risk score (protected routes only).
pub fn identity_headers(who: Option<&Who>, scored: &Scored, public: bool) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(5);
    if let Some(who) = who {
        let strongest: Option<&Proof> = who.proofs.iter().max_by_key(|p| (effective_level(p), p.auth_time));
        let mut methods: Vec<&str> = who.proofs.iter().map(|p| p.method.as_str()).collect();
        methods.sort_unstable();
        methods.dedup();
        let values = [
            (X_USER, who.user.clone()),
            (X_LEVEL, strongest.map_or(Level::None, effective_level).as_str().to_string()),
            (X_AUTH_TIME, strongest.map_or(0, |p| p.auth_time.0).to_string()),
            (X_METHODS, methods.join(",")),
        ];
        for (name, value) in values {
            if let Ok(v) = HeaderValue::from_str(&value) {
                out.push((name, v));
            }
        }
        let machine = [(X_WORKLOAD, &who.attrs.workload), (X_CLIENT, &who.attrs.client)];
        for (name, id) in machine {
            if let Some(v) = id.as_deref().and_then(|id| HeaderValue::from_str(id).ok()) {
                out.push((name, v));
            }
        }
    }
    if !public {
        out.push((X_RISK, HeaderValue::from(u16::from(scored.assessment.score))));
    }
    out
}

/// Forwards upstream with the gateway's identity headers (the client's `X-Stepgate-*` gone);
/// `transaction`: the digest of the confirmed request (`X-Stepgate-Transaction`).
async fn forward(
    ctx: &Ctx,
    mut req: Request<Body>,
    eval: &Evaluation<'_>,
    upgrade: Upgrade,
    transaction: Option<&str>,
) -> Response<Body> {
    let cfg = &ctx.live.config;
    let (identity_header, groups_header) = match &cfg.identity {
        crate::config::Identity::Header { header, groups_header } => (Some(header.clone()), groups_header.clone()),
        _ => (None, None),
    };
    let headers = req.headers_mut();
    // Identity headers and method overrides from the client never reach the app.
    let hygiene = RequestHygiene {
        identity_header: identity_header.as_ref(),
        groups_header: groups_header.as_ref(),
        keep_underscores: cfg.upstream.allow_underscores_in_headers,
    };
    strip_spoofable_headers(headers, hygiene);
    cookies::strip_own(headers, cfg.public.https);
    for (name, value) in identity_headers(eval.who.as_ref(), &eval.scored, eval.public) {
        headers.insert(name, value);
    }
    if let Some(v) = transaction.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(crate::pipeline::kept::X_TRANSACTION, v);
    }
    let proto = if cfg.public.https { "https" } else { "http" };
    // The chain grows by the hop that connected to us, not by the client address read from it.
    set_forwarded(headers, ctx.conn.peer.ip(), proto, &ctx.host, ctx.peer_trusted);
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(X_REQUEST_ID, v);
    }
    let target = ForwardTarget { path_and_query: ctx.path_and_query(), upgrade };
    match ctx.live.upstream.forward(req, target).await {
        Ok(resp) => resp,
        Err(e) => {
            // A body the client cut short or let stall is the client's doing, not the upstream's.
            match e.blame() {
                Blame::Client => ctx.state.metrics.client_error(&e),
                Blame::Upstream => ctx.state.metrics.upstream_error(&e),
            }
            proxy_error_response(&e, ctx.reply())
        }
    }
}
