//! `stepgate user ...` (the real binary) against a running gateway, through its admin socket,
//! and without one, on the embedded store; and on Redis, shared by two instances.

use crate::redis::support::{gateway, write_config, RedisServer, PASSWORD as R_PASSWORD, USER as R_USER};
use crate::support::{flows, Client, Harness, Options, PASSWORD, USER};
use http::StatusCode;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `signin.max_failures_per_user` by default.
const MAX_FAILURES: u64 = 10;

/// Runs the binary with `--config config` and `args`, `stdin` piped in; (success, stdout, stderr).
/// On the blocking pool: the gateway under test answers on this test's runtime meanwhile.
async fn stepgate(config: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let (config, args, stdin) =
        (config.to_path_buf(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), stdin.to_string());
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .arg("--config")
            .arg(&config)
            .args(&args)
            .env("STEPGATE_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the stepgate binary");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    })
    .await
    .unwrap()
}

/// The harness's config written to a file (for the CLI), and the admin socket started.
fn serve_admin(h: &Harness) -> (PathBuf, stepgate::admin::socket::AdminSocket) {
    let path = h.dir.path().join("config.toml");
    std::fs::write(&path, &h.config_text).unwrap();
    let state = h.running.as_ref().unwrap().state.clone();
    (path, stepgate::server::start_admin(vec![state]).expect("the admin socket starts"))
}

/// Asserts that `c`'s session is gone: the next page asks it to sign in.
async fn sent_to_sign_in(c: &mut Client, path: &str) {
    let r = c.browse(path).await;
    assert!(r.status.is_redirection(), "{} {}", r.status, r.body);
    assert!(r.location().starts_with("/.stepgate/login"), "{}", r.location());
}

#[tokio::test]
async fn on_a_running_gateway_reset_factors_ends_sessions_and_the_challenge_offers_no_totp() {
    let h = Harness::start().await;
    let (config, socket) = serve_admin(&h);
    let mut c = flows::signed_in(&h).await;
    flows::enroll_totp(&h, &mut c).await;
    h.advance(std::time::Duration::from_secs(6 * 60)); // past the rule's max_age: a challenge again
    let page = c.browse("/.stepgate/challenge?return=%2Ftransfer").await;
    assert!(
        page.body.contains(r#"action="/.stepgate/challenge/totp""#),
        "{} {:?} {}",
        page.status,
        page.header("location"),
        page.body
    );
    let (ok, out, _) = stepgate(&config, &["user", "list"], "").await;
    assert!(ok && out.lines().any(|l| l.starts_with(USER) && l.contains("yes")), "{out}");

    let (ok, out, err) = stepgate(&config, &["user", "reset-factors", USER], "").await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 session(s) ended"), "{out}");
    sent_to_sign_in(&mut c, "/echo").await;
    c.sign_in().await;
    let page = c.browse("/.stepgate/challenge?return=%2Ftransfer").await;
    assert!(!page.body.contains("/.stepgate/challenge/totp"), "TOTP is gone: {}", page.body);
    assert!(page.body.contains("You have no second factor yet"), "{}", page.body);
    let (_, out, _) = stepgate(&config, &["user", "list"], "").await;
    assert!(out.lines().any(|l| l.starts_with(USER) && l.contains(" no ")), "{out}");
    drop(socket);
    assert!(!h.dir.path().join("stepgate.db.sock").exists(), "the socket goes with the gateway");
}

#[tokio::test]
async fn on_a_running_gateway_added_users_sign_in_at_once_unlock_clears_and_remove_ends_sessions() {
    let h = Harness::with(Options {
        extra: "[signin]\nmax_failures_per_user = 2\nwindow = \"15m\"\n".into(),
        ..Options::default()
    })
    .await;
    let (config, _socket) = serve_admin(&h);
    // A user added while the gateway runs can sign in at once.
    let (ok, out, err) = stepgate(&config, &["user", "add", "carol"], "carol-password\n").await;
    assert!(ok && out.contains("they can sign in now"), "{out}{err}");
    let mut carol = h.client();
    let r = carol.sign_in_returning("carol", "carol-password", "/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // Locked out, then unlocked: the right password works again.
    let mut c = h.client();
    for _ in 0..2 {
        assert_eq!(c.sign_in_returning(USER, "wrong password", "/").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(c.sign_in_returning(USER, PASSWORD, "/").await.status, StatusCode::TOO_MANY_REQUESTS);
    let (ok, out, err) = stepgate(&config, &["user", "unlock", USER], "").await;
    assert!(ok && out.contains("lockouts of 'alice' cleared"), "{out}{err}");
    assert_eq!(c.sign_in_returning(USER, PASSWORD, "/").await.status, StatusCode::SEE_OTHER);

    // Removed: the session ends and the password no longer works.
    let (ok, out, err) = stepgate(&config, &["user", "remove", "carol"], "").await;
    assert!(ok && out.contains("1 session(s) ended"), "{out}{err}");
    sent_to_sign_in(&mut carol, "/echo").await;
    let r = carol.sign_in_returning("carol", "carol-password", "/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let (ok, _, err) = stepgate(&config, &["user", "remove", "carol"], "").await;
    assert!(!ok && err.contains("there is no user 'carol'"), "{err}");
}

#[tokio::test]
async fn without_a_gateway_the_cli_works_on_the_embedded_store_itself() {
    let mut h = Harness::start().await;
    let mut c = flows::signed_in(&h).await;
    flows::enroll_totp(&h, &mut c).await;
    let config = h.dir.path().join("config.toml");
    std::fs::write(&config, &h.config_text).unwrap();
    assert_eq!(c.get("/echo").await.status, StatusCode::OK, "signed in before");
    h.shutdown().await;
    let (ok, out, err) = stepgate(&config, &["user", "reset-factors", USER], "").await;
    assert!(
        ok && out.contains("TOTP, passkeys and recovery codes") && out.contains("1 session(s) ended"),
        "{out}{err}"
    );
    let (ok, out, _) = stepgate(&config, &["user", "list"], "").await;
    assert!(ok && out.lines().any(|l| l.starts_with(USER) && l.contains(" no ")), "{out}");
    h.restart().await;
    let mut c = c.to(h.addr);
    sent_to_sign_in(&mut c, "/echo").await;
}

#[tokio::test]
async fn on_redis_the_cli_ends_sessions_on_every_instance_and_clears_lockouts() {
    let redis = RedisServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    let app = stepgate::demo_app::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let config = write_config(dir.path(), &redis.url(), app.addr);
    let (a, b) = (gateway(&config).await, gateway(&config).await);
    // Signed in on A, its session read (and cached) on B too.
    let mut c = Client::new(a.addr);
    let r = c.sign_in_returning(R_USER, R_PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut on_b = c.to(b.addr);
    assert_eq!(on_b.get("/echo").await.status, StatusCode::OK);
    // No admin socket here: the CLI goes to Redis itself.
    let (ok, out, err) = stepgate(&config, &["user", "reset-factors", R_USER], "").await;
    assert!(ok && out.contains("1 session(s) ended"), "{out}{err}");
    let gone = crate::redis::support::within(std::time::Duration::from_secs(5), || {
        let mut b = on_b.clone();
        async move { b.get("/echo").await.status == StatusCode::UNAUTHORIZED }
    })
    .await;
    assert!(gone.is_some(), "B refuses the ended session");
    sent_to_sign_in(&mut c, "/echo").await;

    // Lockouts live in Redis: cleared for every instance.
    let mut d = Client::new(a.addr);
    for _ in 0..MAX_FAILURES {
        d.sign_in_returning(R_USER, "wrong password", "/").await;
    }
    assert_eq!(d.sign_in_returning(R_USER, R_PASSWORD, "/").await.status, StatusCode::TOO_MANY_REQUESTS);
    let (ok, out, err) = stepgate(&config, &["user", "unlock", R_USER], "").await;
    assert!(ok, "{out}{err}");
    let mut e = Client::new(b.addr);
    assert_eq!(e.sign_in_returning(R_USER, R_PASSWORD, "/").await.status, StatusCode::SEE_OTHER);
    a.shutdown().await;
    b.shutdown().await;
}

/// `stepgate run` as operators start it (two serving threads): a user added while it runs signs
/// in at once, `reset-factors` ends the session, and SIGTERM removes the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_real_running_binary_add_sign_in_reset_and_the_socket_goes_on_sigterm() {
    let app = stepgate::demo_app::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let opts = Options {
        listen_address: Some(format!("127.0.0.1:{port}")),
        listen_extra: "workers = 2".into(),
        ..Options::default()
    };
    let config = dir.path().join("config.toml");
    std::fs::write(&config, crate::support::config_text(dir.path(), &format!("http://{}", app.addr), &opts)).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("STEPGATE_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let socket = dir.path().join("stepgate.db.sock");
    let up = crate::redis::support::within(std::time::Duration::from_secs(20), || {
        let s = socket.clone();
        async move { s.exists() }
    })
    .await;
    assert!(up.is_some(), "the admin socket appears");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let (ok, out, err) = stepgate(&config, &["user", "add", "erin"], "erin-password\n").await;
    assert!(ok && out.contains("they can sign in now"), "{out}{err}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::new(addr);
    let r = c.sign_in_returning("erin", "erin-password", "/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // Served by either thread, on new connections: both know the session, then neither.
    for _ in 0..4 {
        assert_eq!(c.clone().to(addr).get("/echo").await.status, StatusCode::OK);
    }
    let (ok, out, err) = stepgate(&config, &["user", "reset-factors", "erin"], "").await;
    assert!(ok && out.contains("1 session(s) ended"), "{out}{err}");
    for _ in 0..4 {
        sent_to_sign_in(&mut c.clone().to(addr), "/echo").await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(40), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket is removed on shutdown");
    // With no gateway, the command works on the store file itself.
    let (ok, out, err) = stepgate(&config, &["user", "list"], "").await;
    assert!(ok && out.contains("erin"), "{out}{err}");
}
