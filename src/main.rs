//! The `stepgate` command: run the gateway, check a config, manage users, run the demo.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use stepgate::clock::{SharedClock, SystemClock};
use stepgate::config::{self, Overrides};
use stepgate::server;

/// mimalloc: measurably faster than the system allocator on the per-request path (see bench/).
mod user_cmd;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "stepgate", version, about = "A step-up authentication gateway")]
struct Cli {
    /// The config file.
    #[arg(long, global = true, default_value = "config.toml")]
    config: PathBuf,
    /// Overrides listen.address.
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Overrides upstream.url.
    #[arg(long, global = true)]
    upstream: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate a config and print its route table.
    CheckConfig { path: Option<PathBuf> },
    /// Manage users: add, list, remove, reset-factors, unlock (on a running gateway too).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Dry-run the policy for one request: the matched rule, each risk signal's points and
    /// reason, and the decision. Starts no server.
    Explain {
        /// The HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// The URL (or path) requested, e.g. https://app.example/transfer.
        #[arg(long)]
        url: String,
        /// Signed in as this user (with a password, just now); default: nobody signed in.
        #[arg(long)]
        user: Option<String>,
        /// The signed-in user's groups, comma-separated (what rules' `groups` see).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// The client address (after trusted proxies).
        #[arg(long, default_value = "127.0.0.1")]
        ip: std::net::IpAddr,
        /// When: unix seconds or RFC 3339 (default: now).
        #[arg(long)]
        at: Option<String>,
        /// The device: known, new or other-user.
        #[arg(long, default_value = "known")]
        device: String,
        /// An API request with an access token of these claims (JSON object), taken as
        /// verified; needs `[bearer]`. E.g. '{"sub":"svc","acr":"aal1","scope":"orders:read","exp":9999999999}'.
        #[arg(long)]
        bearer_claims: Option<String>,
        /// A workload request: a client certificate naming this ID (a SPIFFE ID or a subject),
        /// issued at --at.
        #[arg(long)]
        workload: Option<String>,
    },
    /// Run policy test cases (requests and the decisions expected) against --config.
    ///
    /// Each `[[case]]` of the file runs through the gateway's own evaluation, in memory; one
    /// line per case, `ok` or `FAIL`. Exit 0: all pass, 1: a case failed, 2: a broken case
    /// file or config.
    TestPolicy {
        /// The case file, e.g. policy-tests.toml.
        cases: PathBuf,
    },
    /// Run a demo app behind the gateway with a demo policy and user.
    Demo,
    /// Serve only the demo app (the upstream used by `demo`, tests and the bench).
    DemoApp,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add or update a user: the password is asked twice without echo at a terminal, else
    /// read from standard input. A running gateway takes the user at once.
    Add {
        name: String,
        /// The users file (default: identity.users_file of --config).
        #[arg(long)]
        users_file: Option<PathBuf>,
    },
    /// List the users of the users file, with the factors each has enrolled.
    List,
    /// Remove a user from the users file, remove their factors and end their sessions.
    Remove { name: String },
    /// Remove a user's TOTP, passkeys and recovery codes and end their sessions (audited).
    ResetFactors { name: String },
    /// Clear a user's sign-in and step-up lockouts (audited).
    Unlock { name: String },
}

/// `println!` that never panics on a closed pipe (`stepgate check-config x | head -4`): it
/// returns an error instead, which the command passes up with `?`; see [`say`].
macro_rules! out {
    ($($t:tt)*) => { say(format_args!($($t)*), true) };
}

/// `print!`, the same way.
macro_rules! out_raw {
    ($($t:tt)*) => { say(format_args!($($t)*), false) };
}

/// Standard output was closed by its reader (a `head` that has read enough).
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
struct StdoutClosed;

/// Writes to standard output. Rust ignores SIGPIPE, so a write to a pipe whose reader has gone
/// fails with `BrokenPipe` (where `println!` would panic with a backtrace); that comes back as
/// [`StdoutClosed`], which `main` turns into a quiet exit with status 0: the reader stopped
/// listening, the command itself did not fail (`check-config` prints only once the config is
/// valid, so `| head` keeps its verdict). Returning, not exiting here, lets destructors run
/// (the log flush, the demo's temporary folder). Other write errors are reported.
fn say(text: std::fmt::Arguments<'_>, newline: bool) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(text)
        .and_then(|()| if newline { stdout.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow!(e).context("writing to standard output")),
    }
}

/// Ends the command with this exit status, after printing `message` (if any) on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct ExitWith {
    code: u8,
    message: String,
}

/// `eprintln!` that never panics: with standard error closed there is nobody left to tell.
fn say_err(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<StdoutClosed>() => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<ExitWith>() => {
            let exit = e.downcast_ref::<ExitWith>().map_or((1, ""), |x| (x.code, x.message.as_str()));
            if !exit.1.is_empty() {
                say_err(format_args!("stepgate: {}", exit.1));
            }
            std::process::ExitCode::from(exit.0)
        }
        Err(e) => {
            say_err(format_args!("stepgate: {e:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<()> {
    let _log_writer = init_tracing();
    let overrides = Overrides { listen: cli.listen.clone(), upstream: cli.upstream.clone() };
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.config, overrides),
        Command::CheckConfig { path } => check_config(&path.unwrap_or(cli.config), &overrides),
        Command::User { action } => {
            use stepgate::admin::Request;
            let text = match action {
                UserAction::Add { name, users_file } => user_cmd::add(&cli.config, &overrides, &name, users_file)?,
                UserAction::List => user_cmd::run(&cli.config, &overrides, Request::List)?,
                UserAction::Remove { name } => user_cmd::run(&cli.config, &overrides, Request::Remove { user: name })?,
                UserAction::ResetFactors { name } => {
                    user_cmd::run(&cli.config, &overrides, Request::ResetFactors { user: name })?
                }
                UserAction::Unlock { name } => user_cmd::run(&cli.config, &overrides, Request::Unlock { user: name })?,
            };
            out!("{text}")?;
            Ok(())
        }
        Command::Explain { method, url, user, groups, ip, at, device, bearer_claims, workload } => {
            let cfg = config::load(&cli.config, &overrides).map_err(|e| anyhow!("{}: {e}", cli.config.display()))?;
            let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| anyhow!("--method '{method}' is not an HTTP method"))?;
            let at = match at {
                Some(s) => stepgate::explain::parse_time(&s).map_err(|e| anyhow!(e))?,
                None => stepgate::clock::Clock::now(&SystemClock),
            };
            let device = stepgate::explain::parse_device(&device).map_err(|e| anyhow!(e))?;
            let history = match &user {
                Some(u) => runtime()?.block_on(read_history(&cfg, u))?,
                None => Default::default(),
            };
            let bearer_claims = match bearer_claims {
                None => None,
                Some(text) => {
                    if cfg.bearer.is_none() {
                        return Err(anyhow!("--bearer-claims needs a [bearer] section in the config"));
                    }
                    match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(serde_json::Value::Object(m)) => Some(m),
                        _ => {
                            return Err(anyhow!(
                                "--bearer-claims: expected a JSON object such as '{{\"sub\":\"svc\"}}'"
                            ))
                        }
                    }
                }
            };
            if workload.is_some() && cfg.client_ca.is_none() {
                return Err(anyhow!("--workload needs listen.tls_client_ca in the config"));
            }
            if !groups.is_empty() && user.is_none() {
                bail!("--groups needs --user: groups belong to a signed-in user");
            }
            let q = stepgate::explain::Question {
                method,
                url,
                user,
                ip,
                at,
                device,
                proofs: Vec::new(),
                groups,
                bearer_claims,
                workload,
            };
            let text = runtime()?.block_on(stepgate::explain::explain(&cfg, &q, &history)).map_err(|e| anyhow!(e))?;
            out_raw!("{}", text)?;
            Ok(())
        }
        Command::TestPolicy { cases } => test_policy(&cli.config, &overrides, &cases),
        Command::Demo => runtime()?.block_on(demo(cli.listen.unwrap_or_else(|| "127.0.0.1:8080".into()))),
        Command::DemoApp => runtime()?.block_on(demo_app(cli.listen.unwrap_or_else(|| "127.0.0.1:3000".into()))),
    }
}

/// `test-policy`: exit 0 when every case passes, 1 when one fails, 2 when the case file or the
/// config cannot be used.
fn test_policy(config: &std::path::Path, overrides: &Overrides, cases: &std::path::Path) -> Result<()> {
    use stepgate::explain::{cases as case_file, suite};
    let broken = |message: String| anyhow!(ExitWith { code: 2, message });
    let cfg = config::load(config, overrides).map_err(|e| broken(format!("{}: {e}", config.display())))?;
    let text = std::fs::read_to_string(cases).map_err(|e| broken(format!("{}: {e}", cases.display())))?;
    let cases = case_file::parse(&cases.display().to_string(), &text, &cfg).map_err(|e| broken(e.to_string()))?;
    let report = runtime()?.block_on(suite::run(&cfg, &cases)).map_err(broken)?;
    out_raw!("{}", report.text)?;
    if report.failed > 0 {
        return Err(ExitWith { code: 1, message: String::new() }.into());
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// JSON lines on stderr, written by a background thread through a buffer, so a request never
/// waits on the write; nothing is dropped (the queue blocks when full) and the returned guard
/// flushes on exit. Audit records go through the same writer and stay on whatever
/// `STEPGATE_LOG` says, unless it holds the directive `audit=off`; so do access lines, unless
/// `[access_log] enabled = false`.
fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let spec = std::env::var("STEPGATE_LOG").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        say_err(format_args!("stepgate: STEPGATE_LOG={spec:?} is not a log filter ({e}); using \"info\""));
        EnvFilter::new("info")
    });
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    if !spec.split(',').any(|d| d.trim().eq_ignore_ascii_case("audit=off")) {
        let audit_writer = writer.clone();
        stepgate::audit::install(Box::new(move |line| {
            use std::io::Write;
            // The writer only fails once the process is shutting down.
            let _ = audit_writer.clone().write_all(line);
        }));
    }
    // Access lines (one per request) go through the same writer; `[access_log] enabled`
    // switches them, read per request.
    let access_writer = writer.clone();
    stepgate::access_log::install(Box::new(move |line| {
        use std::io::Write;
        let _ = access_writer.clone().write_all(line);
    }));
    tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(writer).init();
    guard
}

/// The user's risk history from the configured store, for `explain`; empty (with a note) when
/// the store cannot be read (an embedded file held by a running gateway, Redis down).
/// Errs only when standard output does.
async fn read_history(cfg: &config::Config, user: &str) -> Result<stepgate::risk::history::RiskHistory> {
    if let stepgate::store::config::StoreConfig::Embedded { path } = &cfg.store {
        if !path.exists() {
            out!("history   none: the store file {} does not exist", path.display())?;
            return Ok(Default::default());
        }
    }
    let clock: SharedClock = Arc::new(SystemClock);
    let read = async {
        let store = server::open_store(cfg, &clock)?;
        store.get_risk_history(user).await.map_err(|e| e.to_string())
    };
    Ok(match tokio::time::timeout(std::time::Duration::from_secs(3), read).await {
        Ok(Ok(h)) => {
            let place = h.last_sighting.as_ref().and_then(|s| s.country.clone()).unwrap_or_else(|| "-".into());
            out!("history   {} known device(s); last seen in {place}; countries {:?}", h.devices.len(), h.countries)?;
            h
        }
        Ok(Err(e)) => {
            out!("history   unavailable ({e}); scored as a user with no history")?;
            Default::default()
        }
        Err(_) => {
            out!("history   unavailable (the store did not answer in 3s); scored as a user with no history")?;
            Default::default()
        }
    })
}

fn check_config(path: &std::path::Path, overrides: &Overrides) -> Result<()> {
    match config::load(path, overrides) {
        Ok(cfg) => {
            out!("{}: ok", path.display())?;
            out!("{}", cfg.routes.describe())?;
            for line in cfg.routes.expiry_warnings(stepgate::clock::Clock::now(&SystemClock)) {
                out!("{line}")?;
            }
            out!("{}", cfg.risk.describe())?;
            match &cfg.tls {
                Some(t) => out!("tls: on ({}, {})", t.cert.display(), t.key.display())?,
                None => out!("tls: off (plain HTTP; terminate TLS in front, or set listen.tls_cert and tls_key)")?,
            }
            match &cfg.client_ca {
                Some(ca) => out!(
                    "client certificates: {} against {} (workload identities; Client-Cert believed from trusted_proxies)",
                    if ca.required { "required" } else { "optional" },
                    ca.path.display()
                )?,
                None => out!("client certificates: off")?,
            }
            match &cfg.bearer {
                Some(b) => out!("bearer tokens: issuer {}, audiences {}", b.issuer, b.audiences.join(", "))?,
                None => out!("bearer tokens: off (Authorization: Bearer is passed to the app unread)")?,
            }
            match &cfg.webauthn {
                Some(w) => out!("webauthn: rp_id {} for origin {} (\"{}\")", w.rp_id, w.origin, w.rp_name)?,
                None => out!("webauthn: off")?,
            }
            match cfg.metrics {
                Some(addr) => out!("metrics: GET http://{addr}/metrics")?,
                None => out!("metrics: off (set [metrics] address to serve /metrics)")?,
            }
            out!("admin socket: {} (for `stepgate user ...` while the gateway runs)", cfg.admin_socket.display())?;
            out!(
                "access log: {}",
                match (cfg.access_log.enabled, cfg.access_log.query) {
                    (false, _) => "off",
                    (true, false) => "on (without query strings)",
                    (true, true) => "on (with query strings)",
                }
            )?;
            Ok(())
        }
        Err(e) => bail!("{}: {e}", path.display()),
    }
}

/// Serves on `listen.workers` threads, each with its own single-threaded runtime, SO_REUSEPORT
/// listener and upstream connection pool: a request never wakes another thread (measured in
/// bench/: markedly faster than one multi-threaded runtime). The main thread opens the store,
/// handles signals (SIGHUP reloads every worker at once) and stops them gracefully.
fn run(path: PathBuf, overrides: Overrides) -> Result<()> {
    let main_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let cfg = config::load(&path, &overrides).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let store = main_rt.block_on(async { server::open_store(&cfg, &clock) }).map_err(|e| anyhow!(e))?;
    // One set of metrics for every serving thread, served by one listener on the main runtime.
    let metrics = Arc::new(stepgate::metrics::Metrics::new());
    let metrics_server = main_rt.block_on(server::start_metrics(&cfg, &metrics)).map_err(|e| anyhow!(e))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listeners = server::reuseport_listeners(cfg.listen, cfg.workers).map_err(|e| anyhow!(e))?;
    let address = listeners[0].local_addr()?;
    let mut threads = Vec::new();
    for (worker, listener) in listeners.into_iter().enumerate() {
        let (cfg, store, clock, metrics, mut stop, ready) =
            (cfg.clone(), store.clone(), clock.clone(), metrics.clone(), stop_rx.clone(), ready_tx.clone());
        let thread = std::thread::Builder::new().name(format!("stepgate-{worker}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let running = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => server::start_worker(listener, cfg, store, clock, metrics).await,
                    Err(e) => Err(format!("listen.address {}: {e}", cfg.listen)),
                };
                match running {
                    Ok(running) => {
                        let _ = ready.send(Ok(running.state.clone()));
                        let _ = stop.changed().await;
                        running.shutdown().await;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            });
        })?;
        threads.push(thread);
    }
    drop(ready_tx);
    let mut states = Vec::new();
    for r in ready_rx.iter().take(cfg.workers) {
        match r {
            Ok(state) => states.push(state),
            Err(e) => {
                let _ = stop_tx.send(true);
                bail!(e);
            }
        }
    }
    let admin = main_rt.block_on(async { server::start_admin(states.clone()) }).map_err(|e| {
        let _ = stop_tx.send(true);
        anyhow!(e)
    })?;
    let metrics_address = metrics_server.as_ref().map(|m| m.addr.to_string()).unwrap_or_else(|| "off".into());
    tracing::info!(%address, workers = cfg.workers, tls = cfg.tls.is_some(), metrics = %metrics_address, "stepgate listening");
    main_rt.block_on(async {
        // The config file is watched beside SIGHUP; the first thread's state keeps the expiry
        // gauge and the daily warning (the metrics are shared by all threads).
        let _watch = stepgate::reload::watch_file(
            states.clone(),
            path.clone(),
            overrides.clone(),
            stepgate::reload::WATCH_EVERY,
        );
        let _expiry = states.first().map(|s| stepgate::reload::watch_expiry(s.clone()));
        #[cfg(unix)]
        {
            let (path, overrides, states) = (path.clone(), overrides.clone(), states.clone());
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                if let Ok(mut hup) = signal(SignalKind::hangup()) {
                    while hup.recv().await.is_some() {
                        server::reload_all(&states, &path, &overrides);
                    }
                }
            });
        }
        server::shutdown_signal().await;
    });
    tracing::info!("shutting down: letting in-flight requests finish");
    let _ = stop_tx.send(true);
    for t in threads {
        let _ = t.join();
    }
    if let Some(m) = metrics_server {
        main_rt.block_on(m.shutdown());
    }
    drop(admin);
    Ok(())
}

async fn demo(listen: String) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = stepgate::demo_app::start(app_listener).await;
    let config =
        stepgate::demo::prepare(dir.path(), &listen, &format!("http://{}", app.addr)).map_err(|e| anyhow!(e))?;
    let cfg = config::load(&config, &Overrides::default()).map_err(|e| anyhow!("{e}"))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.map_err(|e| demo_bind_error(&listen, e))?;
    let store = server::open_store(&cfg, &clock).map_err(|e| anyhow!(e))?;
    let running = server::start_on(listener, cfg, store, clock).await.map_err(|e| anyhow!(e))?;
    let admin = server::start_admin(vec![running.state.clone()]).map_err(|e| anyhow!(e))?;
    let _watch = stepgate::reload::watch_file(
        vec![running.state.clone()],
        config.clone(),
        Overrides::default(),
        stepgate::reload::WATCH_EVERY,
    );
    out!("stepgate demo is running: http://localhost:{}/", running.addr.port())?;
    out!("  sign in as  user: {}  password: {}", stepgate::demo::DEMO_USER, stepgate::demo::DEMO_PASSWORD)?;
    out!("  try /account (sign-in), /transfer (TOTP or passkey step-up), /admin (passkey only)")?;
    if let Some(m) = running.metrics_addr {
        out!("  metrics: http://{m}/metrics")?;
    }
    out!("  config: {}   (deleted on exit; edits apply within 2 s)", config.display())?;
    out!("  manage users while it runs: stepgate --config {} user list", config.display())?;
    out!("  press Ctrl-C to stop")?;
    server::shutdown_signal().await;
    drop(admin);
    running.shutdown().await;
    app.shutdown();
    Ok(())
}

/// Why the demo could not listen, and how to pick another address.
fn demo_bind_error(listen: &str, e: std::io::Error) -> anyhow::Error {
    let port = listen.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(8080);
    let other = format!("127.0.0.1:{}", port.checked_add(1).unwrap_or(8081));
    let why = if e.kind() == std::io::ErrorKind::AddrInUse {
        format!("{listen} is already in use (another program listens there)")
    } else {
        format!("cannot listen on {listen}: {e}")
    };
    anyhow!("{why}; pick another address with --listen, e.g. `stepgate demo --listen {other}`")
}

async fn demo_app(listen: String) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
    let app = stepgate::demo_app::start(listener).await;
    out!("demo app listening on http://{}", app.addr)?;
    server::shutdown_signal().await;
    app.shutdown();
    Ok(())
}
