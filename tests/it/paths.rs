//! Path attacks: no spelling of a protected path reaches the app unchallenged; the gateway's
//! own prefix is recognised in every spelling.

use crate::support::{raw, Harness, Options};

pub(crate) const RULES: &str = r#"
[[rule]]
name = "admin"
path = "/admin/**"
require = "aal2"

[default]
require = "none"
"#;

pub(crate) const ATTACKS: &[&str] = &[
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

/// The rules of the independent attack corpus: everything escaping a rule reaches the app.
const CORPUS_RULES: &str = r#"
[[rule]]
name = "admin"
path = "/admin/**"
require = "aal3"

[[rule]]
name = "transfer"
path = "/transfer"
methods = ["POST"]
require = "aal2"

[default]
require = "none"
"#;

/// Spellings that a lenient app, framework or file system reads as `/admin...`: every one is a
/// 400 from the gateway. Sent raw (UTF-8 unencoded where written so), never re-encoded.
const READ_AS_ADMIN: &[&str] = &[
    // Encoded delimiters inside a segment.
    "/admin%3Bx/users",
    "/admin%3bx",
    "/admin%23/users",
    "/admin%3f",
    "/admin%3F/users",
    // Double encoding.
    "/admin%252fx",
    "/%2561dmin",
    "/adm%2569n/users",
    "/admin%255c",
    "/public/%252e%252e/admin",
    "/%25%36%31dmin",
    "/%25u0061dmin",
    // IIS %u escapes and overlong UTF-8.
    "/%u0061dmin",
    "/public/%u002e%u002e/admin",
    "/public/%c0%ae%c0%ae/admin",
    "/public/%e0%80%ae%e0%80%ae/admin",
    // Trailing dots, whitespace, plus.
    "/admin.",
    "/admin..",
    "/admin./users",
    "/admin../users",
    "/admin%2e",
    "/admin%2E/users",
    "/admin%20",
    "/admin%20/users",
    "/%20admin",
    "/admin%09",
    "/admin%00",
    "/admin%00.html",
    "/admin%c2%a0",
    "/admin\u{a0}/users",
    "/admin%e3%80%80",
    "/admin%c2%85",
    "/admin+",
    "/admin%2B/users",
    // Windows file system names.
    "/admin::$INDEX_ALLOCATION/users",
    "/admin:$I30:$INDEX_ALLOCATION/users",
    "/admin%3A%3A$DATA",
    "/ADMIN~1/users",
    // Non-ASCII folding onto ASCII, raw and encoded.
    "/adm\u{131}n/users",
    "/adm%C4%B1n/users",
    "/ADM\u{130}N",
    "/\u{FF41}\u{FF44}\u{FF4D}\u{FF49}\u{FF4E}",
    "/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E/users",
    "/\u{1D41A}dmin",
    "/\u{24D0}dmin",
    "/a\u{217E}\u{217F}\u{2170}n",
    "/public/\u{2025}/admin",
    "/public/%EF%BC%8E%EF%BC%8E/admin",
    "/public/..%EF%BC%8Fadmin",
    "/public%E2%88%95..%E2%88%95admin",
    "/ad\u{AD}min",
    "/admin%E2%80%8B",
    "/%EF%BB%BFadmin",
];

/// Spellings of `/transfer` for a POST.
const READ_AS_TRANSFER: &[&str] = &[
    "/transfer.",
    "/transfer%2e",
    "/transfer%20",
    "/transfer%3B",
    "/transfer%3Bjsessionid=x",
    "/transfer%23",
    "/transfer%3F",
    "/transfer%252e",
    "/tran\u{17F}fer",
    "/TRAN\u{17F}FER",
    "/tran%C5%BFfer",
    "/\u{FF54}ransfer",
    "/transfer\u{FEFF}",
    "/transfer+",
    "/TRANSF~1",
];

async fn post(addr: std::net::SocketAddr, target: &str) -> raw::RawResp {
    let req = format!(
        "POST {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\namount=10",
        crate::support::HOST
    );
    raw::send(addr, req.as_bytes()).await
}

fn from_app(r: &raw::RawResp) -> bool {
    let body = r.body_text();
    body.contains("The admin area")
        || body.contains("demo app")
        || body.contains("\"path\"")
        || body.contains("ransfer")
}

#[tokio::test]
async fn spellings_a_lenient_app_reads_as_a_protected_path_are_refused() {
    let h = Harness::with(Options { rules: CORPUS_RULES.into(), ..Options::default() }).await;
    // Controls: the protected paths themselves are challenged; the echo shows what is forwarded.
    assert_eq!(raw::get(h.addr, "/admin/users", &[("Accept", "application/json")]).await.status, 401);
    assert_eq!(raw::get(h.addr, "/ADMIN/users", &[("Accept", "application/json")]).await.status, 401);
    assert_eq!(post(h.addr, "/transfer").await.status, 401);
    assert_eq!(post(h.addr, "/TRANSFER").await.status, 401);

    let mut failures = Vec::new();
    for target in READ_AS_ADMIN {
        let r = raw::get(h.addr, target, &[("Accept", "application/json")]).await;
        if r.status != 400 || from_app(&r) {
            failures.push(format!("GET {target} -> {} {}", r.status, r.body_text()));
        }
    }
    for target in READ_AS_TRANSFER {
        let r = post(h.addr, target).await;
        if r.status != 400 || from_app(&r) {
            failures.push(format!("POST {target} -> {} {}", r.status, r.body_text()));
        }
    }
    assert!(failures.is_empty(), "forwarded or mishandled:\n{}", failures.join("\n"));
}

/// Ordinary names keep working: dots inside names, `~`, `+` inside, spaces inside, non-ASCII
/// letters whose folds stay non-ASCII. The app sees the canonical form.
#[tokio::test]
async fn ordinary_names_with_dots_and_non_ascii_are_forwarded() {
    let h = Harness::with(Options { rules: CORPUS_RULES.into(), ..Options::default() }).await;
    for (target, seen) in [
        ("/echo/file.txt", "/echo/file.txt"),
        ("/echo/v1.2/x", "/echo/v1.2/x"),
        ("/echo/.well-known/x", "/echo/.well-known/x"),
        ("/echo/~user/a+b", "/echo/~user/a+b"),
        ("/echo/a%20b", "/echo/a%20b"),
        ("/echo/100%25", "/echo/100%25"),
        ("/echo/caf%c3%a9", "/echo/caf%C3%A9"),
        ("/echo/caf\u{e9}", "/echo/caf%C3%A9"),
        ("/echo/\u{65e5}\u{672c}", "/echo/%E6%97%A5%E6%9C%AC"),
        ("/echo/\u{C5}ngstr\u{F6}m", "/echo/%C3%85ngstr%C3%B6m"),
        ("/echo/p:batchGet", "/echo/p:batchGet"),
    ] {
        let r = raw::get(h.addr, target, &[]).await;
        assert_eq!(r.status, 200, "{target}: {}", r.body_text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("echo JSON");
        assert_eq!(v["path"], seen, "{target}");
    }
}
