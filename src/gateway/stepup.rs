//! What a client gets when it must sign in or step up: a browser navigation is sent to the
//! gateway's page; anything else gets 401 in the RFC 9470 shape.

use crate::body::{self, Body};
use crate::pipeline::Ctx;
use crate::policy::cause::Cause;
use crate::policy::routes::{Requirement, Rule};
use crate::respond::{page_headers, refusal, Reply};
use crate::web::urls::{page_url_for, Need};
use http::header::{HeaderName, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

/// The page URL for a front proxy to redirect a browser to (nginx reads it off a 401).
pub const X_REDIRECT: HeaderName = HeaderName::from_static("x-stepgate-redirect");

/// How a browser navigation is sent to the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTo {
    /// 302 Found to the page (the gateway as the proxy, and front proxies that relay the
    /// auth answer as it is: Caddy, Traefik, Envoy).
    Redirect,
    /// 401 carrying the page URL in `Location` and `X-Stepgate-Redirect` (nginx's
    /// `auth_request` passes on only 2xx, 401 and 403; its config redirects).
    Unauthorized,
}

pub fn respond(ctx: &Ctx, need: &Requirement, kind: Need, send_to: SendTo) -> Response<Body> {
    respond_kept(ctx, need, kind, send_to, None)
}

/// A request the gateway kept (`pipeline::kept`): the page URL carries its id, a browser form
/// is sent there with 303 (the browser comes back with GET), and the 401 body has
/// `challenge_id` for the client to retry with (`X-Stepgate-Confirmation`).
pub struct KeptRef<'a> {
    pub id: &'a str,
    /// A browser form submission (sent to the page), not `fetch` or an API client.
    pub form: bool,
}

pub fn respond_kept(
    ctx: &Ctx,
    need: &Requirement,
    kind: Need,
    send_to: SendTo,
    kept: Option<KeptRef<'_>>,
) -> Response<Body> {
    let mut url = page_url_for(kind, &ctx.path_and_query(), &ctx.method);
    if let Some(k) = &kept {
        url.push_str("&kept=");
        url.push_str(k.id);
    }
    let form = kept.as_ref().is_some_and(|k| k.form);
    // A token client (an API, a workload) never gets a page, only the 401.
    let machine = ctx.machine_client();
    let page = ctx.navigation && !machine;
    if (ctx.navigation || form) && !machine && send_to == SendTo::Redirect {
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = if form { StatusCode::SEE_OTHER } else { StatusCode::FOUND };
        page_headers(resp.headers_mut());
        if let Ok(v) = HeaderValue::from_str(&url) {
            resp.headers_mut().insert(LOCATION, v);
        }
        return resp;
    }
    let description = match kind {
        Need::SignIn => "sign in first",
        Need::StepUp => "a stronger or more recent proof is required",
    };
    let challenge = match kind {
        // No credentials at all: RFC 6750 §3.1, no error code.
        Need::SignIn => format!("Bearer realm=\"{}\"", ctx.live.config.public.origin),
        Need::StepUp => step_up_challenge(ctx, need, description),
    };
    let mut extra = serde_json::Map::new();
    extra.insert("required_level".into(), need.level.as_str().into());
    extra.insert("max_age".into(), need.max_age.map(|d| d.as_secs()).into());
    let allowed = need.allow.as_ref().map(|a| a.iter().map(|m| m.as_str()).collect::<Vec<_>>());
    extra.insert("allowed_methods".into(), allowed.into());
    extra.insert("challenge_url".into(), format!("{}{}", ctx.live.config.public.origin, url).into());
    if let Some(k) = &kept {
        extra.insert("challenge_id".into(), k.id.into());
    }
    let json = Reply { json: true, ..ctx.reply() };
    let mut resp = refusal(StatusCode::UNAUTHORIZED, "insufficient_user_authentication", description, json, extra);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        h.insert(WWW_AUTHENTICATE, v);
    }
    if page {
        if let Ok(v) = HeaderValue::from_str(&url) {
            h.insert(LOCATION, v.clone());
            h.insert(X_REDIRECT, v);
        }
    }
    resp
}

/// RFC 9470 §3: `Bearer error="insufficient_user_authentication"` with the `acr_values` that
/// would do (from `[bearer]`'s table for a token client, stepgate's level names otherwise)
/// and `max_age` when the rule has one.
fn step_up_challenge(ctx: &Ctx, need: &Requirement, description: &str) -> String {
    let acr_values = match (&ctx.live.config.bearer, &ctx.bearer) {
        (Some(b), Some(_)) => crate::bearer::acr_values(b, need.level),
        _ => need.level.as_str().to_string(),
    };
    let mut challenge = format!(
        "Bearer error=\"insufficient_user_authentication\", error_description=\"{description}\", acr_values=\"{acr_values}\""
    );
    if let Some(max_age) = need.max_age {
        challenge.push_str(&format!(", max_age={}", max_age.as_secs()));
    }
    challenge
}

/// A refusal of a bearer token's request in RFC 6750 §3 terms, when the cause is one:
/// `invalid_token` (401: the token does not verify, or is older than `max_credential_age`)
/// and `insufficient_scope` (403, naming the scopes the rule needs).
pub fn token_refusal(ctx: &Ctx, cause: Cause, rule: Option<&Rule>) -> Option<Response<Body>> {
    let token = ctx.live.config.bearer.is_some() && ctx.bearer.is_some();
    let (status, error, description, scope) = match cause {
        Cause::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token", "the access token is not valid", None),
        Cause::CredentialTooOld if token => {
            (StatusCode::UNAUTHORIZED, "invalid_token", "the access token was issued too long ago; get a new one", None)
        }
        Cause::MissingScope if token => {
            let scopes = rule.map(|r| r.conditions.scopes.join(" ")).unwrap_or_default();
            (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "the access token lacks a scope this address needs",
                Some(scopes),
            )
        }
        _ => return None,
    };
    let mut challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    let mut extra = serde_json::Map::new();
    if let Some(scope) = scope {
        challenge.push_str(&format!(", scope=\"{scope}\""));
        extra.insert("scope".into(), scope.into());
    }
    let mut resp = refusal(status, error, description, Reply { json: true, ..ctx.reply() }, extra);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    Some(resp)
}
