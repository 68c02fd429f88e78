//! Workload identity by client certificate, judged by curl `--cert` against the gateway's own
//! TLS, and by RFC 9440 `Client-Cert` headers from trusted and untrusted peers.

use crate::support::certs::make_certificates;
use crate::support::workload_certs::{svid_ext, Cas, FAR, JUST_BEFORE_T0, LONG_AGO, PLAIN_EXT};
use crate::support::{audit, Harness, Options};
use base64::Engine;
use std::process::Command;

const RULES: &str = r#"
[[rule]]
name = "prod-services"
path = "/echo/prod/**"
require = "aal1"
workload = "spiffe://example.org/ns/prod/sa/*"

[[rule]]
name = "fresh-only"
path = "/echo/fresh/**"
require = "aal1"
workload = "spiffe://example.org/**"
max_credential_age = "1h"

[[rule]]
name = "strong"
path = "/echo/strong"
require = "aal2"

[[rule]]
name = "open"
path = "/public/**"
require = "none"

[[rule]]
name = "echo-open"
path = "/echo/public/**"
require = "none"

[default]
require = "aal1"
"#;

const PROD: &str = "spiffe://example.org/ns/prod/sa/billing";
const DEV: &str = "spiffe://example.org/ns/dev/sa/billing";

fn make(cas: &Cas) {
    cas.leaf("wca", "prod", &svid_ext(&[PROD]), LONG_AGO, FAR);
    cas.leaf("wca", "prodfresh", &svid_ext(&[PROD]), JUST_BEFORE_T0, FAR);
    cas.leaf("wca", "dev", &svid_ext(&[DEV]), LONG_AGO, FAR);
    cas.leaf("wca", "legacy", PLAIN_EXT, LONG_AGO, FAR);
    cas.leaf("wca", "twosans", &svid_ext(&[PROD, DEV]), LONG_AGO, FAR);
    cas.leaf("wca", "expired", &svid_ext(&[PROD]), "20200101000000Z", "20200102000000Z");
    cas.leaf("other", "stranger", &svid_ext(&[PROD]), LONG_AGO, FAR);
}

/// curl with a client certificate (`None`: without one); (exit code, status, body).
fn curl(port: u16, dir: &std::path::Path, cert: Option<&str>, path: &str) -> (i32, String, String) {
    let f = |n: &str| dir.join(n).display().to_string();
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "10", "--resolve", &format!("localhost:{port}:127.0.0.1"), "--cacert", &f("ca.crt")])
        .args(["-H", "accept: application/json", "-w", "\n%{http_code}"]);
    if let Some(name) = cert {
        c.args(["--cert", &f(&format!("{name}.crt")), "--key", &f(&format!("{name}.key"))]);
    }
    let out =
        c.arg(format!("https://localhost:{port}{path}")).output().expect("curl (install the Debian package `curl`)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (out.status.code().unwrap_or(-1), status.to_string(), body.to_string())
}

async fn tls_gateway(dir: &std::path::Path, auth: &str) -> (Harness, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let f = |n: &str| dir.join(n).display().to_string();
    let h = Harness::with(Options {
        rules: RULES.into(),
        listen_address: Some(format!("127.0.0.1:{port}")),
        public_url: Some(format!("https://localhost:{port}")),
        listen_extra: format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\ntls_client_auth = \"{auth}\"",
            f("srv.crt"),
            f("srv.key"),
            f("wca.crt")
        ),
        ..Options::default()
    })
    .await;
    (h, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_with_a_certificate_reaches_or_is_refused_as_the_rules_say() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    make_certificates(&dir);
    let cas = Cas::new(&dir);
    make(&cas);
    audit::capture();
    let (_h, port) = tls_gateway(&dir, "optional").await;
    let run = |cert: Option<&'static str>, path: &'static str| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || curl(port, &dir, cert, path))
    };
    // The SVID from the test CA passes the workload rule; the app is told who it is.
    let (code, status, body) = run(Some("prod"), "/echo/prod/x").await.unwrap();
    assert_eq!((code, status.as_str()), (0, "200"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["headers"]["x-stepgate-workload"], PROD);
    assert_eq!(v["headers"]["x-stepgate-methods"], "certificate");
    // Another workload of the same CA: 403 with the reason.
    let (_, status, body) = run(Some("dev"), "/echo/prod/x").await.unwrap();
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("workload"), "{body}");
    let rec = audit::wait_for(|r| r["reason"] == "workload_not_allowed" && r["workload"] == DEV).await;
    assert_eq!(rec["rule"], "prod-services");
    // A non-SPIFFE certificate is its subject: passes aal1 routes, not workload rules.
    let (_, status, body) = run(Some("legacy"), "/echo/other").await.unwrap();
    assert_eq!(status, "200", "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["headers"]["x-stepgate-workload"], "CN=legacy");
    assert_eq!(run(Some("legacy"), "/echo/prod/x").await.unwrap().1, "403");
    // Two URI SANs: no valid SVID, refused whatever the route.
    let (_, status, body) = run(Some("twosans"), "/echo/other").await.unwrap();
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("invalid_certificate") || body.contains("workload identity"), "{body}");
    // max_credential_age: an SVID issued at the start of the year is too old; a fresh one passes.
    assert_eq!(run(Some("prod"), "/echo/fresh/x").await.unwrap().1, "403");
    assert_eq!(run(Some("prodfresh"), "/echo/fresh/x").await.unwrap().1, "200");
    // A workload never gets a challenge page: aal2 needed, 401 without a redirect.
    let (_, status, body) = run(Some("prod"), "/echo/strong").await.unwrap();
    assert_eq!(status, "401", "{body}");
    // Expired, or from another CA: the TLS handshake refuses it (curl fails, no HTTP status).
    for name in ["expired", "stranger"] {
        let (code, status, _) = run(Some(name), "/echo/other").await.unwrap();
        assert_ne!(code, 0, "{name}: refused in the handshake (status {status})");
    }
    // Optional: without a certificate, the TLS connection works and the route asks for sign-in.
    let (code, status, _) = run(None, "/echo/other").await.unwrap();
    assert_eq!((code, status.as_str()), (0, "401"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_auth_refuses_a_client_without_a_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    make_certificates(&dir);
    let cas = Cas::new(&dir);
    make(&cas);
    let (_h, port) = tls_gateway(&dir, "required").await;
    let d = dir.clone();
    let (code, _, _) = tokio::task::spawn_blocking(move || curl(port, &d, None, "/public/x")).await.unwrap();
    assert_ne!(code, 0, "no certificate, no connection");
    let (code, status, _) =
        tokio::task::spawn_blocking(move || curl(port, &dir, Some("prod"), "/public/x")).await.unwrap();
    assert_eq!((code, status.as_str()), (0, "200"));
}

fn client_cert_header(dir: &std::path::Path, name: &str) -> String {
    let pem = std::fs::read(dir.join(format!("{name}.crt"))).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .expect("a PEM certificate");
    format!(":{}:", base64::engine::general_purpose::STANDARD.encode(der))
}

async fn header_gateway(dir: &std::path::Path, trusted: &str) -> Harness {
    Harness::with(Options {
        rules: RULES.into(),
        listen_extra: format!(
            "trusted_proxies = [\"{trusted}\"]\ntls_client_ca = \"{}\"",
            dir.join("wca.crt").display()
        ),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn client_cert_header_counts_only_from_a_trusted_proxy_and_only_if_it_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cas = Cas::new(dir);
    make(&cas);
    let prod = client_cert_header(dir, "prod");
    let json = ("accept", "application/json");
    // From a trusted proxy (127.0.0.1 here): the certificate is the workload.
    let h = header_gateway(dir, "127.0.0.1/32").await;
    let r = h.client().get_with("/echo/prod/x", &[("client-cert", &prod), json]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.echoed_headers()["x-stepgate-workload"], PROD);
    // ...but one from another CA does not count, even from the proxy.
    let stranger = client_cert_header(dir, "stranger");
    let r = h.client().get_with("/echo/prod/x", &[("client-cert", &stranger), json]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // From an untrusted peer: ignored (no identity), and not passed to the app.
    let h = header_gateway(dir, "10.9.9.9/32").await;
    let r = h.client().get_with("/echo/prod/x", &[("client-cert", &prod), json]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = h.client().get_with("/public/x", &[("client-cert", &prod)]).await;
    assert_eq!(r.status, 200);
    let r = h.client().get_with("/echo/public/x", &[("client-cert", &prod), ("accept", "application/json")]).await;
    assert!(r.echoed_headers().get("client-cert").is_none(), "stripped from an untrusted peer");
}
