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
use crate::pipeline::{evaluate, Ctx, Outcome, Pass};
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

/// The endpoint, as the request spells it (the raw path, before normalization).
const AUTH: &str = "/.stepgate/auth";

/// How the front proxy names the request it asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question<'a> {
    /// `/.stepgate/auth`: in `X-Forwarded-Uri` or `X-Original-URI` (nginx, Caddy, Traefik).
    Headers,
    /// `/.stepgate/auth/<path>`: the path itself follows the endpoint's, the query is the auth
    /// request's (Envoy's `ext_authz` `path_prefix`). Browsers are answered with 302.
    Suffix(&'a str),
}

/// Whether a request (by its raw path, exactly spelled) asks the forward-auth question. Any
/// other spelling (`/.stepgate/%61uth`) is no question: it is a gateway page that does not
/// exist (404), never an answer about a URI normalization could have changed.
pub fn question(raw_path: &str) -> Option<Question<'_>> {
    let head = raw_path.get(..AUTH.len())?;
    if !head.eq_ignore_ascii_case(AUTH) {
        return None;
    }
    match &raw_path[AUTH.len()..] {
        "" => Some(Question::Headers),
        rest if rest.starts_with('/') => Some(Question::Suffix(rest)),
        _ => None,
    }
}

/// The answer for the front proxy.
pub async fn answer(outer: &Ctx, headers: &HeaderMap, question: Question<'_>, started: Instant) -> Response<Body> {
    let refused = record::Refused::of(outer, record::Mode::ForwardAuth);
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
    let ctx = match asked_about(outer, headers, question) {
        Ok(ctx) => ctx,
        Err(bad) => {
            let resp = error_page(StatusCode::BAD_REQUEST, "Bad request", &bad.0, outer.reply());
            return record::finish_refused(&refused, resp, started);
        }
    };
    let send_to = match question {
        Question::Suffix(_) => SendTo::Redirect,
        Question::Headers if query_flag(outer, "redirect") => SendTo::Redirect,
        Question::Headers => SendTo::Unauthorized,
    };
    let also = super::method_override::also_asked_as(&ctx, headers);
    let mut eval = evaluate(&ctx, Pass::Request).await;
    if matches!(eval.outcome, Outcome::Forward { .. }) {
        // A POST whose body (unseen here) could name another method: it passes as every one.
        for other in &also {
            let as_other = evaluate(other, Pass::LookOnly).await;
            if !matches!(as_other.outcome, Outcome::Forward { .. }) {
                eval = as_other;
                break;
            }
        }
    }
    // The front proxy must send /.stepgate/ to the gateway itself, never to the app, and a
    // CONNECT is no request to let through: both are denials here, audited and counted as such.
    eval.outcome = match eval.outcome {
        Outcome::GatewayPage => Outcome::Deny { cause: Cause::GatewayPath },
        Outcome::MethodRefused => Outcome::Deny { cause: Cause::MethodRefused },
        // A bound rule confirms a request body, which a front proxy's question does not carry:
        // fail closed rather than let the action through on the session's proof.
        Outcome::Forward { .. } | Outcome::StepUp { .. }
            if eval.rule.is_some_and(|r| r.bind.is_some()) && crate::policy::bind::carries_body(&ctx.method) =>
        {
            Outcome::Deny { cause: Cause::TransactionUnconfirmed }
        }
        other => other,
    };
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
        Outcome::Deny { cause } => denied(&ctx, cause, eval.rule),
        // Mapped to denials above.
        Outcome::GatewayPage | Outcome::MethodRefused => denied(&ctx, Cause::GatewayPath, None),
        Outcome::Unavailable => store_unavailable(&ctx, &eval),
    };
    record::finish(&ctx, &eval, record::Mode::ForwardAuth, resp, started)
}

/// The request the front proxy asks about, normalized like a proxied one. Each fact may be
/// named once, in one spelling: a request that names its URI or method twice (a client's own
/// `X-Forwarded-Uri` passed on beside nginx's `X-Original-URI`, say) is refused, never
/// decided on whichever spelling came first.
fn asked_about(outer: &Ctx, headers: &HeaderMap, question: Question<'_>) -> Result<Ctx, BadRequest> {
    let one = |names: &[&HeaderName]| -> Result<Option<&str>, BadRequest> {
        let mut found = None;
        for name in names {
            let mut values = headers.get_all(*name).iter();
            let Some(v) = values.next() else { continue };
            if values.next().is_some() || found.is_some() {
                return Err(BadRequest(format!("The request names {} more than once.", names[0])));
            }
            found = Some(v.to_str().map_err(|_| BadRequest(format!("The {name} header is not text.")))?);
        }
        Ok(found)
    };
    let named_method = one(&[&X_FORWARDED_METHOD, &X_ORIGINAL_METHOD])?;
    let named_uri = one(&[&X_FORWARDED_URI, &X_ORIGINAL_URI])?;
    let (default_method, uri) = match question {
        Question::Headers => (
            Method::GET,
            named_uri.ok_or_else(|| BadRequest("The front proxy sent no X-Forwarded-Uri or X-Original-URI.".into()))?,
        ),
        Question::Suffix(_) if named_uri.is_some() => {
            return Err(BadRequest("The request names its URI both in the path and in a header.".into()))
        }
        Question::Suffix(path) => (outer.method.clone(), path),
    };
    let suffix_query = match question {
        Question::Suffix(_) => outer.query.as_deref(),
        Question::Headers => None,
    };
    let method = match named_method {
        Some(m) => Method::from_bytes(m.trim().as_bytes())
            .map_err(|_| BadRequest("The forwarded method is not a method.".into()))?,
        None => default_method,
    };
    // Origin-form only: a path, maybe a query. Never an absolute URL naming another host.
    if !uri.starts_with('/') {
        return Err(BadRequest("The forwarded URI is not a path.".into()));
    }
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, suffix_query),
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
