//! Helpers for the Redis integration tests: a `redis-server` of their own, a tiny browser
//! (cookie jar, forms), and gateway instances sharing one Redis.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stepgate::clock::{SharedClock, SystemClock};
use stepgate::config::{self, Overrides};
use stepgate::server::{self, Running};

/// A `redis-server` on a free port (never 6379), with AOF on when asked; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    aof: bool,
}

impl RedisServer {
    pub fn start(aof: bool) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = RedisServer { child: None, port, dir: tempfile::tempdir().unwrap(), aof };
        s.restart();
        s
    }

    /// Starts it (again) on the same port and directory: with AOF, the data comes back.
    pub fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server ({e}): install the Debian package `redis-server`"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown save; only what AOF already has survives.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: a Redis that hangs (accepts, never answers) and comes back.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("redis-server running").id().to_string();
        let sig = if paused { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill").args([sig, &pid]).status().is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} failed");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.pause(false);
        }
        self.kill();
    }
}

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";

/// Writes a config on the Redis store (the demo policy's rules) and the users file.
pub fn write_config(dir: &std::path::Path, store_url: &str, upstream: SocketAddr) -> PathBuf {
    let users = dir.join("users.toml");
    stepgate::authn::password::add_user(&users, USER, PASSWORD).unwrap();
    let text = format!(
        r#"[listen]
address = "127.0.0.1:0"
public_url = "http://localhost"

[upstream]
url = "http://{upstream}"

[store]
kind = "redis"
url = "{store_url}"
prefix = "it{prefix:08x}"
timeout = "1s"

[identity]
source = "builtin"
users_file = "{users}"

[sessions]
secret_key = "{key}"

[[rule]]
name = "public"
path = "/public/**"
require = "none"

[[rule]]
name = "transfer"
path = "/transfer"
require = "aal2"
max_age = "5m"

[default]
require = "aal1"
"#,
        prefix = rand::random::<u32>(),
        users = users.display(),
        key = hex::encode(rand::random::<[u8; 32]>()),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One gateway instance on an ephemeral port, as `stepgate run` starts it.
pub async fn gateway(config: &std::path::Path) -> Running {
    let cfg = config::load(config, &Overrides::default()).unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let store = server::open_store(&cfg, &clock).unwrap();
    server::start(cfg, store, clock).await.unwrap()
}

/// A browser: one cookie jar, sent to whichever instance it talks to (as behind a balancer).
pub struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    pub jar: Mutex<BTreeMap<String, String>>,
}

pub struct Page {
    pub status: StatusCode,
    pub body: String,
}

impl Browser {
    pub fn new() -> Browser {
        Browser { client: Client::builder(TokioExecutor::new()).build_http(), jar: Mutex::new(BTreeMap::new()) }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar.lock().unwrap().insert(name.into(), value.into());
    }

    pub async fn get(&self, to: SocketAddr, path: &str) -> Page {
        self.send(to, "GET", path, Vec::new()).await
    }

    pub async fn post(&self, to: SocketAddr, path: &str, form: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        self.send(to, "POST", path, body.into_bytes()).await
    }

    async fn send(&self, to: SocketAddr, method: &str, path: &str, body: Vec<u8>) -> Page {
        let cookies: Vec<String> = self.jar.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut req = Request::builder().method(method).uri(format!("http://{to}{path}")).header("accept", "text/html");
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        if method == "POST" {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let resp = self.client.request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
        for v in resp.headers().get_all("set-cookie") {
            let c = cookie::Cookie::parse(v.to_str().unwrap().to_string()).unwrap();
            let mut jar = self.jar.lock().unwrap();
            if c.value().is_empty() || c.max_age() == Some(cookie::time::Duration::ZERO) {
                jar.remove(c.name());
            } else {
                jar.insert(c.name().to_string(), c.value().to_string());
            }
        }
        let status = resp.status();
        let body = String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
        Page { status, body }
    }
}

/// The value of the first element after `marker` up to the next `end`.
pub fn between<'a>(html: &'a str, marker: &str, end: &str) -> Option<&'a str> {
    let start = html.find(marker)? + marker.len();
    Some(&html[start..start + html[start..].find(end)?])
}

pub fn csrf(html: &str) -> String {
    between(html, r#"name="csrf" value=""#, "\"").expect("a form with a CSRF token").to_string()
}

/// Polls `f` every 20 ms until it holds; returns how long that took, or None after `within`.
pub async fn within<F, Fut>(within: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if f().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
