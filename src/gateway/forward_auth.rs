//! Forward-auth: `/.stepgate/auth` answers a front proxy's question "may this request
//! through?" with the same evaluation the gateway makes when it proxies.
//!
//! The request asked about is read from `X-Forwarded-Method`/`-Host`/`-Uri` (Traefik, Caddy,
//! Authelia's convention) or `X-Original-Method`/`X-Original-URI` (nginx), and only when the
//! peer is one of `listen.trusted_proxies`: from anyone else those headers would let a client
//! name any request it likes (oauth2-proxy's GHSA-7x63), so the endpoint refuses.
//!
//! Answers: 200 with the identity headers for the front proxy to copy to the app; 401 in the
//! RFC 9470 shape when a sign-in or step-up is needed (for browser navigations also the page
//! URL in `Location` and `X-Stepgate-Redirect`, or `302` with `?redirect=1`); 403 when denied;
//! 400 for a URI that cannot be normalized; 503 when the store cannot answer.

use super::facts::{self, Asked, BadRequest};
use super::stepup::{self, SendTo};
use super::{denied, identity_headers, record, store_unavailable};
use crate::body::{self, Body};
use crate::pipeline::risk::remember_request;
use crate::pipeline::{evaluate, Ctx, Outcome, Pass, PREFIX};
use crate::policy::decide::Cause;
use crate::respond::{error_page, page_headers};
use crate::web::urls::Need;
use http::header::HeaderName;
use http::{HeaderMap, Method, Response, StatusCode};
use std::time::Instant;

pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");

/// The endpoint's path under the gateway prefix.
const AUTH: &str = "/auth";

/// Whether the request in `ctx` is for the forward-auth endpoint.
pub fn is_auth_path(ctx: &Ctx) -> bool {
    ctx.path.as_str()[PREFIX.len()..].eq_ignore_ascii_case(AUTH)
}

/// The answer for the front proxy.
pub async fn answer(outer: &Ctx, headers: &HeaderMap, started: Instant) -> Response<Body> {
    let refused = record::Refused {
        live: &outer.live,
        metrics: &outer.state.metrics,
        request_id: &outer.request_id,
        method: outer.method.as_str(),
        host: &outer.host,
        path: outer.path.as_str(),
        user_agent: Some(outer.risk_ctx.user_agent.as_str()).filter(|ua| !ua.is_empty()),
        client_ip: outer.client_ip,
        mode: record::Mode::ForwardAuth,
    };
    if !outer.peer_trusted {
        tracing::warn!(request_id = %outer.request_id, peer = %outer.conn.peer, "forward-auth asked by a peer outside listen.trusted_proxies");
        let resp = error_page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "The forward-auth endpoint answers only the proxies in listen.trusted_proxies.",
            outer.reply(),
        );
        return record::finish_refused(&refused, resp, started);
    }
    let ctx = match asked_about(outer, headers) {
        Ok(ctx) => ctx,
        Err(bad) => {
            let resp = error_page(StatusCode::BAD_REQUEST, "Bad request", &bad.0, outer.reply());
            return record::finish_refused(&refused, resp, started);
        }
    };
    let send_to = if query_flag(outer, "redirect") { SendTo::Redirect } else { SendTo::Unauthorized };
    let eval = evaluate(&ctx, Pass::Request).await;
    record::audit_decision(&ctx, &eval);
    let resp = match eval.outcome.clone() {
        Outcome::Forward { .. } => {
            if let (Some(w), false) = (&eval.who, eval.public) {
                if let Err(e) = remember_request(&ctx, w, eval.scored.clone()).await {
                    tracing::warn!(request_id = %ctx.request_id, error = %e, "risk history not updated");
                }
            }
            let mut resp = Response::new(body::empty());
            let h = resp.headers_mut();
            page_headers(h);
            for (name, value) in identity_headers(eval.who.as_ref(), &eval.scored, eval.public) {
                h.insert(name, value);
            }
            resp
        }
        Outcome::SignIn { need } => stepup::respond(&ctx, &need, Need::SignIn, send_to),
        Outcome::StepUp { need, .. } => stepup::respond(&ctx, &need, Need::StepUp, send_to),
        Outcome::Deny { cause } => denied(&ctx, cause),
        // The front proxy must send /.stepgate/ to the gateway itself, never to the app; and a
        // CONNECT is no request to let through.
        Outcome::GatewayPage | Outcome::MethodRefused => denied(&ctx, Cause::GatewayPath),
        Outcome::Unavailable => store_unavailable(&ctx, &eval),
    };
    record::finish(&ctx, &eval, record::Mode::ForwardAuth, resp, started)
}

/// The request the front proxy asks about, normalized like a proxied one.
fn asked_about(outer: &Ctx, headers: &HeaderMap) -> Result<Ctx, BadRequest> {
    let one = |names: &[&HeaderName]| -> Result<Option<&str>, BadRequest> {
        for name in names {
            let mut values = headers.get_all(*name).iter();
            let Some(v) = values.next() else { continue };
            if values.next().is_some() {
                return Err(BadRequest(format!("More than one {name} header.")));
            }
            return v.to_str().map(Some).map_err(|_| BadRequest(format!("The {name} header is not text.")));
        }
        Ok(None)
    };
    let method = match one(&[&X_FORWARDED_METHOD, &X_ORIGINAL_METHOD])? {
        Some(m) => Method::from_bytes(m.trim().as_bytes())
            .map_err(|_| BadRequest("The forwarded method is not a method.".into()))?,
        None => Method::GET,
    };
    let uri = one(&[&X_FORWARDED_URI, &X_ORIGINAL_URI])?
        .ok_or_else(|| BadRequest("The front proxy sent no X-Forwarded-Uri or X-Original-URI.".into()))?;
    // Origin-form only: a path, maybe a query. Never an absolute URL naming another host.
    if !uri.starts_with('/') {
        return Err(BadRequest("The forwarded URI is not a path.".into()));
    }
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    // The query is kept only to build return URLs; a fragment is no part of a request.
    let path = path.split('#').next().unwrap_or(path);
    let host = match one(&[&X_FORWARDED_HOST])? {
        Some(h) => facts::host(h.trim())?,
        None => outer.host.clone(),
    };
    let asked = Asked { method, host, path, query, headers };
    facts::build(&outer.state, outer.live.clone(), &outer.conn, asked, outer.request_id.clone())
}

/// Whether the auth request's own query carries `name=1` (or `true`).
fn query_flag(ctx: &Ctx, name: &str) -> bool {
    let Some(q) = &ctx.query else { return false };
    form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == name && (v == "1" || v == "true"))
}
