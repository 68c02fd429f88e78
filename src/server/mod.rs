//! Listeners, connection serving (HTTP/1.1 and h2c, with upgrades), graceful shutdown, reload.

mod connection;
pub use connection::PARK_AFTER;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::listener::MetricsServer;
use crate::metrics::{Metrics, SharedMetrics};
use crate::pipeline::{Conn, TlsFacts};
pub use crate::reload::{reload, reload_all, restart_needed};
use crate::state::{AppState, Live, SharedState};
use crate::store::config::StoreConfig;
use crate::store::embedded::EmbeddedStore;
use crate::store::redis::RedisStore;
use crate::store::SharedStore;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::net::SocketAddr;
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
    /// The expiry watch (`reload::watch_expiry`), when this gateway started one.
    expiry_watch: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting (the metrics listener too), lets in-flight requests finish, and waits.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(w) = &self.expiry_watch {
            w.abort();
        }
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
    running.expiry_watch = Some(crate::reload::watch_expiry(running.state.clone()));
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
    metrics.rule_expiries(&live.config.routes, clock.now());
    let state = Arc::new(AppState::new(live, store, clock, metrics));
    let (stop, stop_rx) = watch::channel(false);
    let done = tokio::spawn(serve(listener, state.clone(), stop_rx));
    Ok(Running { addr, metrics_addr: None, state, stop, done, metrics_server: None, expiry_watch: None })
}

async fn serve(listener: TcpListener, state: SharedState, mut stop: watch::Receiver<bool>) {
    // Read once, like the listener: a reload that changes one of these says it needs a restart
    // (`restart_needed`), so hyper's timers and the connection deadlines keep the same values.
    let (builder, deadlines, max_connections) = {
        let config = &state.live().config;
        let deadlines = connection::Deadlines {
            header_timeout: config.header_timeout,
            idle_timeout: config.limits.idle_timeout,
            drain_for: DRAIN_FOR,
        };
        (Arc::new(builders(config)), deadlines, config.limits.max_connections)
    };
    // Each connection holds a receiver: `drain.closed()` resolves when the last one has ended.
    let (drain, drain_rx) = watch::channel(false);
    let mut refusals = Refusals::default();
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
                let accepted_at = tokio::time::Instant::now();
                // Beyond listen.max_connections: closed at once, before a byte is read or a TLS
                // handshake is made, so the descriptor and memory are given back at once.
                let Some(open) = state.metrics.connection_opened_within(max_connections) else {
                    refusals.refused(max_connections);
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let live = state.live();
                let tls = live.config.tls.as_ref().map(|t| t.acceptor());
                let (builder, drain, state) = (builder.clone(), drain_rx.clone(), state.clone());
                tokio::spawn(async move {
                    let _open = open;
                    let Some(acceptor) = tls else {
                        let conn = Arc::new(Conn::plain(peer));
                        return connection::serve(&builder, stream, state, conn, accepted_at, deadlines, drain).await;
                    };
                    // Boxed: a TLS handshake's and stream's state is large, and the task of every
                    // connection (plain ones too, idle ones too) would otherwise hold room for it.
                    let served = async move {
                        // The handshake runs in the connection's own task, within the header timeout.
                        match tokio::time::timeout(deadlines.header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                let conn = Arc::new(tls_conn(peer, stream.get_ref().1));
                                connection::serve(&builder, stream, state, conn, accepted_at, deadlines, drain).await
                            }
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    };
                    Box::pin(served).await
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = drain.send(true);
    drop(drain_rx);
    if tokio::time::timeout(DRAIN_FOR, drain.closed()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {DRAIN_FOR:?}; closing them");
    }
}

/// hyper's connection builders with the listener's limits: HTTP/1.1 header timeout and header
/// byte cap (hyper answers 431 beyond it), HTTP/2 streams, header list size and keep-alive pings.
fn builders(config: &Config) -> connection::Builders {
    let limits = &config.limits;
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new()).header_read_timeout(config.header_timeout).max_buf_size(limits.max_header_bytes);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.h2_keepalive_interval)
        .keep_alive_timeout(config.header_timeout);
    connection::Builders { h1, h2 }
}

/// Connections closed at accept because `listen.max_connections` were open: counted in
/// `stepgate_connections_refused_total`, and logged at most once a second.
#[derive(Default)]
struct Refusals {
    last_logged: Option<tokio::time::Instant>,
    since_logged: u64,
}

impl Refusals {
    fn refused(&mut self, max: usize) {
        self.since_logged += 1;
        let now = tokio::time::Instant::now();
        if self.last_logged.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            tracing::warn!(
                max_connections = max,
                refused = self.since_logged,
                "listen.max_connections reached: new connections are closed at accept"
            );
            self.last_logged = Some(now);
            self.since_logged = 0;
        }
    }
}

/// The connection facts a TLS handshake settled, read once for all its requests.
fn tls_conn(peer: SocketAddr, tls: &rustls::ServerConnection) -> Conn {
    let facts = TlsFacts {
        server_name: tls.server_name().map(str::to_string),
        alpn: tls.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
        client_cert: tls.peer_certificates().and_then(|c| c.first()).map(|c| Arc::from(c.as_ref())),
    };
    Conn { peer, tls: Some(facts) }
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
                crate::config::Identity::Builtin { users_file } => Some(users_file.as_path()),
                crate::config::Identity::Header { .. } | crate::config::Identity::Oidc(_) => None,
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
