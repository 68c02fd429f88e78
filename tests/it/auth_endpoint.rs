//! `/.stepgate/auth`, asked directly the way a front proxy asks it: the same decisions as the
//! proxy, read from X-Forwarded-*/X-Original-* headers, and only from trusted proxies.

use crate::support::flows::{enroll_totp, signed_in, submit_totp};
use crate::support::{totp, Client, Harness, Options, Resp};
use http::StatusCode;

fn trusting_localhost() -> Options {
    Options {
        listen_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        rules: format!(
            "[[rule]]\nname = \"closed\"\npath = \"/closed/**\"\naction = \"deny\"\n{}",
            crate::support::DEMO_RULES
        ),
        ..Options::default()
    }
}

/// Asks the endpoint about `method uri`, as nginx does (X-Original-*), with `extra` headers.
async fn ask(c: &mut Client, auth: &str, method: &str, uri: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers =
        vec![("x-original-method", method), ("x-original-uri", uri), ("x-forwarded-host", "stepgate.test")];
    headers.extend_from_slice(extra);
    c.get_with(auth, &headers).await
}

const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml");
const API: (&str, &str) = ("accept", "application/json");

#[tokio::test]
async fn peers_outside_trusted_proxies_are_refused() {
    // Trusts another network: the test client (127.0.0.1) is not a trusted proxy.
    let opts = Options { listen_extra: "trusted_proxies = [\"10.0.0.0/8\"]".into(), ..Options::default() };
    let h = Harness::with(opts).await;
    let mut c = h.client();
    for uri in ["/public/x", "/account", "/transfer"] {
        let r = ask(&mut c, "/.stepgate/auth", "GET", uri, &[API]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}: {}", r.body);
        assert!(r.header("x-stepgate-user").is_none());
        assert!(r.body.contains("trusted_proxies"), "{}", r.body);
    }
    // Even a signed-in user's own cookie does not make the endpoint answer an untrusted peer.
    let mut c = signed_in(&h).await;
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/account", &[API]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn answers_follow_the_rules_for_anonymous_requests() {
    let h = Harness::with(trusting_localhost()).await;
    let mut c = h.client();
    // Public route: allowed, nobody named.
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/public/page?x=1", &[HTML]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.header("x-stepgate-user").is_none());
    assert!(r.header("x-request-id").is_some_and(|id| id.len() == 16));
    // A browser navigation to a protected route: 401 with the sign-in page for nginx...
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/account?tab=1", &[HTML]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.header("x-stepgate-redirect"), Some("/.stepgate/login?return=%2Faccount%3Ftab%3D1"));
    assert_eq!(r.header("location"), r.header("x-stepgate-redirect"));
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer realm=")));
    // ...and 302 for front proxies that relay the answer as it is.
    let r = ask(&mut c, "/.stepgate/auth?redirect=1", "GET", "/account", &[HTML]).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.location(), "/.stepgate/login?return=%2Faccount");
    // An API client without credentials: 401 with the Bearer scheme and no error code (RFC 6750
    // §3.1), the JSON body saying what is needed, and no page to go to.
    let r = ask(&mut c, "/.stepgate/auth?redirect=1", "POST", "/transfer", &[API]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="http://stepgate.test""#));
    assert_eq!(r.json()["error"], "insufficient_user_authentication");
    assert!(r.header("x-stepgate-redirect").is_none());
    assert_eq!(r.json()["required_level"], "aal2");
    // A denying rule: 403.
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/closed/x", &[API]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_uri_is_normalized_like_a_proxied_one() {
    let h = Harness::with(trusting_localhost()).await;
    let mut c = h.client();
    // What the proxy refuses with 400, the endpoint refuses with 400.
    for uri in ["/admin%2fx", "/public/..%2f..%2fadmin", "/admin%00", "/%zz", "http://evil.example/admin", "admin"] {
        let r = ask(&mut c, "/.stepgate/auth", "GET", uri, &[API]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {} {}", r.status, r.body);
    }
    // Dot segments resolve before matching: /public/../admin is /admin, which needs a session.
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/public/../admin/x", &[API]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // The gateway's own paths are never the app's: asking about them is refused.
    for uri in ["/.stepgate/login", "/.STEPGATE/account", "/public/../.stepgate/auth"] {
        let r = ask(&mut c, "/.stepgate/auth", "GET", uri, &[API]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}: {}", r.body);
    }
    // No URI at all, or two of them: 400.
    let r = c.get_with("/.stepgate/auth", &[API]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/public/x", &[API, ("x-original-uri", "/admin")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // CONNECT is no request to let through.
    let r = ask(&mut c, "/.stepgate/auth", "CONNECT", "/public/x", &[API]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn refusals_of_gateway_paths_and_connect_are_audited_as_denials() {
    crate::support::audit::capture();
    let h = Harness::with(trusting_localhost()).await;
    let mut c = h.client();
    for (method, uri, cause) in [
        ("GET", "/.stepgate/login", "gateway_path"),
        ("GET", "/Public/../.STEPGATE/x", "gateway_path"),
        ("CONNECT", "/public/x", "method_refused"),
    ] {
        let r = ask(&mut c, "/.stepgate/auth", method, uri, &[API]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {uri}");
        let records = crate::support::audit::for_request(r.header("x-request-id").unwrap());
        let decision: Vec<_> = records.iter().filter(|v| v["kind"] == "decision").collect();
        assert_eq!(decision.len(), 1, "one decision record for {method} {uri}: {records:?}");
        assert_eq!((&decision[0]["decision"], &decision[0]["reason"]), (&"deny".into(), &cause.into()));
    }
}

#[tokio::test]
async fn a_session_is_answered_with_its_identity_and_steps_up() {
    let h = Harness::with(trusting_localhost()).await;
    // Enrolling counts as a fresh second factor: enroll on one session, step up on another.
    let enrolled = enroll_totp(&h, &mut signed_in(&h).await).await;
    let mut c = signed_in(&h).await;
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/account", &[HTML]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-stepgate-user"), Some("alice"));
    assert_eq!(r.header("x-stepgate-level"), Some("aal1"));
    assert_eq!(r.header("x-stepgate-methods"), Some("password"));
    assert!(r.header("x-stepgate-risk").is_some());
    // Traefik's and Caddy's names for the same facts.
    let r = c
        .get_with(
            "/.stepgate/auth",
            &[
                ("x-forwarded-method", "POST"),
                ("x-forwarded-uri", "/transfer"),
                ("x-forwarded-host", "stepgate.test"),
                HTML,
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a POST needs aal2: {}", r.body);
    // A POST is no navigation: no page to redirect to, but the challenge URL for the method.
    assert!(r.header("x-stepgate-redirect").is_none());
    let url = r.json()["challenge_url"].as_str().map(str::to_string);
    assert_eq!(url.as_deref(), Some("http://stepgate.test/.stepgate/challenge?return=%2Ftransfer&method=POST"));
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/transfer", &[HTML]).await;
    assert_eq!(r.header("x-stepgate-redirect"), Some("/.stepgate/challenge?return=%2Ftransfer"));
    // A TOTP step-up on the gateway's page, then the same question is answered yes, at aal2.
    let code = totp::code(&enrolled.secret, h.now());
    let done = submit_totp(&mut c, "/transfer", &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let r = ask(&mut c, "/.stepgate/auth", "POST", "/transfer", &[API]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-stepgate-level"), Some("aal2"));
    assert_eq!(r.header("x-stepgate-methods"), Some("password,totp"));
}

#[tokio::test]
async fn the_request_id_goes_back_to_the_client_and_a_trusted_proxys_id_is_kept() {
    let h = Harness::with(trusting_localhost()).await;
    let mut c = h.client();
    // Forwarded: the app and the client see the same id.
    let r = c.get("/echo/public/x").await;
    let id = r.header("x-request-id").expect("an id on a forwarded answer").to_string();
    assert_eq!(id.len(), 16);
    assert_eq!(r.echoed_headers()["x-request-id"], id.as_str());
    // A trusted proxy's plain id is kept, through to the app and back.
    let r = c.get_with("/echo/public/x", &[("x-request-id", "nginx-42.a_b")]).await;
    assert_eq!(r.header("x-request-id"), Some("nginx-42.a_b"));
    assert_eq!(r.echoed_headers()["x-request-id"], "nginx-42.a_b");
    // Anything else is replaced.
    let r = c.get_with("/echo/public/x", &[("x-request-id", "has space; and more")]).await;
    assert_ne!(r.header("x-request-id"), Some("has space; and more"));
    // From an untrusted client, never kept.
    let h = Harness::start().await;
    let r = h.client().get_with("/echo/public/x", &[("x-request-id", "client-chosen")]).await;
    assert_ne!(r.header("x-request-id"), Some("client-chosen"));
    // Refusals carry it too, in the body as well as the header.
    let r = h.client().get_with("/admin%2fx", &[("accept", "application/json")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["request_id"], r.header("x-request-id").unwrap());
}

#[tokio::test]
async fn a_request_named_twice_is_refused_and_envoys_path_form_is_answered() {
    let h = Harness::with(trusting_localhost()).await;
    let mut c = h.client();
    // nginx passes a client's own X-Forwarded-Uri on beside its X-Original-URI: never decided
    // on either, refused.
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/admin/x", &[API, ("x-forwarded-uri", "/public/x")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = ask(&mut c, "/.stepgate/auth", "GET", "/public/x", &[API, ("x-forwarded-method", "GET")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // Envoy's ext_authz appends the original path to the endpoint's; browsers get a 302.
    let r = c.get_with("/.stepgate/auth/account?tab=2", &[HTML]).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.body);
    assert_eq!(r.location(), "/.stepgate/login?return=%2Faccount%3Ftab%3D2");
    let r = c.get_with("/.stepgate/auth/public/x", &[API]).await;
    assert_eq!(r.status, StatusCode::OK);
    // The appended path is normalized on its own: it cannot climb out of itself, and a path in
    // a header as well is refused.
    let r = c.get_with("/.stepgate/auth/../../admin", &[API]).await;
    assert_ne!(r.status, StatusCode::OK, "{}", r.body);
    let r = c.get_with("/.stepgate/auth/public/x", &[API, ("x-original-uri", "/admin")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The endpoint answers only its own exact name.
    assert_eq!(c.get_with("/.stepgate/authx", &[API]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.get_with("/.stepgate/%61uth", &[API]).await.status, StatusCode::NOT_FOUND);
}
