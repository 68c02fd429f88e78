//! Path attacks: no spelling of a protected path reaches the app unchallenged; the gateway's
//! own prefix is recognised in every spelling.

use crate::support::{raw, Harness, Options};

const RULES: &str = r#"
[[rule]]
name = "admin"
path = "/admin/**"
require = "aal2"

[default]
require = "none"
"#;

const ATTACKS: &[&str] = &[
    "/admin",
    "//admin",
    "/./admin",
    "/public/../admin",
    "/%61dmin",
    "/ADMIN",
    "/Admin/x",
    "/admin%2fx",
    "/admin%2Fx",
    "/admin;x",
    "/admin/;x",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/.%2e/admin",
    "/%2e%2e/admin",
    "/../admin",
    "/admin%5cx",
    "/admin%00",
    "///admin",
    "/admin/",
    "/a/b/../../admin",
    "/%41DMIN",
    "/admin%zz",
    "/adm%69n",
    "/admin/./x",
    "/admin?x=/public",
    "/public/..;/admin",
    "/admin/%2e%2e/admin",
    "/admin/.",
    "/admin/..%2fadmin",
    "/public%2f..%2fadmin",
    "/admin\\x",
    "/admin/x#frag",
    "/%2fadmin",
    "/admin%09",
    "/ad%6Din/x?y=1",
    "http://stepgate.test/admin",
    "http://stepgate.test//admin/../admin",
    "http://other.example/admin",
];

/// Targets whose dot segments resolve outside `/admin`: forwarded, but as the resolved path,
/// so the app never sees an admin path (the path matched is the path forwarded).
/// `/echo` shows the path the app received.
const RESOLVE_ELSEWHERE: &[(&str, &str)] =
    &[("/admin/%2e%2e/x", "/x"), ("/admin/%2e%2e/echo/x", "/echo/x"), ("/admin/../echo/public/y", "/echo/public/y")];

fn admin_harness() -> Options {
    Options { rules: RULES.into(), ..Options::default() }
}

#[tokio::test]
async fn no_spelling_of_admin_reaches_the_app_anonymously() {
    let h = Harness::with(admin_harness()).await;
    // The harness can see a forward.
    let control = raw::get(h.addr, "/public/x", &[]).await;
    assert_eq!(control.status, 200, "{}", control.body_text());
    assert!(control.body_text().contains("A public page"), "{}", control.body_text());

    let mut failures = Vec::new();
    for target in ATTACKS {
        for (accept, allowed) in [("application/json", [400, 401]), ("text/html", [400, 302])] {
            let r = raw::get(h.addr, target, &[("Accept", accept)]).await;
            let body = r.body_text();
            let from_app = body.contains("The admin area") || body.contains("demo app");
            if !allowed.contains(&r.status) || from_app {
                failures.push(format!(
                    "{target} (Accept: {accept}) -> {} {}",
                    r.status,
                    body.lines().next().unwrap_or("")
                ));
            }
            if r.status == 302 {
                let loc = r.header("location").unwrap_or_default();
                assert!(loc.starts_with("/.stepgate/login?return="), "{target}: redirect to {loc}");
            }
        }
    }
    assert!(failures.is_empty(), "protected path reached or mishandled:\n{}", failures.join("\n"));

    for (target, resolved) in RESOLVE_ELSEWHERE {
        let r = raw::get(h.addr, target, &[]).await;
        assert_eq!(r.status, 200, "{target}: {}", r.body_text());
        let seen = r.body_text();
        if let Some(json) = seen.strip_prefix('{').map(|_| seen.as_str()) {
            let v: serde_json::Value = serde_json::from_str(json).expect("echo JSON");
            assert_eq!(v["path"], *resolved, "{target}: the app sees the resolved path only");
        } else {
            assert_eq!(seen, format!("demo app: {resolved}"), "{target}: the app sees the resolved path only");
        }
    }
}

#[tokio::test]
async fn the_gateway_prefix_is_the_gateways_in_every_spelling() {
    let h = Harness::with(admin_harness()).await;
    let r = raw::get(h.addr, "/.stepgate/nope", &[("Accept", "application/json")]).await;
    assert_eq!(r.status, 404);
    assert!(r.body_text().contains("No such gateway page"), "{}", r.body_text());
    assert!(!r.body_text().contains("demo app"));

    for target in
        ["/.STEPGATE/login", "/x/../.stepgate/login", "/.stepgate/./login", "//.stepgate//login", "/%2Estepgate/login"]
    {
        let r = raw::get(h.addr, target, &[("Accept", "text/html")]).await;
        assert_eq!(r.status, 200, "{target}: {}", r.body_text());
        let body = r.body_text();
        assert!(body.contains("action=\"/.stepgate/login\"") && body.contains("name=\"csrf\""), "{target}: {body}");
        assert!(!body.contains("demo app"), "{target} went to the app");
    }
    // Unknown gateway paths in odd spellings are the gateway's 404 too, never the app's.
    for target in ["/.StepGate/nope", "/public/../.stepgate/nope"] {
        let r = raw::get(h.addr, target, &[]).await;
        assert_eq!(r.status, 404, "{target}");
        assert!(!r.body_text().contains("demo app"));
    }
}

const HOST_RULES: &str = r#"
[[rule]]
name = "admin-site"
host = "admin.test"
path = "/**"
require = "aal2"

[default]
require = "none"
"#;

/// Sends `GET {target}` with the given Host header lines (none, one or several).
async fn get_with_hosts(addr: std::net::SocketAddr, target: &str, hosts: &[&str]) -> raw::RawResp {
    let mut req = format!("GET {target} HTTP/1.1\r\nConnection: close\r\nAccept: application/json\r\n");
    for h in hosts {
        req.push_str(&format!("Host: {h}\r\n"));
    }
    req.push_str("\r\n");
    raw::send(addr, req.as_bytes()).await
}

/// A request that names two hosts could be checked against one and served by the upstream as
/// the other: it is refused, and the upstream is always told the host the gateway checked.
#[tokio::test]
async fn a_request_naming_two_hosts_is_refused_and_the_upstream_gets_the_checked_host() {
    let h = Harness::with(Options { rules: HOST_RULES.into(), ..Options::default() }).await;
    // Controls: the public site is forwarded, the admin site asks for a proof.
    assert_eq!(get_with_hosts(h.addr, "/echo/x", &["public.test"]).await.status, 200);
    assert_eq!(get_with_hosts(h.addr, "/echo/x", &["admin.test"]).await.status, 401);
    assert_eq!(get_with_hosts(h.addr, "http://admin.test/echo/x", &["admin.test"]).await.status, 401);

    for (target, hosts) in [
        ("http://public.test/echo/x", &["admin.test"][..]),
        ("http://public.test:80/echo/x", &["ADMIN.test."][..]),
        ("/echo/x", &["public.test", "admin.test"][..]),
        ("/echo/x", &["admin.test", "public.test"][..]),
        ("/echo/x", &["public.test", "public.test"][..]),
        ("http://user@public.test/echo/x", &["public.test"][..]),
        ("/echo/x", &[][..]),
    ] {
        let r = get_with_hosts(h.addr, target, hosts).await;
        assert_eq!(r.status, 400, "{target} with Host {hosts:?}: {}", r.body_text());
        assert!(!r.body_text().contains("\"path\""), "{target} reached the app");
    }

    // Same host in the target and the header, spelled differently: one host, and the upstream
    // is told the target's spelling, never something the gateway did not match.
    for (target, hosts) in
        [("http://public.test/echo/x", &["PUBLIC.test:80"][..]), ("http://public.test/echo/x", &[][..])]
    {
        let r = get_with_hosts(h.addr, target, hosts).await;
        assert_eq!(r.status, 200, "{target} with Host {hosts:?}: {}", r.body_text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("echo JSON");
        assert_eq!(v["headers"]["host"], "public.test", "{target} with Host {hosts:?}");
        assert_eq!(v["headers"]["x-forwarded-host"], "public.test");
    }
}

/// Sends one HTTP/2 request over cleartext (h2c, prior knowledge) for `uri` (its authority
/// becomes `:authority`) with an optional Host header; returns the status and the body.
async fn h2c_get(addr: std::net::SocketAddr, uri: &str, host: Option<&str>) -> (u16, String) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("an HTTP/2 (h2c) handshake with the gateway");
    tokio::spawn(conn);
    let mut req = http::Request::get(uri).header("accept", "application/json");
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let resp = send.send_request(req.body(crate::support::client::empty()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// HTTP/2 downstream (h2c): served, and its `:authority` is held to the same one-host rule.
#[tokio::test]
async fn over_http2_the_authority_is_the_host_and_a_different_host_header_is_refused() {
    let h = Harness::with(Options { rules: HOST_RULES.into(), ..Options::default() }).await;
    let (status, body) = h2c_get(h.addr, "http://public.test/echo/x", None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(v["headers"]["host"], "public.test", "the upstream (HTTP/1.1) is told the :authority");
    assert_eq!(h2c_get(h.addr, "http://admin.test/echo/x", None).await.0, 401, "the admin site needs a proof");
    let (status, body) = h2c_get(h.addr, "http://public.test/echo/x", Some("admin.test")).await;
    assert_eq!(status, 400, ":authority public.test with Host admin.test: {body}");
    assert!(!body.contains("\"path\""), "never forwarded");
}
