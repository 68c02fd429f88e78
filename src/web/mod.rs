//! The gateway's own pages under `/.stepgate/`: sign-in, challenge, enrollment, account.
//! Never forwarded.

pub mod account;
pub mod challenge;
pub mod csrf;
pub mod enroll;
pub mod factors;
pub mod forms;
pub mod login;
pub mod new_codes;
pub mod oidc_flow;
pub mod oidc_logout;
pub mod pages;
pub mod passkeys;
pub mod return_to;
pub mod sessions;
pub mod urls;

use crate::body::{self, Body};
use crate::pipeline::Ctx;
use crate::respond::error_page;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};

const STYLE_CSS: &str = include_str!("../../static/style.css");
const WEBAUTHN_JS: &str = include_str!("../../static/webauthn.js");
const CLIENT_JS: &str = include_str!("../../static/stepgate-client.js");
const DONE_JS: &str = include_str!("../../static/done.js");
const CODES_JS: &str = include_str!("../../static/codes.js");

pub async fn handle(ctx: &Ctx, req: Request<Body>) -> Response<Body> {
    let sub = ctx.path.as_str()[crate::pipeline::PREFIX.len()..].to_ascii_lowercase();
    let method = req.method().clone();
    if let Some(oidc) = &ctx.live.oidc {
        let callback = &oidc.cfg.redirect_path[crate::pipeline::PREFIX.len()..];
        if sub == callback.to_ascii_lowercase() && matches!(method, Method::GET | Method::HEAD) {
            return crate::web::oidc_flow::callback(ctx, req.headers()).await.unwrap_or_else(|e| e.into_response(ctx));
        }
        let own = |path: &str| path[crate::pipeline::PREFIX.len()..].to_string();
        match (&method, sub.as_str()) {
            (&Method::POST, s) if s == own(crate::oidc::logout::BACKCHANNEL_PATH) => {
                return oidc_logout::backchannel(ctx, req).await;
            }
            (&Method::GET | &Method::HEAD, s) if s == own(crate::oidc::logout::SIGNED_OUT_PATH) => {
                return oidc_logout::signed_out(ctx).unwrap_or_else(|e| e.into_response(ctx));
            }
            _ => {}
        }
    }
    let result = match (&method, sub.as_str()) {
        (&Method::GET | &Method::HEAD, "/static/style.css") => Ok(static_file(STYLE_CSS, "text/css; charset=utf-8")),
        (&Method::GET | &Method::HEAD, "/static/webauthn.js") => {
            Ok(static_file(WEBAUTHN_JS, "text/javascript; charset=utf-8"))
        }
        (&Method::GET | &Method::HEAD, "/static/stepgate-client.js") => {
            Ok(static_file(CLIENT_JS, "text/javascript; charset=utf-8"))
        }
        (&Method::GET | &Method::HEAD, "/static/done.js") => Ok(static_file(DONE_JS, "text/javascript; charset=utf-8")),
        (&Method::GET | &Method::HEAD, "/static/codes.js") => {
            Ok(static_file(CODES_JS, "text/javascript; charset=utf-8"))
        }
        (&Method::GET | &Method::HEAD, "/recovery-codes") => new_codes::show(ctx, req.headers()).await,
        (&Method::POST, "/webauthn/register/start") => passkeys::register_start(ctx, req).await,
        (&Method::POST, "/webauthn/register/finish") => passkeys::register_finish(ctx, req).await,
        (&Method::POST, "/webauthn/auth/start") => passkeys::auth_start(ctx, req).await,
        (&Method::POST, "/webauthn/auth/finish") => passkeys::auth_finish(ctx, req).await,
        (&Method::POST, "/account/passkey/delete") => factors::delete_passkey(ctx, req).await,
        (&Method::POST, "/account/totp/delete") => factors::delete_totp(ctx, req).await,
        (&Method::GET | &Method::HEAD, "/health") => Ok(Response::new(body::full("ok\n"))),
        (&Method::GET | &Method::HEAD, "/ready") => Ok(ready(ctx).await),
        (&Method::GET | &Method::HEAD, "/login") => login::show(ctx, req.headers(), None).await,
        (&Method::POST, "/login") => login::submit(ctx, req).await,
        (&Method::GET | &Method::HEAD, "/challenge/idp") => challenge::submit_idp(ctx, req.headers()).await,
        (&Method::POST, "/logout") => login::logout(ctx, req).await,
        (&Method::GET | &Method::HEAD, "/challenge") => challenge::show(ctx, req.headers(), None).await,
        (&Method::POST, "/challenge/totp") => challenge::submit_totp(ctx, req).await,
        (&Method::POST, "/challenge/recovery") => challenge::submit_recovery(ctx, req).await,
        (&Method::GET | &Method::HEAD, "/enroll/totp") => enroll::show(ctx, req.headers()).await,
        (&Method::POST, "/enroll/totp") => enroll::submit(ctx, req).await,
        (&Method::GET | &Method::HEAD, "/account" | "" | "/") => account::show(ctx, req.headers()).await,
        (_, "/static/style.css" | "/health" | "/ready" | "/login" | "/challenge" | "/enroll/totp" | "/account") => {
            return error_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "Use the page's form.",
                ctx.reply(),
            )
        }
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such gateway page.", ctx.reply()),
    };
    match result {
        Ok(resp) => resp,
        Err(e) => e.into_response(ctx),
    }
}

/// An audit line about a user's own action on a gateway page (sign-in, step-up, enrollment...).
pub fn audit_user(ctx: &Ctx, kind: crate::audit::Kind, user: &str, decision: &'static str, reason: &'static str) {
    crate::audit::emit(&crate::audit::Record {
        workload: None,
        client: None,
        kind,
        request_id: &ctx.request_id,
        user: Some(user),
        client_ip: ctx.client_ip,
        rule: None,
        decision,
        reason,
        risk: None,
        request: None,
        expired_rule: None,
    });
}

/// The page an API client's popup lands on after the proof: confirmed, the app retries.
/// It closes itself when it is a popup (`done.js`); else it says to go back.
pub fn kept_done(ctx: &Ctx, k: &crate::pipeline::kept::Kept) -> Response<Body> {
    let what = k.confirmation.clone().unwrap_or_else(|| "the action".to_string());
    let page = pages::DonePage { what: &what };
    match pages::html(&page, StatusCode::OK, &[]) {
        Ok(r) => r,
        Err(e) => e.into_response(ctx),
    }
}

/// How long the readiness probe may take before the store counts as not ready.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness: 200 only if the store can write and read back a probe record now; else 503
/// with a fixed text (the cause goes to the log, never to the client). `/health` is liveness.
async fn ready(ctx: &Ctx) -> Response<Body> {
    let probe = tokio::time::timeout(READY_TIMEOUT, ctx.state.store.ready(ctx.now)).await;
    let failure = match probe {
        Ok(Ok(())) => return plain(StatusCode::OK, "ready\n"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {READY_TIMEOUT:?}"),
    };
    tracing::warn!(request_id = %ctx.request_id, error = %failure, "not ready: the store cannot write and read");
    plain(StatusCode::SERVICE_UNAVAILABLE, "not ready: the store cannot read/write\n")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn static_file(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(body::full(text));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    resp
}

/// Why a page could not be served. Turned into a response in one place.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("store unavailable: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("bad form: {0}")]
    BadForm(&'static str),
    #[error("the form expired or did not come from this site")]
    Csrf,
    #[error("{0}")]
    Internal(String),
}

impl WebError {
    pub fn into_response(self, ctx: &Ctx) -> Response<Body> {
        match self {
            WebError::Store(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "store unavailable on a gateway page");
                error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "The gateway cannot reach its store right now. Please try again shortly.",
                    ctx.reply(),
                )
            }
            WebError::BadForm(why) => error_page(StatusCode::BAD_REQUEST, "Bad request", why, ctx.reply()),
            WebError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "The form expired or did not come from this site. Go back, reload the page and try again.",
                ctx.reply(),
            ),
            WebError::Internal(msg) => {
                tracing::error!(request_id = %ctx.request_id, error = %msg, "internal error on a gateway page");
                error_page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "Something went wrong.", ctx.reply())
            }
        }
    }
}

pub type WebResult = Result<Response<Body>, WebError>;
