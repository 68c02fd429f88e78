//! What a client gets when it must sign in or step up: a browser navigation is sent to the
//! gateway's page; anything else gets 401 in the RFC 9470 shape.

use crate::body::{self, Body};
use crate::pipeline::Ctx;
use crate::policy::routes::Requirement;
use crate::respond::{page_headers, refusal};
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
    if (ctx.navigation || form) && send_to == SendTo::Redirect {
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = if form { StatusCode::SEE_OTHER } else { StatusCode::FOUND };
        page_headers(resp.headers_mut());
        if let Ok(v) = HeaderValue::from_str(&url) {
            resp.headers_mut().insert(LOCATION, v);
        }
        return resp;
    }
    let mut challenge =
        format!("StepUp error=\"insufficient_user_authentication\", acr_values=\"{}\"", need.level.as_str());
    if let Some(max_age) = need.max_age {
        challenge.push_str(&format!(", max_age={}", max_age.as_secs()));
    }
    let mut extra = serde_json::Map::new();
    extra.insert("required_level".into(), need.level.as_str().into());
    extra.insert("max_age".into(), need.max_age.map(|d| d.as_secs()).into());
    let allowed = need.allow.as_ref().map(|a| a.iter().map(|m| m.as_str()).collect::<Vec<_>>());
    extra.insert("allowed_methods".into(), allowed.into());
    extra.insert("challenge_url".into(), format!("{}{}", ctx.live.config.public.origin, url).into());
    if let Some(k) = &kept {
        extra.insert("challenge_id".into(), k.id.into());
    }
    let description = match kind {
        Need::SignIn => "sign in first",
        Need::StepUp => "a stronger or more recent proof is required",
    };
    let json = crate::respond::Reply { json: true, ..ctx.reply() };
    let mut resp = refusal(StatusCode::UNAUTHORIZED, "insufficient_user_authentication", description, json, extra);
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        h.insert(WWW_AUTHENTICATE, v);
    }
    if ctx.navigation {
        if let Ok(v) = HeaderValue::from_str(&url) {
            h.insert(LOCATION, v.clone());
            h.insert(X_REDIRECT, v);
        }
    }
    resp
}
