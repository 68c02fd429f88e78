//! Sessions follow the IdP (`identity.source = "oidc"`, against npm's oidc-provider): a
//! back-channel logout from the IdP ends the session on every instance (two gateways on one
//! real redis-server); forged and replayed logout tokens are refused; the gateway's sign-out
//! continues at the IdP's end-session endpoint; `sessions.absolute_timeout` still applies.

use crate::redis::support::RedisServer;
use crate::support::client::{enc, Client};
use crate::support::idp::{self, log_out_at_idp, path_of, visit, AtIdp, Idp};
use crate::support::{Harness, Options, ORIGIN};
use base64::Engine;
use http::StatusCode;
use std::time::Duration;
use stepgate::oidc::logout::{BACKCHANNEL_PATH, SIGNED_OUT_PATH};

const RULES: &str = r#"
[[rule]]
name = "public"
path = "/public/**"
require = "none"

[default]
require = "aal1"
"#;

macro_rules! need_idp {
    () => {
        // Tests never skip: a missing judge fails them with its name.
        assert!(idp::available(), "oidc-provider is missing: tests/idp/node_modules (run scripts/test-deps.sh)");
    };
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn real_now(h: &Harness) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    h.clock.set(stepgate::clock::UnixTime(now));
}

/// Polls until `c` is refused on /echo (another instance drops its cached copy within moments).
async fn signed_out_soon(c: &mut Client) -> bool {
    for _ in 0..100 {
        if c.get("/echo").await.status == StatusCode::UNAUTHORIZED {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_at_the_idp_ends_the_session_on_every_instance() {
    need_idp!();
    let redis = RedisServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    // Instance A listens on a port chosen first, so the IdP can be told its back-channel URL.
    let port = free_port();
    let backchannel = format!("http://127.0.0.1:{port}{BACKCHANNEL_PATH}");
    let p = Idp::start_on(free_port(), &dir.path().join("keys.json"), &[("BACKCHANNEL_URI", &backchannel)]);
    let store = format!(
        "kind = \"redis\"\nurl = \"{}\"\nprefix = \"bcl{:08x}\"\ntimeout = \"1s\"",
        redis.url(),
        rand::random::<u32>()
    );
    let opts = Options {
        identity: Some(p.identity_section()),
        rules: RULES.into(),
        listen_address: Some(format!("127.0.0.1:{port}")),
        store: Some(store),
        ..Options::default()
    };
    let h = Harness::with(opts).await;
    real_now(&h);
    let b = h.another_instance().await;

    let (mut on_a, mut browser) = (h.client(), p.browser());
    let r = idp::sign_in(&mut on_a, &mut browser, "/echo", "alice", "alice-pw").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut on_b = on_a.to(b.addr);
    assert_eq!(on_a.get("/echo").await.status, StatusCode::OK);
    assert_eq!(on_b.get("/echo").await.status, StatusCode::OK, "B knows the session made through A");
    // Bob, signed in at the same IdP in another browser, is not logged out with alice.
    let (mut bob, mut bob_browser) = (h.client(), p.browser());
    idp::sign_in(&mut bob, &mut bob_browser, "/echo", "bob", "bob-pw").await;
    let mut bob_on_b = bob.to(b.addr);
    assert_eq!(bob_on_b.get("/echo").await.status, StatusCode::OK);

    // Alice logs out at the IdP itself: it POSTs a logout token (her sid) to A's endpoint.
    log_out_at_idp(&mut browser, "/session/end").await;
    assert_eq!(on_a.get("/echo").await.status, StatusCode::UNAUTHORIZED, "signed out on A");
    assert!(signed_out_soon(&mut on_b).await, "signed out on B too");
    assert_eq!(bob.get("/echo").await.status, StatusCode::OK, "bob's session stays");
    assert_eq!(bob_on_b.get("/echo").await.status, StatusCode::OK, "bob's session stays on B");
    let r = on_a.get("/public/x").await;
    assert_eq!(r.status, StatusCode::OK);
    drop(redis);
}

/// Signs `user` in at `p` through `h`; returns the gateway client.
async fn signed_in(h: &Harness, p: &Idp, user: &str, password: &str) -> (Client, Client) {
    let (mut gw, mut browser) = (h.client(), p.browser());
    let r = idp::sign_in(&mut gw, &mut browser, "/echo", user, password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(gw.get("/echo").await.status, StatusCode::OK);
    (gw, browser)
}

async fn post_logout_token(h: &Harness, token: &str) -> crate::support::Resp {
    h.client().post_form(BACKCHANNEL_PATH, &[("logout_token", token)]).await
}

#[tokio::test]
async fn forged_replayed_or_malformed_logout_tokens_are_refused() {
    need_idp!();
    let dir = tempfile::tempdir().unwrap();
    let p = Idp::start(dir.path());
    let h = idp::gateway(&p, RULES).await;
    let (mut alice, _a) = signed_in(&h, &p, "alice", "alice-pw").await;
    let (mut bob, _b) = signed_in(&h, &p, "bob", "bob-pw").await;

    let token = p.logout_token("alice", None).await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");

    // Alice's token with the subject changed to bob: the signature no longer fits.
    let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "bob".into();
    let forged = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
    // Unsigned ("alg": "none").
    let unsigned = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"logout+jwt"}"#), parts[1]);
    for (what, t) in [("forged", forged.as_str()), ("unsigned", unsigned.as_str()), ("garbage", "not-a-jwt")] {
        let r = post_logout_token(&h, t).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(r.json()["error"], "invalid_request", "{what}: {}", r.body);
    }
    let r = h.client().post_form(BACKCHANNEL_PATH, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no logout_token: {}", r.body);
    assert_eq!(bob.get("/echo").await.status, StatusCode::OK, "nothing forged ended bob's session");
    assert_eq!(alice.get("/echo").await.status, StatusCode::OK);

    // The IdP's own token (sub only: every session of alice) is honoured, once.
    let r = post_logout_token(&h, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(alice.get("/echo").await.status, StatusCode::UNAUTHORIZED, "alice is signed out");
    assert_eq!(bob.get("/echo").await.status, StatusCode::OK, "bob is not");
    let r = post_logout_token(&h, &token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a replayed logout token: {}", r.body);
    assert!(r.json()["error_description"].as_str().unwrap_or("").contains("used already"), "{}", r.body);

    // A token naming an IdP session (sid) nobody here has ends nothing, and says 200.
    let other = p.logout_token("bob", Some("no-such-sid")).await;
    assert_eq!(post_logout_token(&h, &other).await.status, StatusCode::OK);
    assert_eq!(bob.get("/echo").await.status, StatusCode::OK, "bob's sid is another");
}

#[tokio::test]
async fn signing_out_continues_at_the_idps_end_session_endpoint() {
    need_idp!();
    let dir = tempfile::tempdir().unwrap();
    let p = Idp::start(dir.path());
    let h = idp::gateway(&p, RULES).await;
    let (mut gw, mut browser) = signed_in(&h, &p, "alice", "alice-pw").await;

    let account = gw.browse("/.stepgate/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    let csp = account.header("content-security-policy").unwrap_or_default().to_string();
    assert!(csp.contains(&format!("form-action 'self' {}", p.issuer())), "the form may go on to the IdP: {csp}");
    let r = gw.post_form("/.stepgate/logout", &[("csrf", &account.csrf())]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let loc = r.location().to_string();
    assert!(loc.starts_with(&format!("{}/session/end?", p.issuer())), "{loc}");
    let query: std::collections::HashMap<String, String> =
        form_urlencoded::parse(loc.split_once('?').unwrap().1.as_bytes()).into_owned().collect();
    assert_eq!(query.get("id_token_hint").map(|t| t.split('.').count()), Some(3), "{loc}");
    assert_eq!(query.get("client_id").map(String::as_str), Some(idp::CLIENT_ID));
    let back = format!("{ORIGIN}{SIGNED_OUT_PATH}");
    assert_eq!(query.get("post_logout_redirect_uri"), Some(&back), "{loc}");
    assert!(gw.session().is_none(), "the cookie is cleared");
    assert_eq!(gw.get("/echo").await.status, StatusCode::UNAUTHORIZED, "signed out here at once");

    // The IdP takes the hint, ends its session and sends the browser back.
    let to = log_out_at_idp(&mut browser, &path_of(&loc)).await;
    assert_eq!(to, back);
    let page = gw.browse(&path_of(&to)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("signed out of this gateway and of your identity provider"), "{}", page.body);
    // Signing in again asks for the password at the IdP: its session is gone too.
    let start = gw.browse(&format!("/.stepgate/login?return={}", enc("/echo"))).await;
    assert!(matches!(visit(&mut browser, start.location()).await, AtIdp::Form { .. }), "the IdP asks again");
}

#[tokio::test]
async fn the_absolute_timeout_ends_an_idp_session_however_active() {
    need_idp!();
    let dir = tempfile::tempdir().unwrap();
    let p = Idp::start(dir.path());
    let h = idp::gateway(&p, RULES).await;
    let (mut gw, _browser) = signed_in(&h, &p, "alice", "alice-pw").await;
    // Active every 20 minutes (the idle timeout is 30m) for just under 12 hours (the default
    // absolute timeout): still signed in.
    for step in 1..=35 {
        h.advance(Duration::from_secs(20 * 60));
        assert_eq!(gw.get("/echo").await.status, StatusCode::OK, "after {} minutes", step * 20);
    }
    h.advance(Duration::from_secs(21 * 60));
    assert_eq!(gw.get("/echo").await.status, StatusCode::UNAUTHORIZED, "12h after the sign-in at the IdP");
}
