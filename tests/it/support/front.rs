//! Real front proxies from Debian, nginx (`auth_request`) and Caddy (`forward_auth`), started
//! from the very snippets the README shows (`docs/forward-auth/`), on ephemeral ports, in
//! front of an app, with stepgate beside them. Killed on drop.

use super::{Client, PATIENCE};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The snippets as the README shows them; the addresses in them are the README's.
pub const NGINX_SNIPPET: &str = include_str!("../../../docs/forward-auth/nginx.conf");
pub const CADDY_SNIPPET: &str = include_str!("../../../docs/forward-auth/Caddyfile");

/// What the snippets name, replaced by the test's addresses.
const SNIPPET_STEPGATE: &str = "127.0.0.1:8080";
const SNIPPET_APP: &str = "127.0.0.1:3000";
const SNIPPET_SITE: &str = "app.example.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
}

/// A running front proxy: `addr` is its public listener.
pub struct FrontProxy {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl FrontProxy {
    pub async fn start(kind: Kind, stepgate: SocketAddr, app: SocketAddr) -> FrontProxy {
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("a temporary directory for the front proxy");
            let port = free_port();
            let child = match kind {
                Kind::Nginx => spawn_nginx(dir.path(), port, stepgate, app),
                Kind::Caddy => spawn_caddy(dir.path(), port, stepgate, app),
            };
            let mut proxy = FrontProxy { kind, addr: SocketAddr::from(([127, 0, 0, 1], port)), child, dir };
            match proxy.wait_ready().await {
                Ok(()) => return proxy,
                Err(log) if log.contains("in use") => last_log = log, // lost the port: try another
                Err(log) => panic!("{kind:?} did not start:\n{log}"),
            }
        }
        panic!("{kind:?} could not bind a free port in five tries:\n{last_log}");
    }

    /// A browser-ish client aimed at the front proxy (`Host: stepgate.test`).
    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// The proxy's own log so far (for failure messages).
    pub fn log(&self) -> String {
        let names: &[&str] = match self.kind {
            Kind::Nginx => &["nginx.log", "error.log"],
            Kind::Caddy => &["caddy.log"],
        };
        names.iter().map(|n| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default()).collect()
    }

    /// Up when the port accepts connections while the process still runs; Err(log) if it died.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                // The port may be someone else's: make sure it is this process that listens.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!("exited with {status}:\n{}", self.log()));
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not listening on {} after {PATIENCE:?}:\n{}", self.addr, self.log()))
    }
}

impl Drop for FrontProxy {
    /// SIGTERM first: nginx's master then stops its workers (a SIGKILL would orphan them).
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (bound on 127.0.0.1:0, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("its address").port()
}

/// `snippet` with each (from, to) replaced; every `from` must occur, so a changed snippet
/// fails here instead of testing something else.
pub fn fill(snippet: &str, replacements: &[(&str, String)]) -> String {
    let mut out = snippet.to_string();
    for (from, to) in replacements {
        assert!(out.contains(from), "the snippet no longer contains {from:?}:\n{snippet}");
        out = out.replace(from, to);
    }
    out
}

fn spawn_nginx(dir: &Path, port: u16, stepgate: SocketAddr, app: SocketAddr) -> Child {
    let site = fill(
        NGINX_SNIPPET,
        &[
            (SNIPPET_STEPGATE, stepgate.to_string()),
            (SNIPPET_APP, app.to_string()),
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            (SNIPPET_SITE, super::HOST.to_string()),
        ],
    );
    std::fs::write(dir.join("stepgate.conf"), site).expect("write the nginx snippet");
    // As root, nginx's workers would switch to `nobody`, who cannot enter this private
    // directory: keep them as the user running the tests. Otherwise `user` is ignored.
    let as_root = std::fs::metadata(dir).map(|m| m.uid() == 0).unwrap_or(false);
    let user = if as_root { "user root;" } else { "" };
    let d = dir.display();
    let main = format!(
        "{user}\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/client_body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
         scgi_temp_path {d}/scgi;\n  include {d}/stepgate.conf;\n}}\n"
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, main).expect("write nginx.conf");
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(dir).arg("-c").arg(&conf).arg("-e").arg(dir.join("error.log")).args(["-g", "daemon off;"]);
    spawn(cmd, dir, "nginx", "nginx")
}

fn spawn_caddy(dir: &Path, port: u16, stepgate: SocketAddr, app: SocketAddr) -> Child {
    let site = fill(
        CADDY_SNIPPET,
        &[
            (SNIPPET_STEPGATE, stepgate.to_string()),
            (SNIPPET_APP, app.to_string()),
            (SNIPPET_SITE, format!("http://{}:{port}", super::HOST)),
        ],
    );
    let global = "{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n}\n\n";
    let file = dir.join("Caddyfile");
    std::fs::write(&file, format!("{global}{site}")).expect("write the Caddyfile");
    let mut cmd = Command::new("caddy");
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    spawn(cmd, dir, "caddy", "caddy")
}

/// Starts `cmd` with its output in `<dir>/<name>.log` (nginx writes error.log itself).
fn spawn(mut cmd: Command, dir: &Path, name: &str, package: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("create the proxy's log");
    let log2 = log.try_clone().expect("clone the log handle");
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run `{name}` ({e}): install the Debian package `{package}` (apt-get install {package})")
    })
}
