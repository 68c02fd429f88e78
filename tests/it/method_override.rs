//! A POST whose body names another method (`_method`: Rails, Laravel, Symfony) on a path where
//! that method meets a stricter rule: refused, never passed to an app that would act on it as
//! that method. Where every method meets the same rule, or the body is of a kind no framework
//! reads `_method` from, it passes untouched.

use crate::support::audit;
use crate::support::client::{full, ReqBody};
use crate::support::{Harness, Options};
use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;

const RULES: &str = r#"
[routes]
keep_body_max = 4096

[[rule]]
name = "delete-account"
path = "/echo/account"
methods = ["DELETE", "PUT"]
require = "aal2"

[default]
require = "aal1"
"#;

#[tokio::test]
async fn a_post_naming_another_method_in_its_body_is_refused_where_that_method_meets_another_rule() {
    audit::capture();
    let h = Harness::with(Options { rules: RULES.into(), ..Options::default() }).await;
    let mut c = h.client();
    c.sign_in().await;
    // The signed-in user (aal1) may POST here; a DELETE needs aal2.
    assert_eq!(c.request(Method::DELETE, "/echo/account", &[], full("")).await.status, 401);
    let post = |ct: Option<&'static str>, body: &'static str| {
        let headers: Vec<(&str, &str)> = ct.map(|ct| vec![("content-type", ct)]).unwrap_or_default();
        (headers, full(body))
    };
    let form = Some("application/x-www-form-urlencoded");
    let multipart = Some("multipart/form-data; boundary=B0UND");
    let mp_body = "--B0UND\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--B0UND--\r\n";
    let refused = [
        post(form, "name=a&_method=DELETE"),
        post(form, "name=a&%5Fmethod=delete"),
        post(form, "name=a&.method=PUT"),
        post(Some("application/json"), r#"{"_method":"DELETE"}"#),
        // Rack reads a POST without a Content-Type as a form.
        post(None, "_method=DELETE"),
        post(multipart, mp_body),
    ];
    for (headers, body) in refused {
        let r = c.request(Method::POST, "/echo/account", &headers, body).await;
        assert_eq!(r.status, 400, "{headers:?}: {}", r.body);
        assert!(r.body.contains("_method"), "the refusal names the cause: {}", r.body);
        assert!(!r.body.contains("\"path\""), "the app never answered: {}", r.body);
    }
    // Compressed: an app may inflate it (Express's body-parser does) and read what the gateway
    // cannot see; refused, as is a body labelled twice with encodings.
    let gzip_form = [("content-type", "application/x-www-form-urlencoded"), ("content-encoding", "gzip")];
    let r = c.request(Method::POST, "/echo/account", &gzip_form, full(&b"\x1f\x8b\x08\0\0\0\0\0"[..])).await;
    assert_eq!(r.status, 415, "{}", r.body);
    let twice = [("content-type", "application/json"), ("content-encoding", "identity"), ("content-encoding", "br")];
    assert_eq!(c.request(Method::POST, "/echo/account", &twice, full("{}")).await.status, 415);
    let identity = [("content-type", "application/json"), ("content-encoding", "identity")];
    assert_eq!(c.request(Method::POST, "/echo/account", &identity, full("{}")).await.status, 200);
    // The same POSTs without the override reach the app, body intact.
    let r = c.request(Method::POST, "/echo/account", &post(form, "").0, full("name=a&payment_method=card")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["body"], "name=a&payment_method=card");
    let mp_ok = "--B0UND\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n_method=DELETE\r\n--B0UND--\r\n";
    let r = c.request(Method::POST, "/echo/account", &post(multipart, "").0, full(mp_ok)).await;
    assert_eq!(r.status, 200, "a file's content is no field name: {}", r.body);
    assert_eq!(r.json()["body"], mp_ok);
    // A body no framework reads `_method` from passes unread.
    let r = c
        .request(Method::POST, "/echo/account", &post(Some("application/octet-stream"), "").0, full("_method=DELETE"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Where every method meets the same rule, an override changes nothing the gateway decides.
    let r = c.request(Method::POST, "/echo/elsewhere", &post(form, "").0, full("_method=DELETE")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Too large to be read for it (declared, or streamed without a length): 413, nothing sent.
    let big = format!("name={}&_method=DELETE", "a".repeat(5000));
    let r = c.request(Method::POST, "/echo/account", &post(form, "").0, full(big.clone())).await;
    assert_eq!(r.status, 413, "{}", r.body);
    let r = c.request(Method::POST, "/echo/account", &post(form, "").0, streamed(big.into_bytes())).await;
    assert_eq!(r.status, 413, "{}", r.body);
    // A refusal is audited with its cause.
    let r = c.request(Method::POST, "/echo/account", &post(form, "").0, full("_method=DELETE")).await;
    let id = r.headers["x-request-id"].to_str().unwrap().to_string();
    let rec = audit::wait_for(|v| v["request_id"] == id.as_str() && v["kind"] == "decision").await;
    assert_eq!((&rec["decision"], &rec["reason"]), (&"deny".into(), &"method_override".into()), "{rec}");
}

/// A body sent in chunks, with no length declared.
fn streamed(bytes: Vec<u8>) -> ReqBody {
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
        bytes.chunks(1000).map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c)))).collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).map_err(|never| match never {}).boxed()
}

#[tokio::test]
async fn forward_auth_asks_a_post_that_could_name_another_method_as_that_method_too() {
    // The front proxy sends the question without the body: a form POST where a DELETE meets a
    // stricter rule must pass as a DELETE as well.
    let opts = Options {
        rules: RULES.into(),
        listen_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        ..Options::default()
    };
    let h = Harness::with(opts).await;
    let mut c = h.client();
    c.sign_in().await;
    let ask = |method: &'static str, uri: &'static str, ct: Option<&'static str>| {
        let mut headers =
            vec![("x-original-method", method), ("x-original-uri", uri), ("x-forwarded-host", "stepgate.test")];
        headers.extend(ct.map(|ct| ("content-type", ct)));
        headers
    };
    let form = Some("application/x-www-form-urlencoded");
    let r = c.get_with("/.stepgate/auth", &ask("POST", "/echo/account", form)).await;
    assert_eq!(r.status, 401, "a form POST here needs what a DELETE needs: {}", r.body);
    assert!(r.body.contains("aal2"), "{}", r.body);
    let r = c.get_with("/.stepgate/auth", &ask("POST", "/echo/account", None)).await;
    assert_eq!(r.status, 401, "an unlabelled POST is read as a form: {}", r.body);
    // A body no framework reads `_method` from, another path, or a GET: the POST's own rule.
    let r = c.get_with("/.stepgate/auth", &ask("POST", "/echo/account", Some("application/octet-stream"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.get_with("/.stepgate/auth", &ask("POST", "/echo/elsewhere", form)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.get_with("/.stepgate/auth", &ask("GET", "/echo/account", None)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
