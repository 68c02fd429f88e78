//! The URLs of the gateway's sign-in and challenge pages, with the request to come back to.

use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    SignIn,
    StepUp,
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
    let base = format!("{}/{page}?return={encoded}", crate::pipeline::PREFIX);
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
