//! Sessions follow the identity provider (`identity.source = "oidc"`): the back-channel logout
//! endpoint the IdP POSTs a logout token to, the RP-initiated logout that the gateway's
//! sign-out continues at the IdP, and the page the IdP sends the browser back to.

use super::pages::{html, MessagePage};
use super::{forms, WebResult};
use crate::audit::{self, Kind};
use crate::body::{self, Body};
use crate::oidc::logout::{self, VerifyError};
use crate::pipeline::Ctx;
use crate::session::{IdpFacts, Session};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};

fn audit(ctx: &Ctx, decision: &'static str, reason: &'static str) {
    audit::emit(&audit::Record {
        workload: None,
        client: None,
        kind: Kind::SignOut,
        request_id: &ctx.request_id,
        user: None,
        client_ip: ctx.client_ip,
        rule: None,
        decision,
        reason,
        risk: None,
        request: None,
        expired_rule: None,
    });
}

/// The answer to the IdP (§2.8): 200 when done, 400 with an OAuth-style error when the token
/// is refused, 503 when the gateway cannot do it now; never cached.
fn answer(status: StatusCode, error: Option<(&str, &str)>) -> Response<Body> {
    let mut resp = match error {
        Some((error, description)) => {
            let v = serde_json::json!({"error": error, "error_description": description});
            let mut r = Response::new(body::full(v.to_string()));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        None => Response::new(body::empty()),
    };
    *resp.status_mut() = status;
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `POST /.stepgate/oidc/backchannel-logout` with `logout_token` (OpenID Connect Back-Channel
/// Logout 1.0 §2.5): verifies it and ends the sessions it names, on every instance.
pub async fn backchannel(ctx: &Ctx, req: Request<Body>) -> Response<Body> {
    let Some(oidc) = ctx.live.oidc.clone() else {
        return answer(StatusCode::NOT_FOUND, Some(("invalid_request", "no identity provider is configured")));
    };
    let form = match forms::read(req.into_body()).await {
        Ok(f) => f,
        Err(_) => {
            audit(ctx, "fail", "logout request unreadable");
            return answer(StatusCode::BAD_REQUEST, Some(("invalid_request", "the form cannot be read")));
        }
    };
    let token = form.get("logout_token");
    if token.is_empty() {
        audit(ctx, "fail", "logout request without logout_token");
        return answer(StatusCode::BAD_REQUEST, Some(("invalid_request", "logout_token is missing")));
    }
    let store = &*ctx.state.store;
    let verified = match logout::verify(&oidc, store, token, ctx.now).await {
        Ok(t) => t,
        Err(VerifyError::Token(e)) if e != logout::LogoutError::Unavailable => {
            tracing::info!(request_id = %ctx.request_id, error = %e, "back-channel logout token refused");
            audit(ctx, "fail", e.reason());
            return answer(StatusCode::BAD_REQUEST, Some(("invalid_request", &e.to_string())));
        }
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id, error = %e, "back-channel logout cannot be done now");
            audit(ctx, "error", "back-channel logout unavailable");
            return answer(StatusCode::SERVICE_UNAVAILABLE, Some(("temporarily_unavailable", "try again later")));
        }
    };
    match logout::end_sessions(store, &oidc.cfg.issuer, &verified).await {
        Ok(ended) => {
            tracing::info!(request_id = %ctx.request_id, ended, by_sid = verified.sid.is_some(), "back-channel logout");
            audit(ctx, "success", "idp back-channel logout");
            answer(StatusCode::OK, None)
        }
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id, error = %e, "back-channel logout: the store failed");
            audit(ctx, "error", "back-channel logout unavailable");
            answer(StatusCode::SERVICE_UNAVAILABLE, Some(("temporarily_unavailable", "try again later")))
        }
    }
}

/// Where the gateway's sign-out of `session` continues: the IdP's `end_session_endpoint` (with
/// `id_token_hint`, `client_id` and `post_logout_redirect_uri`) for a session made at the
/// IdP, when discovery offered one; None: signed out here only.
pub async fn continue_at_idp(ctx: &Ctx, session: &Session) -> Option<String> {
    let idp: &IdpFacts = session.idp.as_ref()?;
    let oidc = ctx.live.oidc.as_ref()?;
    let d = oidc.discovered().await.ok()?;
    let endpoint = d.end_session_endpoint.as_deref()?;
    let back = format!("{}{}", ctx.live.config.public.origin, logout::SIGNED_OUT_PATH);
    logout::end_session_url(endpoint, &oidc.cfg.client_id, idp, &back)
}

/// `GET /.stepgate/oidc/signed-out`: where the IdP sends the browser after its logout.
pub fn signed_out(_ctx: &Ctx) -> WebResult {
    let page = MessagePage {
        title: "Signed out",
        text: "You are signed out of this gateway and of your identity provider.",
        link: "/.stepgate/login",
        link_text: "Sign in again",
    };
    html(&page, StatusCode::OK, &[])
}
