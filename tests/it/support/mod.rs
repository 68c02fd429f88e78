//! The harness: a demo app upstream and a gateway in front of it, on ephemeral ports, with a
//! manual clock and an embedded store in a temporary directory.

pub mod audit;
pub mod certs;
pub mod client;
pub mod flows;
pub mod front;
pub mod html;
pub mod idp;
pub mod raw;
pub mod recorder;
pub mod tokens;
pub mod totp;
pub mod workload_certs;
pub mod www_auth;

use rand::RngCore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use stepgate::clock::{ManualClock, UnixTime};
use stepgate::config::Overrides;
use stepgate::demo_app::DemoApp;
use stepgate::server::Running;
use stepgate::store::embedded::EmbeddedStore;
use stepgate::store::SharedStore;
use tokio::net::TcpListener;

pub use client::{Client, Resp};

/// Guards against a hung test only; nothing asserts how fast anything is.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// 2026-11-23T12:00:00Z: the manual clock's starting point.
pub const T0: u64 = 1_795_435_200;

/// The host the tests' clients name, and the public URL the gateway is configured with.
pub const HOST: &str = "stepgate.test";
pub const ORIGIN: &str = "http://stepgate.test";

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery";

/// The demo policy used by most tests: `/transfer` needs aal2 within 5 minutes.
pub const DEMO_RULES: &str = r#"
[[rule]]
name = "public"
path = "/public/**"
require = "none"

[[rule]]
name = "echo-public"
path = "/echo/public/**"
require = "none"

[[rule]]
name = "transfer"
path = "/transfer"
require = "aal2"
max_age = "5m"

[[rule]]
name = "admin"
path = "/admin/**"
require = "aal2"
max_age = "5m"

[[rule]]
name = "slow"
path = "/slow"
require = "none"

[[rule]]
name = "ws"
path = "/ws"
require = "none"

[[rule]]
name = "streams"
path = "/sink"
require = "none"

[[rule]]
name = "bytes"
path = "/bytes/**"
require = "none"

[default]
require = "aal1"
"#;

/// What differs between the gateways the tests start.
#[derive(Clone)]
pub struct Options {
    /// `[[rule]]`s and `[default]`.
    pub rules: String,
    /// Extra lines for `[listen]` (e.g. `trusted_proxies = [...]`).
    pub listen_extra: String,
    /// The whole `[identity]` section; None: builtin with the users file.
    pub identity: Option<String>,
    /// Extra lines for `[upstream]`.
    pub upstream_extra: String,
    /// Overrides the upstream URL (e.g. a closed port); None: the demo app.
    pub upstream_url: Option<String>,
    /// Extra top-level sections (e.g. `[signin]`).
    pub extra: String,
    /// Overrides `listen.public_url` (default `ORIGIN`).
    pub public_url: Option<String>,
    /// Overrides `listen.address` (default `127.0.0.1:0`).
    pub listen_address: Option<String>,
    /// The `[store]` section's lines (default: embedded, in the test's directory).
    pub store: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rules: DEMO_RULES.to_string(),
            listen_extra: String::new(),
            identity: None,
            upstream_extra: String::new(),
            upstream_url: None,
            extra: String::new(),
            public_url: None,
            listen_address: None,
            store: None,
        }
    }
}

/// A gateway and its upstream. Dropping it leaves the gateway task to the runtime's end.
pub struct Harness {
    pub dir: tempfile::TempDir,
    /// Kept so the upstream lives as long as the harness.
    pub _app: DemoApp,
    pub clock: ManualClock,
    pub config_text: String,
    pub store: Option<SharedStore>,
    pub running: Option<Running>,
    pub addr: std::net::SocketAddr,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Harness {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let app = stepgate::demo_app::start(TcpListener::bind("127.0.0.1:0").await.expect("bind the demo app")).await;
        stepgate::authn::password::add_user(&dir.path().join("users.toml"), USER, PASSWORD).expect("add a user");
        let upstream = opts.upstream_url.clone().unwrap_or_else(|| format!("http://{}", app.addr));
        let config_text = config_text(dir.path(), &upstream, &opts);
        let clock = ManualClock::new(UnixTime(T0));
        let mut h = Harness {
            dir,
            _app: app,
            clock,
            config_text,
            store: None,
            running: None,
            addr: "127.0.0.1:0".parse().expect("an address"),
        };
        h.boot().await;
        h
    }

    fn store_path(&self) -> PathBuf {
        self.dir.path().join("stepgate.db")
    }

    async fn boot(&mut self) {
        let config = stepgate::config::parse(&self.config_text, self.dir.path(), &Overrides::default())
            .unwrap_or_else(|e| panic!("the test config is refused: {e}\n{}", self.config_text));
        // Opened here, without the sweeper, so a restart can reopen the same file.
        let store: SharedStore = match &config.store {
            stepgate::store::config::StoreConfig::Embedded { .. } => {
                Arc::new(EmbeddedStore::open(&self.store_path()).expect("open the store"))
            }
            _ => stepgate::server::open_store(&config, &(Arc::new(self.clock.clone()) as stepgate::clock::SharedClock))
                .expect("open the store"),
        };
        let running = stepgate::server::start(config, store.clone(), Arc::new(self.clock.clone()))
            .await
            .expect("the gateway starts");
        self.addr = running.addr;
        self.store = Some(store);
        self.running = Some(running);
    }

    /// Graceful shutdown; every handle on the store is dropped.
    pub async fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            tokio::time::timeout(PATIENCE, running.shutdown()).await.expect("shutdown finishes");
        }
        self.store = None;
    }

    /// Shuts down and starts a new gateway (new port) on the same store file and config.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        self.boot().await;
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// A second gateway instance on the same config (and clock) and a port of its own: with a
    /// Redis store, one more instance sharing it.
    pub async fn another_instance(&self) -> Running {
        let mut config = stepgate::config::parse(&self.config_text, self.dir.path(), &Overrides::default())
            .expect("the test config");
        config.listen = "127.0.0.1:0".parse().expect("an address");
        let clock: stepgate::clock::SharedClock = Arc::new(self.clock.clone());
        let store = stepgate::server::open_store(&config, &clock).expect("open the store");
        stepgate::server::start(config, store, clock).await.expect("the second instance starts")
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    pub fn now(&self) -> u64 {
        use stepgate::clock::Clock;
        self.clock.now().0
    }
}

pub fn config_text(dir: &Path, upstream: &str, opts: &Options) -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let identity = opts.identity.clone().unwrap_or_else(|| {
        format!("[identity]\nsource = \"builtin\"\nusers_file = \"{}\"\n", dir.join("users.toml").display())
    });
    format!(
        r#"[listen]
address = "{listen_address}"
public_url = "{public_url}"
{listen_extra}

[upstream]
url = "{upstream}"
{upstream_extra}

[store]
{store}

{identity}

[sessions]
secret_key = "{key}"

{extra}

{rules}
"#,
        listen_extra = opts.listen_extra,
        upstream_extra = opts.upstream_extra,
        store = opts
            .store
            .clone()
            .unwrap_or_else(|| format!("kind = \"embedded\"\npath = \"{}\"", dir.join("stepgate.db").display())),
        key = hex::encode(key),
        extra = opts.extra,
        public_url = opts.public_url.as_deref().unwrap_or(ORIGIN),
        listen_address = opts.listen_address.as_deref().unwrap_or("127.0.0.1:0"),
        rules = opts.rules,
    )
}
