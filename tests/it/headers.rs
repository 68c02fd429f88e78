//! Header hygiene: spoofed identity headers, hop-by-hop headers, X-Forwarded-For, own cookies.

use crate::support::{Harness, Options, T0, USER};
use http::StatusCode;

const SPOOFS: [(&str, &str); 3] =
    [("X-Stepgate-User", "root"), ("X_Stepgate_User", "root"), ("x-stepgate-level", "aal3")];

fn headers_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut h = SPOOFS.to_vec();
    h.extend_from_slice(extra);
    h
}

/// No header the app got folds to `x-stepgate-*` with a spoofed value.
fn assert_no_spoof(echoed: &serde_json::Map<String, serde_json::Value>) {
    for (name, value) in echoed {
        let folded = name.replace('_', "-");
        let v = value.as_str().unwrap_or("");
        assert!(!v.contains("root") && !v.contains("aal3"), "spoofed value reached the app: {name}: {v}");
        if folded.starts_with("x-stepgate-") {
            assert!(name.starts_with("x-stepgate-"), "an underscore spelling reached the app: {name}");
        }
    }
}

#[tokio::test]
async fn public_route_strips_spoofed_identity_hop_by_hop_and_forwarded_headers() {
    let h = Harness::start().await;
    let mut c = h.client();
    c.jar.insert("stepgate_csrf".into(), "c".repeat(43));
    c.jar.insert("app".into(), "1".into());
    let headers = headers_with(&[
        ("Connection", "x-foo"),
        ("X-Foo", "1"),
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Real-IP", "1.2.3.4"),
        ("Forwarded", "for=1.2.3.4"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X_HTTP_Method_Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
        ("X-Method-Override", "DELETE"),
    ]);
    let r = c.get_with("/echo/public/x", &headers).await;
    let echoed = r.echoed_headers();
    assert_no_spoof(&echoed);
    for name in ["x-stepgate-user", "x-stepgate-level", "x_stepgate_user", "x-stepgate-auth-time", "x-stepgate-methods"]
    {
        assert!(!echoed.contains_key(name), "anonymous request: {name} must not reach the app: {echoed:?}");
    }
    assert!(!echoed.contains_key("x-foo"), "a header named by Connection is hop-by-hop: {echoed:?}");
    assert_ne!(echoed.get("connection").and_then(|v| v.as_str()), Some("x-foo"));
    assert_eq!(echoed["x-forwarded-for"], "127.0.0.1", "an untrusted peer's XFF is replaced by the peer IP");
    assert!(!echoed.contains_key("x-real-ip") && !echoed.contains_key("forwarded"));
    for name in ["x-http-method-override", "x_http_method_override", "x-http-method", "x-method-override"] {
        assert!(!echoed.contains_key(name), "a method override must not reach the app: {name}");
    }
    assert_eq!(r.json()["method"], "GET");
    assert_eq!(echoed["x-forwarded-proto"], "http");
    assert_eq!(echoed["x-forwarded-host"], crate::support::HOST);
    assert_eq!(echoed["cookie"], "app=1", "the gateway's own cookies never reach the app");
    assert!(echoed.contains_key("x-request-id"));
}

#[tokio::test]
async fn a_query_naming_another_method_is_refused_before_any_rule() {
    // Symfony, Laravel and Express's method-override turn `POST ?_method=DELETE` into a DELETE:
    // the gateway matched a POST, so the request must not reach the app.
    let h = Harness::start().await;
    let mut c = h.client();
    c.sign_in().await;
    for q in ["_method=DELETE", "%5Fmethod=DELETE", "a=1&.method=PUT"] {
        let r = c.get(&format!("/echo/public/x?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert!(r.body.contains("_method"), "the refusal names the cause: {}", r.body);
        let r = c.post_form(&format!("/echo?{q}"), &[("a", "1")]).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
    }
    // A parameter merely named like a method is no override.
    assert_eq!(c.get("/echo/public/x?payment_method=card").await.status, 200);
}

#[tokio::test]
async fn signed_in_route_gets_the_real_identity_only() {
    let h = Harness::start().await;
    let mut c = h.client();
    c.sign_in().await;
    let session = c.session().unwrap();
    c.jar.insert("app".into(), "1".into());
    assert!(c.cookie("stepgate_csrf").is_some());
    let r = c
        .get_with("/echo", &headers_with(&[("Connection", "x-foo"), ("X-Foo", "1"), ("X-Forwarded-For", "1.2.3.4")]))
        .await;
    let echoed = r.echoed_headers();
    assert_no_spoof(&echoed);
    assert_eq!(echoed["x-stepgate-user"], USER);
    assert_eq!(echoed["x-stepgate-level"], "aal1");
    assert_eq!(echoed["x-stepgate-auth-time"], T0.to_string());
    assert_eq!(echoed["x-stepgate-methods"], "password");
    assert!(!echoed.contains_key("x_stepgate_user"));
    assert!(!echoed.contains_key("x-foo"));
    assert_eq!(echoed["x-forwarded-for"], "127.0.0.1");
    assert_eq!(echoed["cookie"], "app=1");
    let all = serde_json::Value::Object(echoed).to_string();
    assert!(!all.contains(&session), "the session id never reaches the app");
}

fn header_mode(trusted: &str) -> Options {
    Options {
        listen_extra: format!("trusted_proxies = [\"{trusted}\"]"),
        identity: Some("[identity]\nsource = \"header\"\nheader = \"X-Remote-User\"\n".into()),
        ..Options::default()
    }
}

#[tokio::test]
async fn header_identity_from_a_trusted_proxy_is_honoured() {
    let h = Harness::with(header_mode("127.0.0.1/32")).await;
    let mut c = h.client();
    let r = c
        .get_with(
            "/echo",
            &[("X-Remote-User", "bob"), ("X-Stepgate-User", "root"), ("X-Forwarded-For", "198.51.100.7")],
        )
        .await;
    let echoed = r.echoed_headers();
    assert_eq!(echoed["x-stepgate-user"], "bob");
    assert_eq!(echoed["x-stepgate-level"], "aal1");
    assert_eq!(echoed["x-stepgate-methods"], "header");
    assert!(!echoed.contains_key("x-remote-user"), "the asserted header itself is not forwarded");
    assert_eq!(echoed["x-forwarded-for"], "198.51.100.7, 127.0.0.1", "a trusted proxy's chain is kept");

    // Without the header, nobody is signed in.
    let r = c.get("/echo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test]
async fn header_identity_from_an_untrusted_peer_is_stripped() {
    let h = Harness::with(header_mode("10.9.9.9/32")).await;
    let mut c = h.client();
    let r = c.get_with("/echo", &[("X-Remote-User", "bob")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "an untrusted peer cannot assert a user: {}", r.body);
    assert!(!r.body.contains("bob"));
    // On a public route the request is forwarded, without the header.
    let r = c.get_with("/echo/public/x", &[("X-Remote-User", "bob"), ("X_Remote_User", "bob")]).await;
    let echoed = r.echoed_headers();
    assert!(!echoed.contains_key("x-remote-user") && !echoed.contains_key("x_remote_user"), "{echoed:?}");
    assert!(!echoed.contains_key("x-stepgate-user"));
}

/// The headers the echo saw, from a raw response.
fn echoed_raw(r: &crate::support::raw::RawResp) -> serde_json::Map<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&r.body_text()).unwrap_or_else(|e| panic!("{e}: {}", r.head));
    v["headers"].as_object().expect("headers").clone()
}

#[tokio::test]
async fn connection_tokens_cannot_remove_the_gateways_own_headers() {
    let h = Harness::start().await;
    let mut c = h.client();
    c.sign_in().await;
    let cookie = format!("stepgate_session={}", c.session().unwrap());
    let tokens = [
        "keep-alive, X-Forwarded-For, X-Stepgate-User",
        "X-Forwarded-Host, X-Forwarded-Proto, X-Request-Id",
        "x-stepgate-level, x-stepgate-methods, x-stepgate-auth-time, host",
    ];
    for t in tokens {
        let r = crate::support::raw::get(h.addr, "/echo/x", &[("Connection", t), ("Cookie", &cookie)]).await;
        assert_eq!(r.status, 200, "{}", r.head);
        let echoed = echoed_raw(&r);
        for name in [
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-request-id",
            "x-stepgate-user",
            "x-stepgate-level",
            "x-stepgate-methods",
            "x-stepgate-auth-time",
            "host",
        ] {
            assert!(echoed.contains_key(name), "Connection: {t} removed {name}: {echoed:?}");
        }
        assert_eq!(echoed["x-stepgate-user"], USER);
    }
}

#[tokio::test]
async fn underscore_headers_are_dropped_by_default() {
    let h = Harness::start().await;
    let extra = [
        ("X_Forwarded_For", "6.6.6.6"),
        ("X_Forwarded_Host", "evil.example"),
        ("X_Forwarded_Proto", "https"),
        ("X_Real_IP", "6.6.6.6"),
        ("Transfer_Encoding", "chunked"),
        ("Content_Length", "5"),
        ("X_Custom", "1"),
        ("X-Custom-Ok", "2"),
    ];
    let r = crate::support::raw::get(h.addr, "/echo/public/x", &extra).await;
    let echoed = echoed_raw(&r);
    for name in echoed.keys() {
        assert!(!name.contains('_'), "{name} reached the app: {echoed:?}");
    }
    assert_eq!(echoed["x-custom-ok"], "2");
    assert_eq!(echoed["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn underscore_headers_can_be_kept_on_purpose_but_never_special_ones() {
    let opts = Options { upstream_extra: "allow_underscores_in_headers = true".into(), ..Options::default() };
    let h = Harness::with(opts).await;
    let extra =
        [("X_Custom", "1"), ("X_Forwarded_For", "6.6.6.6"), ("Content_Length", "5"), ("X_Stepgate_User", "root")];
    let echoed = echoed_raw(&crate::support::raw::get(h.addr, "/echo/public/x", &extra).await);
    assert_eq!(echoed["x_custom"], "1");
    for name in ["x_forwarded_for", "content_length", "x_stepgate_user"] {
        assert!(!echoed.contains_key(name), "{name} reached the app: {echoed:?}");
    }
}

#[tokio::test]
async fn routing_override_headers_never_reach_the_app() {
    let h = Harness::start().await;
    let extra = [
        ("X-Original-URL", "/admin/users"),
        ("X-Rewrite-URL", "/admin/users"),
        ("X-Original-URI", "/admin/users"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Forwarded-Uri", "/admin/users"),
        ("X-Envoy-Original-Path", "/admin/users"),
        ("X-Host", "admin.internal"),
        ("X-Original-Host", "admin.internal"),
        ("X-Forwarded-Server", "admin.internal"),
        ("X-Forwarded-Port", "8443"),
        ("X-Forwarded-Scheme", "https"),
        ("X-Forwarded-Ssl", "on"),
        ("Front-End-Https", "on"),
        ("True-Client-IP", "10.0.0.1"),
        ("X-Client-IP", "10.0.0.1"),
        ("CF-Connecting-IP", "10.0.0.1"),
        ("X-Original-Method", "DELETE"),
    ];
    let echoed = echoed_raw(&crate::support::raw::get(h.addr, "/echo/public/x", &extra).await);
    for (name, _) in extra {
        assert!(!echoed.contains_key(&name.to_ascii_lowercase()), "{name} reached the app: {echoed:?}");
    }
}

#[tokio::test]
async fn a_malformed_chunked_body_is_400_not_502() {
    let h = Harness::start().await;
    for bad in ["zz\r\nabc\r\n0\r\n\r\n", "3\r\nabcXY\r\n0\r\n\r\n", "fffffffffffffffffff\r\n"] {
        let req = format!(
            "POST /sink HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n{bad}",
            crate::support::HOST
        );
        let r = crate::support::raw::send(h.addr, req.as_bytes()).await;
        assert_eq!(r.status, 400, "chunk {bad:?}: {}", r.head);
    }
}
