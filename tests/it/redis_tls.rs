//! `rediss://`: TLS to Redis with rustls, verified against the CA roots the system (or
//! `SSL_CERT_FILE`) provides. A `redis-server` with TLS and a test CA made with openssl.

use crate::support::certs::make_certificates;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct TlsRedis {
    child: Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_redis(dir: &Path) -> TlsRedis {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("redis-server")
        .current_dir(dir)
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--tls-cert-file", "srv.crt", "--tls-key-file", "srv.key", "--tls-ca-cert-file", "ca.crt"])
        .args(["--tls-auth-clients", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run redis-server ({e}): install the Debian package `redis-server`"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server (TLS) did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsRedis { child, port }
}

/// `stepgate explain --user` reads the user's history from the configured store: a store
/// round trip without starting a server.
fn explain_history(config: &Path, ca_file: Option<&Path>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stepgate"));
    cmd.args(["--config", &config.display().to_string(), "explain", "--method", "GET", "--url", "http://localhost/x"])
        .args(["--user", "ann"]);
    // Only this child process trusts the test CA.
    match ca_file {
        Some(f) => cmd.env("SSL_CERT_FILE", f),
        None => cmd.env_remove("SSL_CERT_FILE"),
    };
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find(|l| l.starts_with("history")).unwrap_or_else(|| panic!("no history line: {text}")).to_string()
}

#[test]
fn rediss_talks_tls_to_a_server_whose_ca_is_trusted_and_refuses_one_that_is_not() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let redis = start_tls_redis(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\naddress = \"127.0.0.1:0\"\npublic_url = \"http://localhost:8080\"\n\
             [upstream]\nurl = \"http://127.0.0.1:3000\"\n\
             [store]\nkind = \"redis\"\nurl = \"rediss://localhost:{}/0\"\n\
             [sessions]\nsecret_key = \"{}\"\n[default]\nrequire = \"aal1\"\n",
            redis.port,
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let trusted = explain_history(&config, Some(&dir.path().join("ca.crt")));
    assert!(trusted.contains("0 known device(s)"), "read over TLS: {trusted}");
    let untrusted = explain_history(&config, None);
    assert!(untrusted.contains("unavailable"), "a server signed by an unknown CA is refused: {untrusted}");
}
