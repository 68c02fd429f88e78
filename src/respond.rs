//! The one place that turns errors into responses: a small HTML page for browsers, JSON for
//! everything else, with the same headers as every gateway page.

use crate::body::{self, Body};
use crate::proxy::ProxyError;

/// The request id, sent back on every answer and forwarded to the app.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{Response, StatusCode};

/// True unless the client prefers HTML. Browsers send `Accept: text/html,...`; API clients send
/// `application/json`, `*/*` or nothing, and get JSON. HTML wins a tie with JSON.
pub fn wants_json(headers: &HeaderMap) -> bool {
    let mut html_q = 0.0f32;
    let mut json_q = 0.0f32;
    for value in headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()) {
        for range in value.split(',') {
            let mut params = range.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0)
                .clamp(0.0, 1.0);
            match media.as_str() {
                "text/html" | "application/xhtml+xml" => html_q = html_q.max(q),
                m if m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")) => {
                    json_q = json_q.max(q)
                }
                _ => {}
            }
        }
    }
    !(html_q > 0.0 && html_q >= json_q)
}

/// How to answer this request's refusals: JSON or HTML, and the request id to show.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub json: bool,
    pub request_id: &'a str,
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages' CSP, with the origin of `url` also allowed as a form's target (a form whose
/// answer redirects there: the sign-out continuing at the IdP). None if `url` has no origin.
pub fn csp_with_form_action(url: &str) -> Option<HeaderValue> {
    let uri: http::Uri = url.parse().ok()?;
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    if !matches!(scheme, "https" | "http") {
        return None;
    }
    let origin = format!("{scheme}://{authority}");
    if origin.contains([';', ',', ' ', '@', '\'', '"']) {
        return None;
    }
    HeaderValue::from_str(&CSP.replace("form-action 'self'", &format!("form-action 'self' {origin}"))).ok()
}

/// Strict headers on every response the gateway makes itself (pages, refusals, JSON): no
/// inline script, no framing, no caching, no sniffing.
pub fn page_headers(h: &mut HeaderMap) {
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("same-origin"));
}

/// The one refusal response: a small self-contained HTML page (everything escaped, no
/// script) or `{"error": title, "error_description": detail, "request_id": …}`. Both carry
/// the request id, so a user can quote it and an operator find the log lines.
pub fn error_page(status: StatusCode, title: &str, detail: &str, reply: Reply<'_>) -> Response<Body> {
    refusal(status, title, detail, reply, serde_json::Map::new())
}

/// `error_page`, with more fields for the JSON shape (the RFC 9470 answer's `required_level`...).
pub fn refusal(
    status: StatusCode,
    title: &str,
    detail: &str,
    reply: Reply<'_>,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Response<Body> {
    let (content_type, body) = if reply.json {
        let mut v = serde_json::Map::new();
        v.insert("error".into(), title.into());
        v.insert("error_description".into(), detail.into());
        v.insert("request_id".into(), reply.request_id.into());
        v.extend(extra);
        ("application/json", serde_json::Value::Object(v).to_string())
    } else {
        let (title, detail, id) = (escape(title), escape(detail), escape(reply.request_id));
        let code = status.as_u16();
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{code} {title}</title>\
             <link rel=\"stylesheet\" href=\"/.stepgate/static/style.css\"></head>\n\
             <body><main class=\"problem\"><p class=\"brand\">stepgate</p><h1>{title}</h1><p>{detail}</p>\
             <p><a href=\"/\">Back to the start page</a> · <a href=\"/.stepgate/account\">Your sign-in settings</a></p>\
             <p class=\"request-id small\">Request id: <code>{id}</code> (give it if you ask for help)</p>\
             </main></body></html>\n"
        );
        ("text/html; charset=utf-8", page)
    };
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    page_headers(h);
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(reply.request_id) {
        h.insert(X_REQUEST_ID, v);
    }
    resp
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whose fault a failed forward was: decides 4xx or 5xx, and how loudly it is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Client,
    Upstream,
}

impl ProxyError {
    pub fn blame(&self) -> Blame {
        match self {
            ProxyError::BadTarget(_) | ProxyError::ClientBody(_) => Blame::Client,
            ProxyError::Timeout { .. }
            | ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::PoolFull { .. } => Blame::Upstream,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::PoolFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::ClientBody(e) if crate::body::caused_by_stall(&**e) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BadTarget(_) | ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// The response for a failed forward. The body says what kind of failure it was, never the
/// upstream's address or the underlying error; those go to the log.
pub fn proxy_error_response(err: &ProxyError, reply: Reply<'_>) -> Response<Body> {
    let status = err.status().as_u16();
    match err.blame() {
        Blame::Client => {
            tracing::info!(error = %err, status, blame = "client", "forwarding failed: the client's request")
        }
        Blame::Upstream => tracing::warn!(error = %err, status, blame = "upstream", "forwarding failed"),
    }
    let (title, detail) = match err {
        ProxyError::Timeout { .. } => ("Gateway timeout", "The application did not answer in time."),
        ProxyError::Connect { .. } => ("Bad gateway", "The application is not reachable."),
        ProxyError::PoolFull { .. } => ("Service unavailable", "The application is busy; try again shortly."),
        ProxyError::Upstream { .. } => ("Bad gateway", "The application's answer could not be relayed."),
        ProxyError::BadTarget(_) => ("Bad request", "The request path cannot be forwarded."),
        ProxyError::ClientBody(_) if err.status() == StatusCode::REQUEST_TIMEOUT => {
            ("Request timeout", "The request body stopped arriving.")
        }
        ProxyError::ClientBody(_) => ("Bad request", "The request body is malformed or was cut short."),
    };
    let mut resp = error_page(err.status(), title, detail, reply);
    if matches!(err, ProxyError::ClientBody(_)) {
        // The rest of the body was never read: the connection cannot carry another request.
        resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(v));
        h
    }

    async fn text(resp: Response<Body>) -> String {
        String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn json_unless_html_preferred() {
        assert!(wants_json(&HeaderMap::new()));
        assert!(wants_json(&accept("*/*")));
        assert!(wants_json(&accept("application/json")));
        assert!(wants_json(&accept("application/problem+json, text/html;q=0.5")));
        assert!(wants_json(&accept("text/html;q=0")));
        assert!(!wants_json(&accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")));
        assert!(!wants_json(&accept("application/json, text/html")));
    }

    #[tokio::test]
    async fn html_page_is_escaped_and_locked_down() {
        let resp = error_page(
            StatusCode::FORBIDDEN,
            "No <access>",
            "x\" onload='y' & z",
            Reply { json: false, request_id: "ab<12" },
        );
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let h = resp.headers();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(h[X_REQUEST_ID], "ab<12");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h[CACHE_CONTROL], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = text(resp).await;
        assert!(body.contains("No &lt;access&gt;"));
        assert!(body.contains("x&quot; onload=&#39;y&#39; &amp; z"));
        assert!(!body.contains("<access>"));
        assert!(body.contains("Request id: <code>ab&lt;12</code>"), "{body}");
        assert!(!body.contains("<script"));
    }

    #[tokio::test]
    async fn json_body() {
        let resp =
            error_page(StatusCode::BAD_GATEWAY, "Bad gateway", "say \"hi\"", Reply { json: true, request_id: "r1" });
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
        let v: serde_json::Value = serde_json::from_str(&text(resp).await).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "Bad gateway", "error_description": "say \"hi\"", "request_id": "r1"})
        );
    }

    #[tokio::test]
    async fn proxy_errors_map_to_status_without_leaking_addresses() {
        let connect = ProxyError::Connect { authority: "10.9.8.7:8080".into(), source: "connection refused".into() };
        let timeout =
            ProxyError::Timeout { authority: "10.9.8.7:8080".into(), after: std::time::Duration::from_millis(200) };
        let upstream = ProxyError::Upstream { authority: "10.9.8.7:8080".into(), source: "closed".into() };
        assert_eq!(connect.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(upstream.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        for (err, json) in [(&connect, true), (&timeout, false), (&upstream, true)] {
            let resp = proxy_error_response(err, Reply { json, request_id: "r1" });
            assert_eq!(resp.status(), err.status());
            let body = text(resp).await;
            assert!(!body.contains("10.9.8.7"), "{body}");
            assert!(!body.contains("refused"), "{body}");
        }
    }
}
