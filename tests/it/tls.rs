//! The gateway terminating TLS itself (`listen.tls_cert`, `listen.tls_key`), judged by curl:
//! HTTP/2 and HTTP/1.1 by ALPN, a certificate curl verifies against the test CA, no plain HTTP.

use crate::support::certs::make_certificates;
use crate::support::{Harness, Options};
use std::path::Path;
use std::process::Command;

/// curl against `https://localhost:PORT{path}` resolved to the gateway; returns (exit code,
/// body, negotiated HTTP version).
fn curl(port: u16, path: &str, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_version}"])
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}): install the Debian package `curl`"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (out.status.code().unwrap_or(-1), body.to_string(), version.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_https_with_h2_and_http1_no_plain_http_and_rotates_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let file = |f: &str| dir.path().join(f).display().to_string();
    let h = Harness::with(Options {
        listen_address: Some(format!("127.0.0.1:{port}")),
        public_url: Some(format!("https://localhost:{port}")),
        listen_extra: format!("tls_cert = \"{}\"\ntls_key = \"{}\"", file("srv.crt"), file("srv.key")),
        ..Options::default()
    })
    .await;
    let ca = file("ca.crt");
    let (code, body, version) =
        tokio::task::spawn_blocking(move || curl(port, "/public/x", &["--cacert", ca.as_str()])).await.unwrap();
    assert_eq!(code, 0, "{body}");
    assert!(body.contains("A public page"), "{body}");
    assert_eq!(version, "2", "HTTP/2 by ALPN");

    let ca = file("ca.crt");
    let (code, body, version) = tokio::task::spawn_blocking(move || {
        curl(port, "/.stepgate/login", &["--cacert", ca.as_str(), "--http1.1", "-D", "-"])
    })
    .await
    .unwrap();
    assert_eq!((code, version.as_str()), (0, "1.1"), "{body}");
    assert!(body.contains("__Host-stepgate_csrf=") && body.contains("Secure"), "https cookies: {body}");

    // curl without the test CA does not trust the certificate (exit 60).
    let (code, _, _) = tokio::task::spawn_blocking(move || curl(port, "/public/x", &[])).await.unwrap();
    assert_eq!(code, 60, "the certificate is checked against a CA curl does not know");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let r = tokio::task::spawn_blocking(move || {
        Command::new("curl").args(["-sS", "--max-time", "5", &format!("http://127.0.0.1:{port}/public/x")]).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!r.status.success(), "plain HTTP: {}", String::from_utf8_lossy(&r.stdout));

    // A renewed certificate (from another CA here) is taken on SIGHUP's reload.
    let renewed = tempfile::tempdir().unwrap();
    make_certificates(renewed.path());
    for f in ["srv.crt", "srv.key"] {
        std::fs::copy(renewed.path().join(f), dir.path().join(f)).unwrap();
    }
    let config_file = dir.path().join("reload.toml");
    std::fs::write(&config_file, &h.config_text).unwrap();
    stepgate::server::reload(&h.running.as_ref().unwrap().state, &config_file, &Default::default());
    let (old_ca, new_ca) = (file("ca.crt"), renewed.path().join("ca.crt").display().to_string());
    let (old, new) = tokio::task::spawn_blocking(move || {
        (
            curl(port, "/public/x", &["--cacert", old_ca.as_str()]).0,
            curl(port, "/public/x", &["--cacert", new_ca.as_str()]).0,
        )
    })
    .await
    .unwrap();
    assert_eq!((old, new), (60, 0), "after the reload the renewed certificate is served");
}

#[test]
fn tls_settings_are_checked_and_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    std::fs::write(dir.path().join("garbage.pem"), "not a certificate").unwrap();
    let check = |listen_extra: &str| {
        let text = crate::support::config_text(
            dir.path(),
            "http://127.0.0.1:3000",
            &Options { listen_extra: listen_extra.into(), ..Options::default() },
        );
        stepgate::config::parse(&text, Path::new(dir.path()), &Default::default()).map(|_| ()).map_err(|e| e.key)
    };
    assert_eq!(check("tls_cert = \"srv.crt\"\ntls_key = \"srv.key\""), Ok(()), "relative to the config's folder");
    assert_eq!(check("tls_cert = \"srv.crt\"").unwrap_err(), "listen.tls_key");
    assert_eq!(check("tls_key = \"srv.key\"").unwrap_err(), "listen.tls_cert");
    assert_eq!(check("tls_cert = \"garbage.pem\"\ntls_key = \"srv.key\"").unwrap_err(), "listen.tls_cert");
    assert_eq!(check("tls_cert = \"srv.crt\"\ntls_key = \"missing.key\"").unwrap_err(), "listen.tls_key");
    assert_eq!(
        check("tls_cert = \"srv.crt\"\ntls_key = \"ca.key\"").unwrap_err(),
        "listen.tls_key",
        "a key of another cert"
    );
}
