//! Several gateway instances on one Redis: a step-up through one is honoured by the other at
//! once, a sign-out through one lands on the other within 1 s, and a Redis outage fails closed
//! (503 on protected routes, public routes still served) and heals without a restart.

pub(crate) mod support;

use http::StatusCode;
use std::time::Duration;
use stepgate::session::cookies::SESSION;
use support::{between, csrf, gateway, within, write_config, Browser, RedisServer, PASSWORD, USER};

async fn sign_in(b: &Browser, to: std::net::SocketAddr) {
    let page = b.get(to, "/.stepgate/login").await;
    let token = csrf(&page.body);
    let resp = b
        .post(to, "/.stepgate/login", &[("csrf", &token), ("username", USER), ("password", PASSWORD), ("return", "/")])
        .await;
    assert!(resp.status.is_redirection(), "sign-in: {} {}", resp.status, resp.body);
    assert!(b.cookie(SESSION).is_some());
}

/// Enrolls TOTP; returns the recovery codes (shown after the 303). Enrollment also elevates the
/// session to AAL2.
async fn enroll(b: &Browser, to: std::net::SocketAddr) -> Vec<String> {
    let page = b.get(to, "/.stepgate/enroll/totp").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let uri = between(&page.body, r#"<code class="uri">"#, "</code>").unwrap().replace("&amp;", "&");
    let code = totp_rs::Totp::from_url(&uri).unwrap().generate_current().to_string();
    let token = csrf(&page.body);
    let done = b.post(to, "/.stepgate/enroll/totp", &[("csrf", &token), ("code", &code), ("return", "/")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let done = b.get(to, "/.stepgate/recovery-codes").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    done.body
        .split(r#"<code class="recovery-code">"#)
        .skip(1)
        .filter_map(|s| s.split("</code>").next())
        .map(str::to_string)
        .collect()
}

/// Two gateway instances on one fresh Redis, in front of one demo app (keep the first three
/// alive for the test's length).
async fn two_instances(
) -> (RedisServer, tempfile::TempDir, stepgate::demo_app::DemoApp, stepgate::server::Running, stepgate::server::Running)
{
    let redis = RedisServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    let app = stepgate::demo_app::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let config = write_config(dir.path(), &redis.url(), app.addr);
    let (a, b) = (gateway(&config).await, gateway(&config).await);
    (redis, dir, app, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_step_ups_and_sign_outs() {
    let (_redis, _dir, _app, a, b) = two_instances().await;
    let browser = Browser::new();

    // Signed in through A, enrolled (and so stepped up) through B: A honours it at once.
    sign_in(&browser, a.addr).await;
    assert_eq!(browser.get(b.addr, "/account").await.status, StatusCode::OK, "B knows A's session");
    let codes = enroll(&browser, b.addr).await;
    assert_eq!(codes.len(), 10);
    assert_eq!(browser.get(a.addr, "/transfer").await.status, StatusCode::OK, "A honours B's step-up");

    // A fresh sign-in through B is AAL1 again; a step-up through A (a recovery code) is then
    // honoured by B at once, even though B has just read (and cached) the weaker session.
    sign_in(&browser, b.addr).await;
    let challenge = browser.get(b.addr, "/transfer").await;
    assert!(challenge.status.is_redirection(), "AAL1 is challenged: {}", challenge.status);
    let page = browser.get(a.addr, "/.stepgate/challenge?return=/transfer").await;
    let token = csrf(&page.body);
    let form = [("csrf", token.clone()), ("code", codes[0].clone()), ("return", "/transfer".into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stepped = browser.post(a.addr, "/.stepgate/challenge/recovery", &form).await;
    assert!(stepped.status.is_redirection(), "recovery code accepted: {} {}", stepped.status, stepped.body);
    assert_eq!(browser.get(b.addr, "/transfer").await.status, StatusCode::OK, "B honours A's step-up at once");

    // The same recovery code does not work again through the other instance.
    let replay = browser.post(b.addr, "/.stepgate/challenge/recovery", &form).await;
    assert!(!replay.status.is_redirection(), "a used recovery code is refused: {}", replay.status);

    // A has the session cached; a sign-out through B reaches A within 1 s, even for a copy of
    // the cookie kept elsewhere.
    assert_eq!(browser.get(a.addr, "/transfer").await.status, StatusCode::OK);
    let stolen = browser.cookie(SESSION).unwrap();
    let page = browser.get(b.addr, "/.stepgate/account").await;
    let out = browser.post(b.addr, "/.stepgate/logout", &[("csrf", &csrf(&page.body))]).await;
    assert_eq!(out.status, StatusCode::OK);
    browser.set_cookie(SESSION, &stolen);
    let took =
        within(Duration::from_secs(1), || async { browser.get(a.addr, "/transfer").await.status != StatusCode::OK })
            .await;
    assert!(took.is_some(), "A still accepted the signed-out session after 1 s");
    assert_eq!(browser.get(a.addr, "/account").await.status, StatusCode::FOUND, "signed out: sent to sign in");

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_closed_and_heals_without_losing_an_enrollment() {
    let mut redis = RedisServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let app = stepgate::demo_app::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let config = write_config(dir.path(), &redis.url(), app.addr);
    let (a, b) = (gateway(&config).await, gateway(&config).await);
    let browser = Browser::new();
    sign_in(&browser, a.addr).await;
    enroll(&browser, a.addr).await;
    assert_eq!(browser.get(b.addr, "/transfer").await.status, StatusCode::OK);
    let ready = browser.get(a.addr, "/.stepgate/ready").await;
    assert_eq!((ready.status, ready.body.as_str()), (StatusCode::OK, "ready\n"));

    redis.kill();
    let unavailable = || async { browser.get(a.addr, "/transfer").await.status == StatusCode::SERVICE_UNAVAILABLE };
    assert!(within(Duration::from_secs(2), unavailable).await.is_some(), "protected routes fail closed");
    for (gw, path) in [(a.addr, "/transfer"), (b.addr, "/transfer"), (b.addr, "/account")] {
        let started = std::time::Instant::now();
        assert_eq!(browser.get(gw, path).await.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(started.elapsed() < Duration::from_secs(3), "{path} took {:?}", started.elapsed());
    }
    assert_eq!(browser.get(a.addr, "/public/page").await.status, StatusCode::OK, "public routes keep working");
    assert_eq!(browser.get(b.addr, "/.stepgate/health").await.status, StatusCode::OK, "health is liveness");
    let ready = browser.get(b.addr, "/.stepgate/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "not ready without Redis: {}", ready.body);
    assert!(ready.body.contains("cannot read/write"), "{}", ready.body);
    assert!(!ready.body.contains("127.0.0.1") && !ready.body.contains("redis"), "no internals: {}", ready.body);

    // Back, with its AOF: the same gateways serve again, and the enrollment is still there.
    redis.restart();
    let back = || async { browser.get(a.addr, "/transfer").await.status == StatusCode::OK };
    assert!(within(Duration::from_secs(10), back).await.is_some(), "A did not recover after Redis came back");
    assert_eq!(browser.get(b.addr, "/transfer").await.status, StatusCode::OK);
    assert_eq!(browser.get(b.addr, "/.stepgate/ready").await.status, StatusCode::OK, "ready again");
    let factors = b.state.store.get_factors(USER).await.unwrap();
    assert!(factors.totp.is_some(), "the confirmed enrollment survived the crash");
    assert_eq!(factors.recovery_hashes.len(), 10);

    a.shutdown().await;
    b.shutdown().await;
}

/// The first request after Redis restarted under an idle gateway is answered: the broken
/// connection is retried once on a fresh one, not turned into a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_after_an_idle_redis_restart_is_answered() {
    let mut redis = RedisServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let app = stepgate::demo_app::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let config = write_config(dir.path(), &redis.url(), app.addr);
    let a = gateway(&config).await;
    let browser = Browser::new();
    sign_in(&browser, a.addr).await;
    assert_eq!(browser.get(a.addr, "/account").await.status, StatusCode::OK);

    for round in 0..3 {
        redis.kill();
        redis.restart();
        // Idle for a while, as a gateway at night: nothing has touched the dead connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let first = browser.get(a.addr, "/account").await;
        assert_eq!(first.status, StatusCode::OK, "round {round}: the first request after the restart: {}", first.body);
    }
    a.shutdown().await;
}

/// While Redis hangs (SIGSTOP: connections open, no answers), a public route answers at once
/// for a signed-in user (it is served without identity headers), and a protected route fails
/// closed with 503 after `store.timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_does_not_hold_public_routes() {
    let redis = RedisServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    let app = stepgate::demo_app::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let config = write_config(dir.path(), &redis.url(), app.addr);
    let text = std::fs::read_to_string(&config).unwrap().replace(r#"timeout = "1s""#, r#"timeout = "4s""#);
    std::fs::write(&config, text).unwrap();
    let a = gateway(&config).await;
    let browser = Browser::new();
    sign_in(&browser, a.addr).await;
    assert_eq!(browser.get(a.addr, "/public/page").await.status, StatusCode::OK);

    redis.pause(true);
    for i in 0..5 {
        let started = std::time::Instant::now();
        let page = browser.get(a.addr, &format!("/public/page?{i}")).await;
        assert_eq!(page.status, StatusCode::OK, "public route while Redis hangs: {}", page.body);
        // Far under the 4 s store timeout: the public route did not wait for the store.
        assert!(started.elapsed() < Duration::from_secs(2), "public route took {:?}", started.elapsed());
    }
    // Past the session cache's age too, a public route still answers at once.
    tokio::time::sleep(stepgate::store::redis::SESSION_CACHE_MAX_AGE).await;
    let started = std::time::Instant::now();
    assert_eq!(browser.get(a.addr, "/public/page").await.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2), "public route took {:?}", started.elapsed());
    let protected = browser.get(a.addr, "/account").await;
    assert_eq!(protected.status, StatusCode::SERVICE_UNAVAILABLE, "protected routes fail closed: {}", protected.body);

    redis.pause(false);
    let back = || async { browser.get(a.addr, "/account").await.status == StatusCode::OK };
    assert!(within(Duration::from_secs(10), back).await.is_some(), "did not recover after Redis resumed");
    a.shutdown().await;
}

/// A WebSocket opened through A closes when the user signs out through B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_through_one_instance_closes_a_websocket_on_the_other() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let (_redis, _dir, _app, a, b) = two_instances().await;
    let browser = Browser::new();
    sign_in(&browser, a.addr).await;

    let mut req = "ws://localhost/kernel".into_client_request().unwrap();
    req.headers_mut().insert("cookie", format!("{SESSION}={}", browser.cookie(SESSION).unwrap()).parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(a.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.expect("101 through A");
    ws.send(Message::text("20+22")).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.unwrap();
    assert!(matches!(answer, Some(Ok(Message::Text(ref t))) if t.as_str() == "42"), "{answer:?}");

    let page = browser.get(b.addr, "/.stepgate/account").await;
    let out = browser.post(b.addr, "/.stepgate/logout", &[("csrf", &csrf(&page.body))]).await;
    assert_eq!(out.status, StatusCode::OK);
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the WebSocket through A outlived the sign-out through B");
}
