//! The one place that turns errors into responses: a small HTML page for browsers, JSON for
//! everything else.

use crate::body::{self, Body};
use crate::proxy::ProxyError;
use http::header::{HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
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

/// An error response: a small self-contained HTML page (everything escaped, no script) or
/// `{"error": title, "detail": detail}`. Never cached, never framed.
pub fn error_page(status: StatusCode, title: &str, detail: &str, json: bool) -> Response<Body> {
    let (content_type, body) = if json {
        let v = serde_json::json!({ "error": title, "detail": detail });
        ("application/json", v.to_string())
    } else {
        let (title, detail) = (escape(title), escape(detail));
        let code = status.as_u16();
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{code} {title}</title>\
             <link rel=\"stylesheet\" href=\"/.stepgate/static/style.css\"></head>\n\
             <body><main class=\"error\"><h1>{title}</h1><p>{detail}</p></main></body></html>\n"
        );
        ("text/html; charset=utf-8", page)
    };
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; style-src 'self'"));
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
            ProxyError::Timeout { .. } | ProxyError::Connect { .. } | ProxyError::Upstream { .. } => Blame::Upstream,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::BadTarget(_) | ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// The response for a failed forward. The body says what kind of failure it was, never the
/// upstream's address or the underlying error; those go to the log.
pub fn proxy_error_response(err: &ProxyError, json: bool) -> Response<Body> {
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
        ProxyError::Upstream { .. } => ("Bad gateway", "The application's answer could not be relayed."),
        ProxyError::BadTarget(_) => ("Bad request", "The request path cannot be forwarded."),
        ProxyError::ClientBody(_) => ("Bad request", "The request body is malformed or was cut short."),
    };
    error_page(err.status(), title, detail, json)
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
        let resp = error_page(StatusCode::FORBIDDEN, "No <access>", "x\" onload='y' & z", false);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let h = resp.headers();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[CONTENT_SECURITY_POLICY], "default-src 'none'; style-src 'self'");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h[CACHE_CONTROL], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = text(resp).await;
        assert!(body.contains("No &lt;access&gt;"));
        assert!(body.contains("x&quot; onload=&#39;y&#39; &amp; z"));
        assert!(!body.contains("<access>"));
        assert!(!body.contains("<script"));
    }

    #[tokio::test]
    async fn json_body() {
        let resp = error_page(StatusCode::BAD_GATEWAY, "Bad gateway", "say \"hi\"", true);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
        let v: serde_json::Value = serde_json::from_str(&text(resp).await).unwrap();
        assert_eq!(v, serde_json::json!({"error": "Bad gateway", "detail": "say \"hi\""}));
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
            let resp = proxy_error_response(err, json);
            assert_eq!(resp.status(), err.status());
            let body = text(resp).await;
            assert!(!body.contains("10.9.8.7"), "{body}");
            assert!(!body.contains("refused"), "{body}");
        }
    }
}
