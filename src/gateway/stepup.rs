//! What a client gets when it must sign in or step up: a browser navigation is redirected to
//! the gateway's page; anything else gets 401 in the RFC 9470 shape.

use super::Ctx;
use crate::body::{self, Body};
use crate::policy::routes::Requirement;
use crate::web::pages::page_headers;
use http::header::{ACCEPT, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    SignIn,
    StepUp,
}

/// A top-level browser navigation: GET or HEAD that accepts HTML.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// `/.stepgate/login?return=…` or `/.stepgate/challenge?return=…` for the request in `ctx`.
pub fn page_url(need: Need, return_to: &str) -> String {
    page_url_for(need, return_to, &Method::GET)
}

/// `page_url` for a request of `method`: a challenge for anything but GET/HEAD carries the
/// method (`&method=POST`), so the page works out the requirement that request met.
pub fn page_url_for(need: Need, return_to: &str, method: &Method) -> String {
    let page = match need {
        Need::SignIn => "login",
        Need::StepUp => "challenge",
    };
    let encoded: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let base = format!("{}/{page}?return={encoded}", super::PREFIX);
    match (need, challenged_method(method.as_str())) {
        (Need::StepUp, m) if m != Method::GET => format!("{base}&method={m}"),
        _ => base,
    }
}

/// The method a challenge is for, from the `method` parameter: one of the standard methods,
/// HEAD counting as GET; anything else (absent, unknown) is GET.
pub fn challenged_method(s: &str) -> Method {
    match s {
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        "OPTIONS" => Method::OPTIONS,
        _ => Method::GET,
    }
}

pub fn respond(ctx: &Ctx, method: &Method, headers: &HeaderMap, need: &Requirement, kind: Need) -> Response<Body> {
    let url = page_url_for(kind, &ctx.path_and_query(), method);
    if is_navigation(method, headers) {
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::FOUND;
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
    let absolute = format!("{}{}", ctx.live.config.public.origin, url);
    let body = serde_json::json!({
        "error": "insufficient_user_authentication",
        "error_description": match kind {
            Need::SignIn => "sign in first",
            Need::StepUp => "a stronger or more recent proof is required",
        },
        "required_level": need.level.as_str(),
        "max_age": need.max_age.map(|d| d.as_secs()),
        "allowed_methods": need.allow.as_ref().map(|a| a.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
        "challenge_url": absolute,
    });
    let mut resp = Response::new(body::full(body.to_string()));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    page_headers(resp.headers_mut());
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}
