//! Listeners, connection serving (HTTP/1.1 and h2c, with upgrades), graceful shutdown, reload.

use crate::clock::SharedClock;
use crate::config::{self, Config, Overrides};
use crate::metrics::labels::ReloadResult;
use crate::metrics::listener::MetricsServer;
use crate::metrics::{Metrics, SharedMetrics};
use crate::pipeline::{Conn, TlsFacts};
use crate::state::{AppState, Live, SharedState};
use crate::store::config::StoreConfig;
use crate::store::embedded::EmbeddedStore;
use crate::store::redis::RedisStore;
use crate::store::SharedStore;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls;

/// How often the embedded store sweeps expired records.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_FOR: Duration = Duration::from_secs(30);

/// Opens the configured store. Call it inside a tokio runtime (the embedded store's sweeper and
/// the Redis store's invalidation subscriber are spawned on it).
pub fn open_store(cfg: &Config, clock: &SharedClock) -> Result<SharedStore, String> {
    match &cfg.store {
        StoreConfig::Embedded { path } => {
            let store = Arc::new(EmbeddedStore::open(path).map_err(|e| e.to_string())?);
            if tokio::runtime::Handle::try_current().is_ok() {
                store.clone().spawn_sweeper(clock.clone(), SWEEP_EVERY);
            }
            Ok(store)
        }
        // Redis expires records by itself: no sweeper. Connects lazily, so the gateway starts
        // (and serves public routes) while Redis is down.
        StoreConfig::Redis(redis) => Ok(Arc::new(RedisStore::open(redis, clock.clone()).map_err(|e| e.to_string())?)),
    }
}

/// A running gateway, for `main` and for tests.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served, when this gateway started the `[metrics]` listener.
    pub metrics_addr: Option<SocketAddr>,
    pub state: SharedState,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
    metrics_server: Option<MetricsServer>,
}

impl Running {
    /// Stops accepting (the metrics listener too), lets in-flight requests finish, and waits.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
        if let Some(m) = self.metrics_server {
            m.shutdown().await;
        }
    }
}

/// Binds the listener and serves until `shutdown()`.
pub async fn start(config: Config, store: SharedStore, clock: SharedClock) -> Result<Running, String> {
    let listener =
        TcpListener::bind(config.listen).await.map_err(|e| format!("listen.address {}: {e}", config.listen))?;
    start_on(listener, config, store, clock).await
}

/// Binds `n` listeners on `addr` with SO_REUSEPORT, one per serving thread, so that each
/// accepts on its own. An address that another socket already holds is refused first:
/// SO_REUSEPORT alone would let a second gateway on the same machine (a stale one, say, with an
/// older policy) silently share the port and take part of the traffic. With port 0 every
/// listener shares the port the first one got.
pub fn reuseport_listeners(addr: SocketAddr, n: usize) -> Result<Vec<std::net::TcpListener>, String> {
    let failed = |e: std::io::Error| format!("listen.address {addr}: {e}");
    // Without SO_REUSEPORT this bind fails while anything else listens there.
    drop(std::net::TcpListener::bind(addr).map_err(failed)?);
    let mut listeners = Vec::with_capacity(n);
    let mut bound = addr;
    for _ in 0..n {
        let socket =
            socket2::Socket::new(socket2::Domain::for_address(bound), socket2::Type::STREAM, None).map_err(failed)?;
        socket.set_reuse_address(true).map_err(failed)?;
        #[cfg(unix)]
        socket.set_reuse_port(true).map_err(failed)?;
        socket.set_nonblocking(true).map_err(failed)?;
        socket.bind(&bound.into()).map_err(failed)?;
        socket.listen(1024).map_err(failed)?;
        let listener = std::net::TcpListener::from(socket);
        bound = listener.local_addr().map_err(failed)?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves on an already bound listener until `shutdown()`, with metrics of its own and, when
/// `[metrics]` is set, the metrics listener.
pub async fn start_on(
    listener: TcpListener,
    config: Config,
    store: SharedStore,
    clock: SharedClock,
) -> Result<Running, String> {
    let metrics = Arc::new(Metrics::new());
    let metrics_server = start_metrics(&config, &metrics).await?;
    let mut running = start_worker(listener, config, store, clock, metrics).await?;
    running.metrics_addr = metrics_server.as_ref().map(|m| m.addr);
    running.metrics_server = metrics_server;
    Ok(running)
}

/// The `[metrics]` listener serving `metrics`, if the config asks for one.
pub async fn start_metrics(config: &Config, metrics: &SharedMetrics) -> Result<Option<MetricsServer>, String> {
    match config.metrics {
        Some(addr) => Ok(Some(crate::metrics::listener::start(addr, metrics.clone(), config.header_timeout).await?)),
        None => Ok(None),
    }
}

/// `start_on` for one of several serving threads that record into the same `metrics`; starts
/// no metrics listener (the caller starts one, with `start_metrics`).
pub async fn start_worker(
    listener: TcpListener,
    config: Config,
    store: SharedStore,
    clock: SharedClock,
    metrics: SharedMetrics,
) -> Result<Running, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let live = Live::new(config)?;
    metrics.config_loaded(clock.now());
    let state = Arc::new(AppState::new(live, store, clock, metrics));
    let (stop, stop_rx) = watch::channel(false);
    let done = tokio::spawn(serve(listener, state.clone(), stop_rx));
    Ok(Running { addr, metrics_addr: None, state, stop, done, metrics_server: None })
}

async fn serve(listener: TcpListener, state: SharedState, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Slow-header (slowloris) and idle keep-alive connections are closed; hyper needs a timer
    // for that.
    // Read once, like the listener: a reload that changes it says it needs a restart
    // (`restart_needed`), so the TLS handshake below keeps the same value as hyper's timer.
    let header_timeout = state.live().config.header_timeout;
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let open = state.metrics.connection_opened();
                let live = state.live();
                let tls = live.config.tls.as_ref().map(|t| (t.acceptor(), header_timeout));
                let (builder, watcher, state) = (builder.clone(), graceful.watcher(), state.clone());
                tokio::spawn(async move {
                    let _open = open;
                    let Some((acceptor, handshake_for)) = tls else {
                        let conn = Arc::new(Conn::plain(peer));
                        return serve_connection(&builder, watcher, stream, state, conn).await;
                    };
                    // TLS: the handshake runs in the connection's own task, within the header timeout.
                    match tokio::time::timeout(handshake_for, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = Arc::new(tls_conn(peer, stream.get_ref().1));
                            serve_connection(&builder, watcher, stream, state, conn).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_FOR, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {DRAIN_FOR:?}; closing them");
    }
}

/// The connection facts a TLS handshake settled, read once for all its requests.
fn tls_conn(peer: SocketAddr, tls: &rustls::ServerConnection) -> Conn {
    let facts = TlsFacts {
        server_name: tls.server_name().map(str::to_string),
        alpn: tls.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
    };
    Conn { peer, tls: Some(facts) }
}

/// Serves one accepted connection (plain, or after the TLS handshake) until it ends.
async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    io: I,
    state: SharedState,
    conn: Arc<Conn>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let (state, conn) = (state.clone(), conn.clone());
        async move { Ok::<_, std::convert::Infallible>(crate::gateway::handle(state, req, conn).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Serves the admin socket (`[admin] socket`) for the gateway whose serving threads have
/// `states`: `stepgate user ...` runs its operations here, on this gateway's store, and a
/// change to the users file counts at once on every thread. The socket goes with the handle.
pub fn start_admin(states: Vec<SharedState>) -> Result<crate::admin::socket::AdminSocket, String> {
    let first = states.first().ok_or("no serving thread")?.clone();
    let path = first.live().config.admin_socket.clone();
    let states = Arc::new(states);
    let handle = move |request: crate::admin::Request| {
        let (first, states) = (first.clone(), states.clone());
        async move {
            let live = first.live();
            let users_file = match &live.config.identity {
                config::Identity::Builtin { users_file } => Some(users_file.as_path()),
                config::Identity::Header { .. } => None,
            };
            let refresh = || {
                for s in states.iter() {
                    if let Some(users) = &s.live().users {
                        users.refresh();
                    }
                }
            };
            let target = crate::admin::Target {
                store: &*first.store,
                users_file,
                now: first.clock.now(),
                users_changed: &refresh,
            };
            crate::admin::perform(&target, &request).await
        }
    };
    let socket = crate::admin::socket::listen(&path, handle).map_err(|e| e.to_string())?;
    tracing::info!(socket = %path.display(), "admin socket listening (mode 0600)");
    Ok(socket)
}

/// Re-reads the config file (and users file) on SIGHUP. A bad file is logged with its key and
/// reason, and the gateway keeps running on the last good config.
pub fn reload(state: &AppState, path: &Path, overrides: &Overrides) {
    reload_all(&[state], path, overrides)
}

/// `reload` for every serving thread at once: all of them take the new config, or none does.
pub fn reload_all(states: &[impl std::ops::Deref<Target = AppState>], path: &Path, overrides: &Overrides) {
    let built = config::load(path, overrides).map_err(|e| e.to_string()).and_then(|cfg| {
        if let Some(old) = states.first().map(|s| s.live()) {
            let keys = restart_needed(&old.config, &cfg);
            if !keys.is_empty() {
                tracing::warn!(
                    keys = %keys.join(", "),
                    "config changed keys that need a restart: they keep their old values until then; the rest applies now"
                );
            }
        }
        states.iter().map(|_| Live::new(cfg.clone())).collect::<Result<Vec<Live>, String>>()
    });
    let record = |result| {
        if let Some(s) = states.first() {
            s.metrics.config_reload(result, s.clock.now());
        }
    };
    match built {
        Ok(lives) => {
            for (state, live) in states.iter().zip(lives) {
                state.replace(live);
            }
            record(ReloadResult::Success);
            tracing::info!(config = %path.display(), "config reloaded");
        }
        Err(e) => {
            record(ReloadResult::Error);
            tracing::error!(config = %path.display(), error = %e, "config reload refused; keeping the last good config")
        }
    }
}

/// The keys that differ between `old` and `new` but are only read at start-up (the listeners
/// and serving threads, hyper's header timer, the store, which is opened once): a reload cannot
/// apply them. Everything else (rules, risk, identity, sessions, upstream, TLS files, WebAuthn)
/// is read afresh per request and applies at once.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    use crate::store::config::RedisTarget;
    let mut keys = Vec::new();
    let mut changed = |key: &'static str, differs: bool| {
        if differs {
            keys.push(key);
        }
    };
    changed("listen.address", old.listen != new.listen);
    changed("listen.workers", old.workers != new.workers);
    changed("listen.header_timeout", old.header_timeout != new.header_timeout);
    changed("metrics.address", old.metrics != new.metrics);
    // Compared field by field, never printed: a Redis URL may carry a password.
    match (&old.store, &new.store) {
        (StoreConfig::Embedded { path: a }, StoreConfig::Embedded { path: b }) => changed("store.path", a != b),
        (StoreConfig::Redis(a), StoreConfig::Redis(b)) => {
            match (&a.target, &b.target) {
                (
                    RedisTarget::Sentinel { sentinels: sa, master: ma, master_url: ua, tls: ta },
                    RedisTarget::Sentinel { sentinels: sb, master: mb, master_url: ub, tls: tb },
                ) => {
                    changed("store.url", (sa, ua, ta) != (sb, ub, tb));
                    changed("store.sentinel_master", ma != mb);
                }
                (ta, tb) => changed("store.url", ta != tb),
            }
            changed("store.prefix", a.prefix != b.prefix);
            changed("store.timeout", a.timeout != b.timeout);
        }
        _ => changed("store.kind", true),
    }
    // The default socket sits next to the store: named only when it changed on its own.
    if !keys.iter().any(|k| k.starts_with("store.")) && old.admin_socket != new.admin_socket {
        keys.push("admin.socket");
    }
    keys
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::restart_needed;
    use crate::config::{parse, Config, Overrides};

    fn config(listen: &str, store: &str, rule: &str) -> Config {
        let address = if listen.contains("address") { "" } else { "address = \"127.0.0.1:8080\"" };
        let text = format!(
            "[listen]\n{address}\npublic_url = \"https://app.example\"\n{listen}\n\
             [upstream]\nurl = \"http://127.0.0.1:3000\"\n[sessions]\nsecret_key = \"{}\"\n{store}\n\
             [default]\nrequire = \"{rule}\"\n",
            "ab".repeat(32)
        );
        parse(&text, std::path::Path::new("/srv"), &Overrides::default()).unwrap()
    }

    #[test]
    fn names_each_changed_key_that_only_start_up_reads() {
        let redis = |url: &str, extra: &str| format!("[store]\nkind = \"redis\"\nurl = \"{url}\"\n{extra}");
        let base = config("workers = 2", "", "aal1");
        let cases: [(Config, &[&str]); 10] = [
            // Rules, and everything else read per request, apply at once.
            (config("workers = 2", "", "aal2"), &[]),
            (config("workers = 2\naddress = \"127.0.0.1:9090\"", "", "aal1"), &["listen.address"]),
            (config("workers = 3", "", "aal2"), &["listen.workers"]),
            (config("workers = 2\nheader_timeout = \"10s\"", "", "aal1"), &["listen.header_timeout"]),
            (config("workers = 2", "[store]\npath = \"other.db\"", "aal1"), &["store.path"]),
            (config("workers = 2", &redis("redis://127.0.0.1:6379/0", ""), "aal1"), &["store.kind"]),
            (config("workers = 4\nheader_timeout = \"5s\"", "", "aal1"), &["listen.workers", "listen.header_timeout"]),
            (config("workers = 2", "", "none"), &[]),
            (config("workers = 2", "[metrics]\naddress = \"127.0.0.1:9108\"", "aal1"), &["metrics.address"]),
            (base.clone(), &[]),
        ];
        for (new, want) in cases {
            assert_eq!(restart_needed(&base, &new), want);
        }
        let moved = config("workers = 2", "[admin]\nsocket = \"/run/stepgate.sock\"", "aal1");
        assert_eq!(restart_needed(&base, &moved), ["admin.socket"]);
        // A changed Redis URL is seen even though its Debug form hides it (a password).
        let r = |url: &str, extra: &str| config("workers = 2", &redis(url, extra), "aal1");
        let one = r("redis://:pw@a:6379/0", "");
        assert_eq!(restart_needed(&one, &r("redis://:pw@b:6379/0", "")), ["store.url"]);
        assert_eq!(restart_needed(&one, &r("redis://:other@a:6379/0", "")), ["store.url"]);
        assert_eq!(
            restart_needed(&one, &r("redis://:pw@a:6379/0", "prefix = \"x\"\ntimeout = \"2s\"")),
            ["store.prefix", "store.timeout"]
        );
        let sentinel = |m: &str| r("redis+sentinel://s1:26379,s2:26379/0", &format!("sentinel_master = \"{m}\""));
        assert_eq!(restart_needed(&sentinel("a"), &sentinel("b")), ["store.sentinel_master"]);
        assert!(restart_needed(&sentinel("a"), &sentinel("a")).is_empty());
    }
}
