//! Bearer access tokens: verified against the issuer's JWKS (served here by a test server),
//! refused with `invalid_token` before anything about the route is said, and answered per
//! RFC 9470 when too weak or too old; `insufficient_scope` per RFC 6750.

use crate::support::tokens::{self, claims, sign, JwksServer, Key};
use crate::support::www_auth::{parse, Challenge};
use crate::support::{Harness, Options, Resp};
use jsonwebtoken::Algorithm;
use serde_json::Value;
use std::time::Duration;

const RULES: &str = r#"
[[rule]]
name = "payments"
path = "/echo/pay/**"
require = "aal1"
scopes = ["payments:write"]

[[rule]]
name = "wire"
path = "/echo/wire"
require = "aal2"
max_age = "5m"

[[rule]]
name = "fresh"
path = "/echo/fresh"
require = "aal1"
max_credential_age = "10m"

[[rule]]
name = "mesh"
path = "/echo/mesh/**"
require = "aal1"
workload = "spiffe://example.org/ns/prod/sa/*"

[[rule]]
name = "partners"
path = "/echo/partners/**"
require = "aal1"
client = "billing-*"

[[rule]]
name = "open"
path = "/echo/public/**"
require = "none"

[default]
require = "aal1"
"#;

struct Api {
    h: Harness,
    rsa: Key,
    ec: Key,
    jwks: JwksServer,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let rsa = tokens::key(dir.path(), "rsa-1", Algorithm::RS256);
    let ec = tokens::key(dir.path(), "ec-1", Algorithm::ES256);
    let jwks = JwksServer::start(tokens::jwks(&[&rsa, &ec])).await;
    let h =
        Harness::with(Options { rules: RULES.into(), extra: tokens::bearer_section(&jwks.url), ..Default::default() })
            .await;
    Api { h, rsa, ec, jwks, _dir: dir }
}

async fn call(h: &Harness, path: &str, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    h.client().get_with(path, &[("authorization", &auth), ("accept", "application/json")]).await
}

fn challenge(r: &Resp) -> Challenge {
    let v = r.header("www-authenticate").unwrap_or_else(|| panic!("no WWW-Authenticate: {} {}", r.status, r.body));
    parse(v).unwrap_or_else(|e| panic!("not RFC 9110 grammar: {e}"))
}

#[tokio::test]
async fn a_valid_token_passes_with_rsa_and_ec_keys_and_names_the_client() {
    let a = api().await;
    for key in [&a.rsa, &a.ec] {
        let r = call(&a.h, "/echo/orders", &sign(key, &claims(a.h.now()))).await;
        assert_eq!(r.status, 200, "{:?}: {}", key.alg, r.body);
        let seen = r.echoed_headers();
        assert_eq!(seen["x-stepgate-user"], "svc-user-1");
        assert_eq!(seen["x-stepgate-methods"], "bearer");
        assert_eq!(seen["x-stepgate-level"], "aal1");
        assert_eq!(seen["x-stepgate-client"], "billing-cli");
        assert!(seen.get("x-stepgate-workload").is_none(), "a token proves no workload: {seen:?}");
    }
}

#[tokio::test]
async fn a_token_client_is_no_workload_and_no_user() {
    let a = api().await;
    let now = a.h.now();
    // The issuer calls its client by a SPIFFE ID the mesh rule admits: only a certificate
    // from the client CA proves a workload, so this is refused.
    let mut posing = claims(now);
    posing["client_id"] = "spiffe://example.org/ns/prod/sa/billing".into();
    let r = call(&a.h, "/echo/mesh/ledger", &sign(&a.rsa, &posing)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.json()["error_description"].as_str().unwrap().contains("workload identities"), "{}", r.body);
    // A `client` rule admits the clients its glob names, and no other.
    assert_eq!(call(&a.h, "/echo/partners/x", &sign(&a.rsa, &claims(now))).await.status, 200);
    let mut other = claims(now);
    other["client_id"] = "payroll-cli".into();
    let r = call(&a.h, "/echo/partners/x", &sign(&a.rsa, &other)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.json()["error_description"].as_str().unwrap().contains("API clients"), "{}", r.body);
    // A token without `sub` names no user: a client registered as "alice" is not alice.
    let mut no_user = claims(now);
    no_user.as_object_mut().unwrap().remove("sub");
    no_user["client_id"] = "alice".into();
    let r = call(&a.h, "/echo/orders", &sign(&a.rsa, &no_user)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(challenge(&r).params["error"], "invalid_token", "{}", r.body);
}

#[tokio::test]
async fn bad_tokens_are_invalid_token_and_learn_nothing_of_the_route() {
    let a = api().await;
    let now = a.h.now();
    let good = claims(now);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let dir = tempfile::tempdir().unwrap();
    let stranger = tokens::key(dir.path(), "rsa-1", Algorithm::RS256);
    let good_token = sign(&a.rsa, &good);
    let cases: Vec<(&str, String)> = vec![
        ("wrong issuer", sign(&a.rsa, &with("iss", "https://evil.test".into()))),
        ("wrong audience", sign(&a.rsa, &with("aud", "https://other-api.test".into()))),
        ("expired", sign(&a.rsa, &with("exp", (now - 120).into()))),
        ("not yet valid", sign(&a.rsa, &with("nbf", (now + 600).into()))),
        ("alg none", tokens::unsigned(&good)),
        ("HS256 keyed with the public key", tokens::hs256_with_public_key(&a.rsa, &good)),
        ("unknown kid", sign(&Key { kid: "nope".into(), ..tokens::key(dir.path(), "x", Algorithm::RS256) }, &good)),
        ("another key under a known kid", sign(&stranger, &good)),
        ("tampered payload", tokens::tampered(&good_token, &with("sub", "admin".into()))),
        ("typ JWT (an ID token, not RFC 9068)", tokens::sign_with(&a.rsa, &good, Some("JWT"))),
        ("garbage", "not.a.jwt".into()),
    ];
    for (what, token) in cases {
        // On a route that needs aal2: the answer must not say so.
        let r = call(&a.h, "/echo/wire", &token).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        let c = challenge(&r);
        assert_eq!(c.scheme, "Bearer", "{what}");
        assert_eq!(c.params["error"], "invalid_token", "{what}");
        assert!(!c.params.contains_key("acr_values") && !c.params.contains_key("max_age"), "{what}: {c:?}");
        let body = r.json();
        assert_eq!(body["error"], "invalid_token", "{what}");
        assert!(body.get("required_level").is_none() && !r.body.contains("aal2"), "{what}: {}", r.body);
    }
    // And the good one passes where aal1 is enough.
    assert_eq!(call(&a.h, "/echo/orders", &good_token).await.status, 200);
}

#[tokio::test]
async fn too_low_an_acr_or_too_old_an_auth_time_gets_the_rfc_9470_answer() {
    let a = api().await;
    let now = a.h.now();
    let mut low = claims(now);
    low["acr"] = "urn:test:loa:1".into();
    let mut old = claims(now);
    old["acr"] = "urn:test:loa:2".into();
    old["auth_time"] = (now - 600).into();
    for (what, c) in [("low acr", low), ("old auth_time", old)] {
        let r = call(&a.h, "/echo/wire", &sign(&a.rsa, &c)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        let ch = challenge(&r);
        assert_eq!(ch.scheme, "Bearer");
        assert_eq!(ch.params["error"], "insufficient_user_authentication", "{what}");
        assert_eq!(ch.params["acr_values"], "urn:test:loa:2 urn:test:loa:3", "{what}: lowest sufficient first");
        assert_eq!(ch.params["max_age"], "300", "{what}");
        assert!(!ch.params["error_description"].is_empty());
        assert_eq!(r.json()["error"], "insufficient_user_authentication");
    }
    // What the client does next: a new token with the acr asked for, authenticated now.
    let mut fresh = claims(now);
    fresh["acr"] = "urn:test:loa:2".into();
    let r = call(&a.h, "/echo/wire", &sign(&a.rsa, &fresh)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.echoed_headers()["x-stepgate-level"], "aal2");
    // A browser-looking request with a token still gets the 401, never a redirect to a page.
    let auth = format!("Bearer {}", sign(&a.rsa, &claims(now)));
    let r = a.h.client().get_with("/echo/wire", &[("authorization", &auth), ("accept", "text/html")]).await;
    assert_eq!(r.status, 401);
    assert!(r.header("location").is_none());
}

#[tokio::test]
async fn a_missing_scope_is_insufficient_scope_naming_it() {
    let a = api().await;
    let now = a.h.now();
    let r = call(&a.h, "/echo/pay/now", &sign(&a.ec, &claims(now))).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let c = challenge(&r);
    assert_eq!((c.scheme.as_str(), c.params["error"].as_str()), ("Bearer", "insufficient_scope"));
    assert_eq!(c.params["scope"], "payments:write");
    let mut ok = claims(now);
    ok["scope"] = "orders:read payments:write".into();
    assert_eq!(call(&a.h, "/echo/pay/now", &sign(&a.ec, &ok)).await.status, 200);
    // Okta/Entra style `scp` list.
    let mut scp = claims(now);
    scp["scope"] = Value::Null;
    scp["scp"] = serde_json::json!(["payments:write"]);
    assert_eq!(call(&a.h, "/echo/pay/now", &sign(&a.ec, &scp)).await.status, 200);
}

#[tokio::test]
async fn a_token_older_than_max_credential_age_is_invalid_token() {
    let a = api().await;
    let now = a.h.now();
    let mut c = claims(now);
    c["iat"] = (now - 3600).into();
    c["exp"] = (now + 3600).into();
    let r = call(&a.h, "/echo/fresh", &sign(&a.rsa, &c)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(challenge(&r).params["error"], "invalid_token");
    assert_eq!(call(&a.h, "/echo/fresh", &sign(&a.rsa, &claims(now))).await.status, 200);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_unknown_kids_are_rate_limited() {
    let a = api().await;
    let now = a.h.now();
    assert_eq!(call(&a.h, "/echo/orders", &sign(&a.rsa, &claims(now))).await.status, 200);
    assert_eq!(a.jwks.hits(), 1, "fetched once");
    // Garbage kids, many: none refetched within the interval of the first fetch...
    let dir = tempfile::tempdir().unwrap();
    let other = tokens::key(dir.path(), "rsa-2", Algorithm::RS256);
    for _ in 0..5 {
        assert_eq!(call(&a.h, "/echo/orders", &sign(&other, &claims(now))).await.status, 401);
    }
    assert_eq!(a.jwks.hits(), 1, "rate-limited");
    // ...and after it, one refresh for all of them.
    a.h.advance(Duration::from_secs(11));
    let now = a.h.now();
    for _ in 0..5 {
        assert_eq!(call(&a.h, "/echo/orders", &sign(&other, &claims(now))).await.status, 401);
    }
    assert_eq!(a.jwks.hits(), 2, "one refresh for unknown kids, then rate-limited");
    // The issuer rotates to rsa-2: once the interval has passed, the new key is fetched.
    a.jwks.set(tokens::jwks(&[&a.rsa, &other]));
    a.h.advance(Duration::from_secs(11));
    let now = a.h.now();
    let r = call(&a.h, "/echo/orders", &sign(&other, &claims(now))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(a.jwks.hits(), 3);
    // The old key still works (the set was replaced by one that holds both).
    assert_eq!(call(&a.h, "/echo/orders", &sign(&a.rsa, &claims(now))).await.status, 200);
}

#[tokio::test]
async fn public_routes_do_not_check_tokens_and_no_token_is_asked_to_authenticate() {
    let a = api().await;
    assert_eq!(call(&a.h, "/echo/public/x", "garbage").await.status, 200);
    let r = a.h.client().get_with("/echo/orders", &[("accept", "application/json")]).await;
    assert_eq!(r.status, 401);
    let c = challenge(&r);
    assert_eq!(c.scheme, "Bearer");
    assert!(!c.params.contains_key("error"), "no credentials: no error code (RFC 6750 §3.1): {c:?}");
}

#[tokio::test]
async fn a_websocket_opened_with_a_token_closes_when_the_token_expires() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let a = api().await;
    let now = a.h.now();
    let mut c = claims(now);
    c["exp"] = (now + 120).into();
    let mut req = format!("ws://{}/kernel", crate::support::HOST).into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", sign(&a.rsa, &c)).parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(a.h.addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp).await.expect("101 with a valid token");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("1+1")).await.unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Text(t))) if t.as_str() == "2"));
    // Past exp (and the skew): the watch verifies the token again and closes the tunnel.
    a.h.advance(Duration::from_secs(300));
    let ended = tokio::time::timeout(crate::support::PATIENCE, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    });
    assert!(ended.await.is_ok(), "the tunnel outlived its token");
}
