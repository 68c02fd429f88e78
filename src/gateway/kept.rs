//! The gateway's side of kept requests (`pipeline::kept`): a body-carrying request that needs
//! a step-up is kept and the client sent to the challenge; after the proof a browser form is
//! replayed upstream once (`GET /.stepgate/kept?id=…` answers with the app's answer), and an
//! API client retries with `X-Stepgate-Confirmation: ID`. A rule with `bind = "transaction"`
//! goes through here on every body-carrying request: only a proof made for that request body
//! lets it through, once.
//!
//! Only requests that carry a body and need a step-up, or hit a bound rule, come here: a plain
//! GET costs nothing more.

use super::stepup::{self, KeptRef, SendTo};
use super::{forward, record};
use crate::body::{self, Body};
use crate::pipeline::kept::{self, Kept, Via, KEPT_TTL, X_CONFIRMATION};
use crate::pipeline::{evaluate, Ctx, Evaluation, Outcome, Pass};
use crate::policy::bind::{carries_body, confirmed_fields, fields};
use crate::policy::decide::Cause;
use crate::policy::normalize::normalize_path;
use crate::policy::routes::Requirement;
use crate::proxy::Upgrade;
use crate::respond::error_page;
use crate::web::urls::Need;
use http::header::{ACCEPT, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use std::time::Instant;

/// Whether the request is acted on here rather than by the plain proxy path.
pub fn applies<B: http_body::Body>(ctx: &Ctx, req: &Request<B>, eval: &Evaluation<'_>) -> bool {
    if !carries_body(&ctx.method) {
        // A GET with a body on a bound rule: some apps act on the body whatever the method.
        // Asked of the body itself: HTTP/2 sends DATA frames without any length header.
        return bound(eval) && !eval.public && !http_body::Body::is_end_stream(req.body());
    }
    match eval.outcome {
        Outcome::StepUp { .. } => true,
        Outcome::Forward { .. } => !eval.public && bound(eval),
        _ => false,
    }
}

fn bound(eval: &Evaluation<'_>) -> bool {
    eval.rule.is_some_and(|r| r.bind.is_some())
}

/// A browser form submission (it follows a redirect to the page), not `fetch` or an API call.
pub fn is_form(headers: &HeaderMap) -> bool {
    let header = |n| headers.get(n).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    match header("sec-fetch-mode").as_str() {
        "navigate" => true,
        "" => header(ACCEPT.as_str()).contains("text/html"),
        _ => false,
    }
}

/// Acts on a request `applies` chose; `eval.outcome` is updated to what was done (a bound
/// request without its proof is a step-up), so the record phase tells the truth.
pub async fn act(ctx: &Ctx, req: Request<Body>, eval: &mut Evaluation<'_>) -> Response<Body> {
    if !carries_body(&ctx.method) {
        eval.outcome = Outcome::Deny { cause: Cause::TransactionUnreadable };
        let detail =
            "This address confirms actions one by one: a request with a body must use POST, PUT, PATCH or DELETE.";
        return error_page(StatusCode::BAD_REQUEST, "Cannot confirm this request", detail, ctx.reply());
    }
    let (parts, incoming) = req.into_parts();
    let form = is_form(&parts.headers);
    let need = need_of(eval);
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let session = eval.who.as_ref().and_then(|w| w.session.as_ref()).map(|(id, _)| id.key());
    let (Some(session), Some(user)) = (session, eval.who.as_ref().map(|w| w.user.clone())) else {
        // No gateway session to keep it for (an identity from a header or a token).
        return not_kept(ctx, eval, need, "This action needs a fresh proof made on the gateway's sign-in pages.");
    };
    // A declared length over the limit is refused before a byte is read (`read_at_most`).
    let max = ctx.live.config.keep_body_max;
    let Ok(bytes) = body::read_at_most(incoming, max).await else { return not_kept(ctx, eval, need, TOO_BIG) };
    let path_and_query = ctx.path_and_query();
    // A bound request is shown field by field as the app will read it, or refused.
    let shown = if bound(eval) {
        let encoding = parts.headers.get(CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?"));
        // Sent twice, the app may read the other one.
        let twice = [CONTENT_TYPE, CONTENT_ENCODING].iter().any(|n| parts.headers.get_all(n).iter().count() > 1);
        let read = match twice {
            true => Err(crate::policy::bind::Unreadable::Malformed),
            false => confirmed_fields(&content_type, encoding, ctx.query.as_deref(), &bytes),
        };
        match read {
            Ok(f) => f,
            Err(why) => {
                eval.outcome = Outcome::Deny { cause: Cause::TransactionUnreadable };
                return error_page(why.status(), "Cannot confirm this request", why.detail(), ctx.reply());
            }
        }
    } else {
        fields(&content_type, &bytes)
    };
    let digest = kept::digest(ctx.method.as_str(), &ctx.host, &path_and_query, &content_type, &bytes);
    let rule = eval.rule.map_or("-", |r| r.name.as_str());
    if matches!(eval.outcome, Outcome::Forward { .. }) {
        // A bound rule: the retry of a request confirmed for exactly this body.
        let id = parts.headers.get(X_CONFIRMATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let kept = match kept::take(ctx, id).await {
            Ok(k) => k,
            Err(e) => return super::store_unavailable_error(ctx, &e),
        };
        if let Some(k) = kept {
            let same = k.confirmed
                && k.user == user
                && k.session_key == session
                && k.method == ctx.method.as_str()
                && k.host == ctx.host
                && k.path_and_query == path_and_query
                && k.digest == digest;
            if same {
                audit(ctx, &k, rule, "forward", "confirmed");
                let req = Request::from_parts(parts, body::full(bytes));
                return forward(ctx, req, eval, Upgrade::No, Some(&k.digest)).await;
            }
            audit(ctx, &k, rule, "refused", "confirmation_for_another_request");
        }
    }
    let Some(rule_ref) = eval.rule else { return not_kept(ctx, eval, need, TOO_BIG) };
    let fields = shown;
    let confirmation = rule_ref.bind.as_ref().and_then(|b| b.confirm.as_ref()).map(|t| t.render(&fields));
    let k = Kept {
        user,
        session_key: session,
        method: ctx.method.as_str().to_string(),
        host: ctx.host.clone(),
        path_and_query,
        content_type,
        body: bytes.to_vec(),
        digest,
        via: if form { Via::Form } else { Via::Api },
        bound: rule_ref.bind.is_some(),
        confirmation,
        fields,
        confirmed: false,
        expires_at: ctx.now.plus(KEPT_TTL),
    };
    let id = kept::new_id();
    if let Err(e) = kept::put(ctx, &id, &k).await {
        return super::store_unavailable_error(ctx, &e);
    }
    if k.bound {
        audit(ctx, &k, rule, "kept", "transaction_unconfirmed");
    }
    if matches!(eval.outcome, Outcome::Forward { .. }) {
        eval.outcome = Outcome::StepUp { need: need.clone(), cause: Cause::TransactionUnconfirmed };
    }
    stepup::respond_kept(ctx, &need, Need::StepUp, SendTo::Redirect, Some(KeptRef { id: &id, form }))
}

const TOO_BIG: &str = "This form is too large (or carries a file) to be kept while you confirm it's you. \
     Confirm it's you first, then send the form again.";

/// What the request needs: the evaluation's requirement, or the rule's (a bound rule's request
/// passed by a session proof still needs its own).
fn need_of(eval: &Evaluation<'_>) -> Requirement {
    if let Some(n) = &eval.need {
        return n.clone();
    }
    match eval.rule.map(|r| &r.action) {
        Some(crate::policy::routes::Action::Require(r)) => r.clone(),
        _ => Requirement { level: crate::policy::level::Level::Aal2, max_age: None, allow: None },
    }
}

/// A request that cannot be kept: a page (or JSON) saying a fresh proof is needed first, with
/// a link that makes it and comes back to the page the form was on.
fn not_kept(ctx: &Ctx, eval: &mut Evaluation<'_>, need: Requirement, why: &str) -> Response<Body> {
    eval.outcome = Outcome::StepUp { need: need.clone(), cause: Cause::BodyNotKept };
    if ctx.json {
        return stepup::respond(ctx, &need, Need::StepUp, SendTo::Unauthorized);
    }
    let back = crate::web::urls::page_url_for(Need::StepUp, &ctx.path_and_query(), &ctx.method);
    let detail = format!("{why} Use this link, then send the form again: {}", ctx.live.config.public.origin) + &back;
    let mut resp = error_page(StatusCode::UNAUTHORIZED, "Confirm it's you first", &detail, ctx.reply());
    if let Ok(v) = HeaderValue::from_str(&back) {
        resp.headers_mut().insert(stepup::X_REDIRECT, v);
    }
    resp
}

fn audit(ctx: &Ctx, k: &Kept, rule: &str, decision: &'static str, reason: &'static str) {
    crate::audit::emit_transaction(&crate::audit::Transaction {
        request_id: &ctx.request_id,
        user: &k.user,
        client_ip: ctx.client_ip,
        rule,
        decision,
        reason,
        method: &k.method,
        host: &k.host,
        path: &k.path_and_query,
        digest: &k.digest,
        confirmation: k.confirmation.as_deref(),
    });
}

/// `GET /.stepgate/kept?id=…` after the proof: a kept form is replayed upstream once and the
/// app's answer returned; an API client's kept request only says it is confirmed (the client
/// retries it itself). Another session, a second visit or an expired id: refused.
pub async fn replay(ctx: &Ctx, started: Instant) -> Response<Body> {
    let id = crate::web::login::query_param(ctx, "id").unwrap_or_default();
    let who = match crate::pipeline::identify::identify(ctx, crate::pipeline::identify::Touch::No).await {
        Ok(w) => w,
        Err(e) => return super::store_unavailable_error(ctx, &e),
    };
    let session = who.as_ref().and_then(|w| w.session.as_ref()).map(|(id, _)| id.key());
    let peeked = match kept::peek(ctx, &id).await {
        Ok(k) => k,
        Err(e) => return super::store_unavailable_error(ctx, &e),
    };
    let Some(k) = peeked.filter(|k| session.as_deref() == Some(k.session_key.as_str()) && k.host == ctx.host) else {
        return gone(ctx);
    };
    if k.via == Via::Api {
        return crate::web::kept_done(ctx, &k);
    }
    // Used up here: a second visit (a reload) finds nothing.
    let k = match kept::take(ctx, &id).await {
        Ok(Some(k)) => k,
        Ok(None) => return gone(ctx),
        Err(e) => return super::store_unavailable_error(ctx, &e),
    };
    let (path, query) = match k.path_and_query.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (k.path_and_query.clone(), None),
    };
    let (Ok(method), Ok(path)) = (Method::from_bytes(k.method.as_bytes()), normalize_path(&path)) else {
        return gone(ctx);
    };
    let asked = Ctx { json: false, navigation: false, ..ctx.for_request(method.clone(), path, query) };
    let mut eval = evaluate(&asked, Pass::Request).await;
    let rule = eval.rule.map_or("-", |r| r.name.as_str()).to_string();
    let bound_now = bound(&eval);
    if bound_now && !k.confirmed {
        eval.outcome = Outcome::StepUp { need: need_of(&eval), cause: Cause::TransactionUnconfirmed };
    }
    record::audit_decision(&asked, &eval);
    let resp = match &eval.outcome {
        Outcome::Forward { .. } => {
            let mut b = Request::builder().method(method).uri(&k.path_and_query).header(HOST, &k.host);
            if !k.content_type.is_empty() {
                b = b.header(CONTENT_TYPE, &k.content_type);
            }
            let digest = k.digest.clone();
            match b.header(CONTENT_LENGTH, k.body.len()).body(body::full(k.body.clone())) {
                Ok(req) => {
                    if bound_now {
                        audit(&asked, &k, &rule, "forward", "confirmed");
                    }
                    forward(&asked, req, &eval, Upgrade::No, bound_now.then_some(digest.as_str())).await
                }
                Err(_) => gone(ctx),
            }
        }
        _ => {
            let detail = "Your proof no longer covers this action. Go back and send the form again.";
            error_page(StatusCode::FORBIDDEN, "Not done", detail, ctx.reply())
        }
    };
    record::finish(&asked, &eval, record::Mode::Proxy, resp, started)
}

fn gone(ctx: &Ctx) -> Response<Body> {
    error_page(
        StatusCode::GONE,
        "Already done, or expired",
        "This confirmed action was already sent to the application (it is sent once), or it waited \
         too long, or it belongs to another session. Nothing more was sent. Go back to the application \
         to check, and start again there if needed.",
        ctx.reply(),
    )
}
