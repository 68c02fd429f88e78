//! Kept requests and bound transactions (issue 14): a form POST that needs a step-up survives
//! the challenge and is replayed upstream exactly once; a rule with `bind = "transaction"`
//! needs a proof for each request body, used once.

use crate::support::client::{enc, full, Client, Resp};
use crate::support::flows::{enroll_totp, signed_in, Enrolled};
use crate::support::recorder::{Recorder, Seen};
use crate::support::{audit, totp, Harness, Options};
use http::{Method, StatusCode};
use std::time::Duration;

const RULES: &str = r#"
[[rule]]
name = "pay"
path = "/echo/pay"
require = "aal2"
max_age = "5m"
bind = "transaction"
confirm = "Transfer {amount} to {to}"

[[rule]]
name = "recovery-pay"
path = "/echo/rpay"
require = "aal2"
max_age = "5m"
allow = ["recovery"]
bind = "transaction"

[[rule]]
name = "form"
path = "/echo/form"
require = "aal2"
max_age = "5m"

[default]
require = "aal1"
"#;

struct Stack {
    h: Harness,
    app: Recorder,
    _demo: stepgate::demo_app::DemoApp,
}

async fn stack() -> Stack {
    let demo = stepgate::demo_app::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let app = Recorder::start(demo.addr).await;
    let h = Harness::with(Options {
        rules: RULES.to_string(),
        upstream_url: Some(format!("http://{}", app.addr)),
        ..Options::default()
    })
    .await;
    Stack { h, app, _demo: demo }
}

fn count(seen: &[Seen], method: &str, path: &str) -> usize {
    seen.iter().filter(|s| s.method == method && s.target.split('?').next() == Some(path)).count()
}

/// A signed-in client with TOTP enrolled whose proof has lapsed (max_age 5m passed).
async fn lapsed(s: &Stack) -> (Client, Enrolled) {
    let mut c = signed_in(&s.h).await;
    let enrolled = enroll_totp(&s.h, &mut c).await;
    s.h.advance(Duration::from_secs(6 * 60));
    (c, enrolled)
}

fn kept_id(location: &str) -> String {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "kept").map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// The challenge page at `url`, then a TOTP code posted with its hidden fields.
async fn prove(s: &Stack, c: &mut Client, url: &str, enrolled: &Enrolled) -> (Resp, Resp) {
    let page = c.browse(url).await;
    assert_eq!(page.status, StatusCode::OK, "challenge page: {}", page.body);
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let field = |name: &str| {
        form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    let code = totp::code(&enrolled.secret, s.h.now());
    let (ret, method, kept) = (field("return"), field("method"), field("kept"));
    let csrf = page.csrf();
    let fields = [("csrf", csrf.as_str()), ("code", &code), ("return", &ret), ("method", &method), ("kept", &kept)];
    let r = c.post_form("/.stepgate/challenge/totp", &fields).await;
    s.h.advance(Duration::from_secs(30)); // the next code is a fresh step
    (page, r)
}

async fn post_json(c: &mut Client, path: &str, body: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    c.request(Method::POST, path, &headers, full(body.to_string())).await
}

#[tokio::test]
async fn a_form_post_is_kept_across_the_challenge_and_replayed_exactly_once() {
    let s = stack().await;
    let (mut c, enrolled) = lapsed(&s).await;
    let r = c.post_form("/echo/form", &[("to", "bob"), ("amount", "10")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "a browser form is sent to the page: {}", r.body);
    let id = kept_id(r.location());
    assert!(
        r.location().starts_with("/.stepgate/challenge?return=%2Fecho%2Fform&method=POST&kept="),
        "{}",
        r.location()
    );
    assert_eq!(count(&s.app.seen(), "POST", "/echo/form"), 0, "nothing reached the app yet");

    // The kept body is sealed: the raw store value holds neither the body nor its fields.
    let raw =
        s.h.store.as_ref().unwrap().get_ephemeral(&format!("kept:{id}"), stepgate::clock::UnixTime(s.h.now())).await;
    let raw = String::from_utf8(raw.unwrap().expect("the request is kept")).unwrap();
    assert!(!raw.contains("bob") && !raw.contains("amount") && !raw.contains("echo/form"), "{raw}");

    // Another session of the same user cannot replay it (and does not use it up).
    let mut other = signed_in(&s.h).await;
    let stolen = other.browse(&format!("/.stepgate/kept?id={id}")).await;
    assert_eq!(stolen.status, StatusCode::GONE, "{}", stolen.body);

    let (_, done) = prove(&s, &mut c, r.location(), &enrolled).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), format!("/.stepgate/kept?id={id}"));
    let stolen = other.browse(done.location()).await;
    assert_eq!(stolen.status, StatusCode::GONE, "still another session's");

    let replayed = c.browse(done.location()).await;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.body);
    let echo = replayed.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], "to=bob&amount=10", "the body byte for byte");
    assert_eq!(echo["headers"]["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(echo["headers"]["x-stepgate-user"], crate::support::USER);
    assert_eq!(count(&s.app.seen(), "POST", "/echo/form"), 1);

    let again = c.browse(done.location()).await;
    assert_eq!(again.status, StatusCode::GONE, "a reload does not send it twice: {}", again.body);
    assert!(again.body.contains("sent once"), "{}", again.body);
    assert_eq!(count(&s.app.seen(), "POST", "/echo/form"), 1, "exactly once");
}

#[tokio::test]
async fn a_kept_request_expires_with_the_challenge() {
    let s = stack().await;
    let (mut c, enrolled) = lapsed(&s).await;
    let r = c.post_form("/echo/form", &[("to", "bob"), ("amount", "10")]).await;
    let id = kept_id(r.location());
    s.h.advance(Duration::from_secs(301));
    let (page, done) = prove(&s, &mut c, r.location(), &enrolled).await;
    assert!(!page.body.contains("Exactly what will be sent"), "an expired request is not shown");
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/echo/form", "back to the page, not to a replay");
    assert_eq!(c.browse(&format!("/.stepgate/kept?id={id}")).await.status, StatusCode::GONE);
    assert_eq!(count(&s.app.seen(), "POST", "/echo/form"), 0);
}

#[tokio::test]
async fn a_bound_proof_confirms_one_request_body_once() {
    audit::capture();
    let s = stack().await;
    let mut c = signed_in(&s.h).await;
    let enrolled = enroll_totp(&s.h, &mut c).await; // a fresh aal2 proof: not enough for a bound rule
    let body = r#"{"to":"bob","amount":10}"#;
    let r = post_json(&mut c, "/echo/pay", body, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let j = r.json();
    assert_eq!(j["error"], "insufficient_user_authentication");
    let id = j["challenge_id"].as_str().expect("a challenge_id").to_string();
    let url = j["challenge_url"].as_str().unwrap().strip_prefix(crate::support::ORIGIN).unwrap().to_string();
    assert!(url.ends_with(&format!("&kept={id}")), "{url}");
    assert_eq!(count(&s.app.seen(), "POST", "/echo/pay"), 0);
    let kept = audit::wait_for(|v| {
        v["kind"] == "transaction"
            && v["decision"] == "kept"
            && v["request_id"] == r.header("x-request-id").unwrap_or("")
    })
    .await;
    let digest = kept["transaction"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    assert_eq!(kept["confirmation"], "Transfer 10 to bob");

    // Without the proof, the retry is refused (and the id is not confirmed).
    let early = post_json(&mut c, "/echo/pay", body, &[("x-stepgate-confirmation", &id)]).await;
    assert_eq!(early.status, StatusCode::UNAUTHORIZED);
    let id = early.json()["challenge_id"].as_str().unwrap().to_string();
    let url = format!("{}&kept={id}", url.rsplit_once("&kept=").unwrap().0);

    let (page, done) = prove(&s, &mut c, &url, &enrolled).await;
    assert!(page.body.contains("Transfer 10 to bob"), "the page shows what is confirmed: {}", page.body);
    assert!(page.body.contains("<dt>amount</dt><dd><code>10</code></dd>"), "and the raw fields: {}", page.body);
    assert_eq!(done.location(), format!("/.stepgate/kept?id={id}"));
    let confirmed = c.browse(done.location()).await;
    assert_eq!(confirmed.status, StatusCode::OK);
    assert!(confirmed.body.contains("Confirmed"), "{}", confirmed.body);
    assert_eq!(count(&s.app.seen(), "POST", "/echo/pay"), 0, "the popup page sends nothing");

    // A changed amount with this confirmation: not this transaction.
    let changed =
        post_json(&mut c, "/echo/pay", r#"{"to":"bob","amount":1000}"#, &[("x-stepgate-confirmation", &id)]).await;
    assert_eq!(changed.status, StatusCode::UNAUTHORIZED, "{}", changed.body);
    assert_eq!(count(&s.app.seen(), "POST", "/echo/pay"), 0);
    // The confirmation was used up by that attempt: the right body after it needs a new proof too.
    let after = post_json(&mut c, "/echo/pay", body, &[("x-stepgate-confirmation", &id)]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.body);

    // A new proof for the right body: forwarded once, with the digest.
    let id = after.json()["challenge_id"].as_str().unwrap().to_string();
    let url = format!("{}&kept={id}", url.rsplit_once("&kept=").unwrap().0);
    let (_, done) = prove(&s, &mut c, &url, &enrolled).await;
    assert_eq!(done.location(), format!("/.stepgate/kept?id={id}"));
    let ok =
        post_json(&mut c, "/echo/pay", body, &[("x-stepgate-confirmation", &id), ("x-stepgate-transaction", "forged")])
            .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let echo = ok.json();
    assert_eq!(echo["body"], body);
    assert_eq!(echo["headers"]["x-stepgate-transaction"], digest, "the app gets the digest, never the client's value");
    assert!(echo["headers"].get("x-stepgate-confirmation").is_none());
    assert_eq!(count(&s.app.seen(), "POST", "/echo/pay"), 1);
    audit::wait_for(|v| {
        v["kind"] == "transaction" && v["decision"] == "forward" && v["transaction"] == digest.as_str()
    })
    .await;

    // Single use: the same confirmation again, or a second transfer, needs a new proof.
    let twice = post_json(&mut c, "/echo/pay", body, &[("x-stepgate-confirmation", &id)]).await;
    assert_eq!(twice.status, StatusCode::UNAUTHORIZED);
    let second = post_json(&mut c, "/echo/pay", body, &[]).await;
    assert_eq!(second.status, StatusCode::UNAUTHORIZED);
    assert_eq!(count(&s.app.seen(), "POST", "/echo/pay"), 1, "exactly once");
    // GET on the bound path is not bound (no body): the session's proof is enough.
    assert_eq!(c.get("/echo/pay").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_bound_form_is_replayed_with_its_digest_after_the_code() {
    let s = stack().await;
    let (mut c, enrolled) = lapsed(&s).await;
    let r = c.post_form("/echo/pay", &[("to", "bob"), ("amount", "10")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let (page, done) = prove(&s, &mut c, r.location(), &enrolled).await;
    assert!(page.body.contains("Transfer 10 to bob"), "{}", page.body);
    let replayed = c.browse(done.location()).await;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.body);
    let tx = replayed.json()["headers"]["x-stepgate-transaction"].as_str().unwrap_or("").to_string();
    assert_eq!(tx.len(), 64);
    assert_eq!(count(&s.app.seen(), "POST", "/echo/pay"), 1);
    // The proof was for that transfer: the same form again is challenged again.
    let r = c.post_form("/echo/pay", &[("to", "bob"), ("amount", "10")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().contains("kept="), "{}", r.location());
    assert_eq!(count(&s.app.seen(), "POST", "/echo/pay"), 1);
}

#[tokio::test]
async fn a_body_too_big_to_keep_gets_a_page_with_a_link_to_confirm_first() {
    let s = stack().await;
    let (mut c, _) = lapsed(&s).await;
    let big = "x".repeat(70 * 1024);
    let r = c.post_form("/echo/form", &[("note", &big)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", &r.body[..r.body.len().min(300)]);
    assert!(r.body.contains("Confirm it"), "{}", r.body);
    assert!(
        r.body.contains(&format!("/.stepgate/challenge?return={}&amp;method=POST", enc("/echo/form"))),
        "{}",
        r.body
    );
    assert_eq!(count(&s.app.seen(), "POST", "/echo/form"), 0);
}

#[tokio::test]
async fn a_form_sent_while_signed_out_goes_to_the_sign_in_page_not_a_json_401() {
    let s = stack().await;
    let mut c = s.h.client();
    let r = c.post_form("/echo/form", &[("to", "bob")]).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.body);
    assert_eq!(r.location(), "/.stepgate/login?return=%2Fecho%2Fform");
    let api = c.request(Method::POST, "/echo/form", &[("content-type", "application/json")], full("{}")).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED, "an API client still gets the 401");
}

/// Forward-auth never sees the body: a bound rule's POST asked about by a front proxy is
/// refused (fail closed), never let through on the session's proof.
#[tokio::test]
async fn a_bound_rule_behind_forward_auth_is_refused_not_let_through() {
    let h = Harness::with(Options {
        rules: RULES.to_string(),
        listen_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        ..Options::default()
    })
    .await;
    let mut c = signed_in(&h).await;
    enroll_totp(&h, &mut c).await; // a fresh aal2 proof
    let ask = |method: &'static str| {
        vec![("x-original-method", method), ("x-original-uri", "/echo/pay"), ("x-forwarded-host", "stepgate.test")]
    };
    let r = c.get_with("/.stepgate/auth", &ask("POST")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("bind"), "{}", r.body);
    assert_eq!(c.get_with("/.stepgate/auth", &ask("GET")).await.status, StatusCode::OK, "a GET is not bound");
}

#[tokio::test]
async fn a_bound_request_is_confirmed_as_the_app_reads_it_or_refused() {
    let s = stack().await;
    let mut c = signed_in(&s.h).await;
    enroll_totp(&s.h, &mut c).await;
    let send = |ct: &'static str, extra: Vec<(&'static str, &'static str)>, body: &'static [u8]| {
        let mut h = vec![("content-type", ct)];
        h.extend(extra);
        (h, body)
    };
    // What the page would show differs from what the app would act on: refused, nothing sent.
    let gzip_with_a_form_in_its_comment: &[u8] =
        b"\x1f\x8b\x08\x10\0\0\0\0\0\x03&amount=10&to=bob&\0\x03\0\0\0\0\0\0\0\0\0";
    let cases = [
        (
            "gzip",
            send(
                "application/x-www-form-urlencoded",
                vec![("content-encoding", "gzip")],
                gzip_with_a_form_in_its_comment,
            ),
            415,
        ),
        (
            "JSON labelled a form",
            send(
                "application/x-www-form-urlencoded",
                vec![],
                br#"{"to":"eve","amount":10000,"x":"&to=bob&amount=10&"}"#,
            ),
            400,
        ),
        ("text/plain", send("text/plain", vec![], b"to=bob&amount=10"), 415),
        ("multipart", send("multipart/form-data; boundary=b", vec![], b"--b--"), 415),
        ("UTF-16", send("application/x-www-form-urlencoded; charset=utf-16", vec![], b"to=bob&amount=10"), 415),
        (
            "two content types",
            send("application/x-www-form-urlencoded", vec![("content-type", "application/json")], b"to=bob&amount=10"),
            400,
        ),
    ];
    for (what, (headers, body), status) in cases {
        let r = c.request(Method::POST, "/echo/pay", &headers, full(body.to_vec())).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.body);
        assert!(r.json().get("challenge_id").is_none(), "{what}: nothing to confirm: {}", r.body);
    }
    // A GET carrying a body on a bound path: apps that read bodies whatever the method would act.
    let r = c
        .request(Method::GET, "/echo/pay", &[("content-type", "application/json")], full(r#"{"to":"eve"}"#.to_string()))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // The same over HTTP/2, where DATA frames need no Content-Length or Transfer-Encoding.
    let tcp = tokio::net::TcpStream::connect(s.h.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let cookie = format!("stepgate_session={}", c.session().unwrap());
    let req = http::Request::get(format!("http://{}/echo/pay", crate::support::HOST))
        .header("cookie", cookie)
        .header("accept", "application/json")
        // A stream of unknown length: no Content-Length is sent, only DATA frames.
        .body(http_body_util::StreamBody::new(futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
            http_body::Frame::data(bytes::Bytes::from_static(br#"{"to":"eve","amount":10000}"#)),
        )])))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "a GET with DATA frames over HTTP/2");
    assert_eq!(count(&s.app.seen(), "POST", "/echo/pay") + count(&s.app.seen(), "GET", "/echo/pay"), 0);
    // A payee in the query shows beside the body's (Flask and PHP merge the two).
    audit::capture();
    let r = c.post_form("/echo/pay?to=eve", &[("to", "bob"), ("amount", "10")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let rid = r.header("x-request-id").unwrap_or("").to_string();
    let kept = audit::wait_for(|v| v["kind"] == "transaction" && v["request_id"] == rid.as_str()).await;
    assert_eq!(kept["confirmation"], "Transfer 10 to eve / bob");
}

#[tokio::test]
async fn a_bound_rule_binds_every_method_that_is_not_safe_not_only_post() {
    let s = stack().await;
    let mut c = signed_in(&s.h).await;
    enroll_totp(&s.h, &mut c).await; // a fresh aal2 proof: not enough for a bound rule
    let body = r#"{"to":"eve","amount":10000}"#;
    for m in ["PUT", "PATCH", "DELETE", "PROPFIND"] {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let r = c.request(method, "/echo/pay", &[("content-type", "application/json")], full(body.to_string())).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m}: {}", r.body);
        assert!(r.json()["challenge_id"].is_string(), "{m}: kept for its own proof: {}", r.body);
        assert_eq!(count(&s.app.seen(), m, "/echo/pay"), 0, "{m} reached the app on the session's proof");
    }
}

#[tokio::test]
async fn a_proof_confirms_a_kept_request_only_if_it_satisfies_that_requests_own_rule() {
    let s = stack().await;
    let (mut c, enrolled) = lapsed(&s).await;
    // A first transfer, confirmed with a recovery code as its rule asks: the session now holds
    // a fresh recovery proof.
    let r = c.post_form("/echo/rpay", &[("to", "bob"), ("amount", "10")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let url = r.location().to_string();
    let page = c.browse(&url).await;
    let field = |name: &str| {
        let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
        form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    let (csrf, ret, method, kept) = (page.csrf(), field("return"), field("method"), field("kept"));
    let code = enrolled.recovery[0].clone();
    let fields = [("csrf", csrf.as_str()), ("code", &code), ("return", &ret), ("method", &method), ("kept", &kept)];
    let done = c.post_form("/.stepgate/challenge/recovery", &fields).await;
    assert_eq!(c.browse(done.location()).await.status, StatusCode::OK);
    assert_eq!(count(&s.app.seen(), "POST", "/echo/rpay"), 1);

    // A second transfer is kept; a TOTP code (not allowed by its rule) posted with the page
    // fields of another route where TOTP is allowed must not confirm it.
    let r = c.post_form("/echo/rpay", &[("to", "eve"), ("amount", "9999")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let id = kept_id(r.location());
    assert!(!id.is_empty(), "{}", r.location());
    let other = format!("/.stepgate/challenge?return=%2Fecho%2Fform&method=POST&kept={id}");
    let (_, done) = prove(&s, &mut c, &other, &enrolled).await;
    assert!(!done.location().contains("/.stepgate/kept"), "confirmed by a TOTP code: {}", done.location());
    let replay = c.browse(&format!("/.stepgate/kept?id={id}")).await;
    assert_ne!(replay.status, StatusCode::OK, "{}", replay.body);
    assert_eq!(count(&s.app.seen(), "POST", "/echo/rpay"), 1, "the second transfer reached the app");
}
