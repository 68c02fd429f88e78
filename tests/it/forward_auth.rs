//! Forward-auth behind real front proxies: nginx (`auth_request`) and Caddy (`forward_auth`)
//! configured with the README's snippets, the app behind them, stepgate beside them. The app
//! is a recorder in front of the demo app, so "never reached the app" is checked where it
//! matters, not inferred from a status code.

use crate::paths::{ATTACKS, RULES as ADMIN_RULES};
use crate::support::front::{FrontProxy, Kind, CADDY_SNIPPET, NGINX_SNIPPET};
use crate::support::recorder::{Recorder, Seen};
use crate::support::{raw, Harness, Options};
use http::StatusCode;

/// A gateway that trusts the front proxy (both on 127.0.0.1), the recording app, the proxy.
pub struct Stack {
    #[allow(dead_code)] // keeps the gateway running; the sign-in tests use it
    pub h: Harness,
    pub app: Recorder,
    pub front: FrontProxy,
}

pub async fn stack(kind: Kind, rules: &str) -> Stack {
    let h = Harness::with(Options {
        rules: rules.to_string(),
        listen_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        ..Options::default()
    })
    .await;
    let app = Recorder::start(h._app.addr).await;
    let front = FrontProxy::start(kind, h.addr, app.addr).await;
    Stack { h, app, front }
}

/// The requests the app saw for a path (compared without the query).
fn seen_at(seen: &[Seen], path: &str) -> usize {
    seen.iter().filter(|s| s.target.split('?').next() == Some(path)).count()
}

/// The front proxy is a working reverse proxy for stepgate's own pages, and those never
/// reach the app.
async fn gateway_pages_are_served_through(kind: Kind) {
    let s = stack(kind, crate::support::DEMO_RULES).await;
    let mut c = s.front.client();
    let page = c.browse("/.stepgate/login?return=%2Ftransfer").await;
    assert_eq!(page.status, StatusCode::OK, "{kind:?}: {}\n{}", page.body, s.front.log());
    assert!(page.body.contains("action=\"/.stepgate/login\""), "{kind:?}: {}", page.body);
    assert!(!page.csrf().is_empty());
    assert!(s.app.seen().is_empty(), "{kind:?}: the app saw a gateway page: {:?}", s.app.seen());
}

#[tokio::test]
async fn nginx_serves_the_gateway_pages() {
    gateway_pages_are_served_through(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_serves_the_gateway_pages() {
    gateway_pages_are_served_through(Kind::Caddy).await;
}

/// Every spelling of `/admin` from paths.rs, sent raw through the front proxy: the app sees
/// nothing, the client gets 302/401/403/400 and never the admin page.
async fn path_attacks_never_reach_the_app(kind: Kind) {
    let s = stack(kind, ADMIN_RULES).await;
    let control = raw::get(s.front.addr, "/public/x", &[]).await;
    assert_eq!(control.status, 200, "{kind:?}: {}\n{}", control.body_text(), s.front.log());
    assert!(control.body_text().contains("A public page"), "{kind:?}: {}", control.body_text());
    assert_eq!(seen_at(&s.app.seen(), "/public/x"), 1, "{kind:?}: the recorder sees a forward");
    s.app.clear();

    let mut failures = Vec::new();
    for target in ATTACKS {
        for accept in ["application/json", "text/html"] {
            let r = raw::get(s.front.addr, target, &[("Accept", accept)]).await;
            let body = r.body_text();
            let seen = s.app.seen();
            s.app.clear();
            let from_app = body.contains("The admin area") || body.contains("demo app");
            // Caddy serves no site for a host it was not told of: an empty 200 of its own.
            let caddy_no_site = kind == Kind::Caddy && target.contains("other.example") && body.is_empty();
            let refused = [302, 400, 401, 403].contains(&r.status) || (r.status == 200 && caddy_no_site);
            if !refused || from_app || !seen.is_empty() {
                failures.push(format!(
                    "{target} (Accept: {accept}) -> {} {:?}; the app saw {:?}",
                    r.status,
                    body.lines().next().unwrap_or(""),
                    seen.iter().map(|s| &s.target).collect::<Vec<_>>()
                ));
            }
            if r.status == 302 {
                let loc = r.header("location").unwrap_or_default();
                if !loc.starts_with("/.stepgate/login?return=") {
                    failures.push(format!("{target} (Accept: {accept}) -> redirect to {loc:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{kind:?}: protected path reached or mishandled:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn path_attacks_through_nginx_never_reach_the_app() {
    path_attacks_never_reach_the_app(Kind::Nginx).await;
}

#[tokio::test]
async fn path_attacks_through_caddy_never_reach_the_app() {
    path_attacks_never_reach_the_app(Kind::Caddy).await;
}

/// A client that names another request in the headers the front proxy uses to describe it
/// (either spelling) does not move the question away from the request it really sent.
async fn described_request_headers_from_a_client_are_not_believed(kind: Kind) {
    let s = stack(kind, ADMIN_RULES).await;
    let spoofs = [
        ("X-Original-URI", "/public/x"),
        ("X-Original-Method", "OPTIONS"),
        ("X-Forwarded-Uri", "/public/x"),
        ("X-Forwarded-Method", "OPTIONS"),
    ];
    for target in ["/admin", "/admin/x"] {
        let r = raw::get(s.front.addr, target, &[&[("Accept", "application/json")], &spoofs[..]].concat()).await;
        assert!([401, 403].contains(&r.status), "{kind:?} {target}: {} {}", r.status, r.body_text());
        assert!(s.app.seen().is_empty(), "{kind:?} {target}: the app saw {:?}", s.app.seen());
    }
}

#[tokio::test]
async fn nginx_ignores_a_clients_original_uri_headers() {
    described_request_headers_from_a_client_are_not_believed(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_ignores_a_clients_original_uri_headers() {
    described_request_headers_from_a_client_are_not_believed(Kind::Caddy).await;
}

/// A client's own `X-Stepgate-*` (any spelling) on a public route never reaches the app.
async fn client_identity_headers_never_reach_the_app(kind: Kind) {
    let s = stack(kind, crate::support::DEMO_RULES).await;
    let spoofs = [
        ("X-Stepgate-User", "admin"),
        ("x-stepgate-level", "aal3"),
        ("X_Stepgate_User", "admin"),
        ("X-Stepgate-Methods", "admin"),
        ("X-Stepgate-Risk", "admin"),
        ("X-Stepgate-Auth-Time", "admin"),
    ];
    let r = raw::get(s.front.addr, "/echo/public/x", &spoofs).await;
    assert_eq!(r.status, 200, "{kind:?}: {}\n{}", r.body_text(), s.front.log());
    let seen = s.app.seen();
    assert_eq!(seen.len(), 1, "{kind:?}: {seen:?}");
    assert_eq!(seen[0].method, "GET", "{kind:?}: the app sees the method the client sent");
    for (name, value) in &seen[0].headers {
        let folded = name.replace('_', "-");
        assert!(
            !folded.starts_with("x-stepgate-"),
            "{kind:?}: an anonymous request reached the app with {name}: {value}"
        );
        assert!(!value.contains("admin") && !value.contains("aal3"), "{kind:?}: {name}: {value} reached the app");
    }
}

#[tokio::test]
async fn nginx_drops_a_clients_identity_headers() {
    client_identity_headers_never_reach_the_app(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_drops_a_clients_identity_headers() {
    client_identity_headers_never_reach_the_app(Kind::Caddy).await;
}

/// An API client on a protected route gets the RFC 9470 401 through the front proxy.
async fn api_client_gets_the_rfc9470_answer(kind: Kind) {
    let s = stack(kind, crate::support::DEMO_RULES).await;
    let mut c = s.front.client();
    let r = c.get_with("/transfer", &[("accept", "application/json")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{kind:?}: {}\n{}", r.body, s.front.log());
    let challenge = r.header("www-authenticate").unwrap_or_else(|| panic!("{kind:?}: no WWW-Authenticate: {r:?}"));
    // Nobody signed in: RFC 6750 §3.1, the scheme and realm without an error code (nginx
    // relays the header but writes its own body).
    let parsed = crate::support::www_auth::parse(challenge).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    assert_eq!(parsed.scheme, "Bearer", "{kind:?}: {challenge}");
    assert!(!parsed.params.contains_key("error"), "{kind:?}: {challenge}");
    assert!(r.header("location").is_none(), "{kind:?}: an API client is not redirected");
    assert_eq!(r.headers.get_all("www-authenticate").iter().count(), 1, "{kind:?}: one challenge header");
    assert!(s.app.seen().is_empty(), "{kind:?}: the app saw {:?}", s.app.seen());
}

#[tokio::test]
async fn nginx_relays_the_rfc9470_401() {
    api_client_gets_the_rfc9470_answer(Kind::Nginx).await;
}

#[tokio::test]
async fn caddy_relays_the_rfc9470_401() {
    api_client_gets_the_rfc9470_answer(Kind::Caddy).await;
}

/// The endpoint answers only the trusted proxies: a peer not listed gets 403, whatever it
/// claims about the request.
#[tokio::test]
async fn the_auth_endpoint_refuses_an_untrusted_peer() {
    let h = Harness::with(Options { rules: ADMIN_RULES.into(), ..Options::default() }).await;
    let r = raw::get(h.addr, "/.stepgate/auth", &[("X-Original-URI", "/public/x"), ("X-Original-Method", "GET")]).await;
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert!(r.header("x-stepgate-user").is_none());
}

/// The README shows the snippets these tests run, byte for byte.
#[test]
fn the_readme_shows_the_tested_snippets() {
    let readme = include_str!("../../README.md");
    for (name, snippet) in
        [("docs/forward-auth/nginx.conf", NGINX_SNIPPET), ("docs/forward-auth/Caddyfile", CADDY_SNIPPET)]
    {
        assert!(readme.contains(snippet), "README.md does not show {name} as it is");
    }
}
