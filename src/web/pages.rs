//! Page structs (askama templates in `templates/`), rendered with the headers of every gateway
//! page (`respond::page_headers`).

use super::WebError;
use crate::body::{self, Body};
use crate::respond::page_headers;
use askama::Template;
use http::header::{HeaderValue, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{Response, StatusCode};

/// Renders a page with the given status and cookies.
pub fn html(page: &impl Template, status: StatusCode, cookies: &[HeaderValue]) -> Result<Response<Body>, WebError> {
    let text = page.render().map_err(|e| WebError::Internal(format!("template: {e}")))?;
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    page_headers(h);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    for c in cookies {
        h.append(SET_COOKIE, c.clone());
    }
    Ok(resp)
}

/// 303 See Other to a local path (already sanitized by the caller).
pub fn redirect(location: &str, cookies: &[HeaderValue]) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    let h = resp.headers_mut();
    page_headers(h);
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(LOCATION, v);
    }
    for c in cookies {
        h.append(SET_COOKIE, c.clone());
    }
    resp
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub csrf: &'a str,
    pub return_to: &'a str,
    pub error: Option<&'a str>,
    pub username: &'a str,
}

#[derive(Template)]
#[template(path = "challenge.html")]
pub struct ChallengePage<'a> {
    pub csrf: &'a str,
    pub return_to: &'a str,
    /// The method of the challenged request, carried so the requirement is the one it met.
    pub method: &'a str,
    pub user: &'a str,
    pub level: &'a str,
    pub offer_totp: bool,
    pub offer_recovery: bool,
    pub no_factor: bool,
    /// The route needs a passkey and the user has none (or passkeys are off).
    pub needs_webauthn: bool,
    /// The user holds passkeys and the route accepts them.
    pub offer_webauthn: bool,
    /// Sign-in is at an identity provider and the route accepts its proof (method `idp`).
    pub offer_idp: bool,
    pub error: Option<&'a str>,
    /// The kept request's id (`&kept=`), carried through the forms.
    pub kept: &'a str,
    /// What is being confirmed, for a kept request.
    pub confirming: Option<Confirming<'a>>,
    /// In plain words: what the proof is for ("to transfer money").
    pub purpose: &'a str,
}

#[derive(Template)]
#[template(path = "enroll_totp.html")]
pub struct EnrollTotpPage<'a> {
    pub csrf: &'a str,
    pub return_to: &'a str,
    pub qr_svg: &'a str,
    pub secret: &'a str,
    pub uri: &'a str,
    pub error: Option<&'a str>,
    /// The user has an authenticator app already: confirming replaces it.
    pub replacing: bool,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage<'a> {
    pub codes: &'a [String],
    pub return_to: &'a str,
    /// The codes as a text file (the download link).
    pub download: &'a str,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    pub csrf: &'a str,
    pub user: &'a str,
    pub level: &'a str,
    pub methods: &'a str,
    pub totp: bool,
    pub recovery_left: usize,
    pub passkeys: Vec<PasskeyRow>,
    pub webauthn_enabled: bool,
    /// Devices the risk scorer knows for the user: (first seen, last seen). None: signal off.
    pub devices: Option<Vec<(String, String)>>,
}

/// One passkey as the account page lists it.
pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    pub text: &'a str,
    pub link: &'a str,
    pub link_text: &'a str,
}

#[derive(Template)]
#[template(path = "done.html")]
pub struct DonePage<'a> {
    /// What was confirmed (the rendered confirmation, or "the action").
    pub what: &'a str,
}

/// What a kept request confirms, as the challenge page shows it.
pub struct Confirming<'a> {
    /// The rendered `confirm` text (`Transfer 10 to bob`), if the rule has one.
    pub text: Option<&'a str>,
    /// The raw fields, shown beside it.
    pub fields: &'a [(String, String)],
}
