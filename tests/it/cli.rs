//! The `stepgate` binary as operators run it: `check-config`, `explain`, and `demo` on a taken port.

use std::path::Path;
use std::process::Command;

fn stepgate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stepgate")).args(args).output().expect("run the stepgate binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn geoip(file: &str) -> String {
    format!("{}/tests/data/geoip/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn write_config(dir: &Path, risk: &str) -> String {
    let text = format!(
        r#"[listen]
address = "127.0.0.1:0"
public_url = "https://app.example"
[upstream]
url = "http://127.0.0.1:3000"
[sessions]
secret_key = "{key}"
{risk}
[[rule]]
name = "transfer"
path = "/transfer"
require = "aal2"
max_age = "5m"
hours = "08:00-18:00"
days = ["mon", "tue", "wed", "thu", "fri"]
time_zone = "Europe/London"
[default]
require = "aal1"
"#,
        key = "ab".repeat(32)
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn explain_prints_the_rule_each_signal_and_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let risk = format!("[risk]\n[risk.device]\n[risk.location]\ncity_db = \"{}\"\n", geoip("GeoLite2-City-Test.mmdb"));
    let cfg = write_config(dir.path(), &risk);
    // Saturday 2026-11-28 20:00 UTC, from Milton, on a new device.
    let (ok, out, err) = stepgate(&[
        "--config",
        &cfg,
        "explain",
        "--method",
        "POST",
        "--url",
        "https://app.example/transfer",
        "--user",
        "alice",
        "--ip",
        "216.160.83.56",
        "--at",
        "2026-11-28T20:00:00Z",
        "--device",
        "new",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("rule      transfer (require aal2 max_age 5m)"), "{out}");
    assert!(out.contains("country US city Milton"), "{out}");
    assert!(out.contains("+30  TIME_OUTSIDE_HOURS"), "{out}");
    assert!(out.contains("+30  DEVICE_UNKNOWN"), "{out}");
    assert!(out.contains("score     60 / 100 (step_up_at 30, deny_at 80)"), "{out}");
    assert!(out.contains("decision  challenge: step up to require aal3 max_age 5m"), "{out}");

    // The same request on a weekday afternoon from a known device: the rule as written.
    let (ok, out, _) = stepgate(&[
        "--config",
        &cfg,
        "explain",
        "--url",
        "/transfer",
        "--user",
        "alice",
        "--ip",
        "216.160.83.56",
        "--at",
        "1795442400",
    ]);
    assert!(ok);
    assert!(out.contains("signals   none") && out.contains("score     0 / 100"), "{out}");
    assert!(out.contains("decision  challenge: step up to require aal2 max_age 5m"), "{out}");

    let (ok, out, _) = stepgate(&["--config", &cfg, "explain", "--url", "/account"]);
    assert!(ok);
    assert!(out.contains("decision  sign in first"), "{out}");
    let (ok, _, err) = stepgate(&["--config", &cfg, "explain", "--url", "/x", "--at", "yesterday"]);
    assert!(!ok && err.contains("--at 'yesterday'"), "{err}");
}

#[test]
fn a_missing_geoip_database_warns_and_a_corrupt_one_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("GeoLite2-City.mmdb");
    let cfg = write_config(dir.path(), &format!("[risk]\n[risk.location]\ncity_db = \"{}\"\n", missing.display()));
    let (ok, out, err) = stepgate(&["check-config", &cfg]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("location (networks only: no GeoIP database loaded)"), "{out}");
    assert!(out.contains("webauthn: rp_id app.example for origin https://app.example"), "{out}");
    assert!(err.contains("GeoIP database not found") && err.contains("risk.location.city_db"), "{err}");

    std::fs::write(&missing, b"not a database at all").unwrap();
    let (ok, out, err) = stepgate(&["check-config", &cfg]);
    assert!(!ok, "{out}");
    assert!(err.contains("risk.location.city_db") && err.contains("not a readable MaxMind DB"), "{err}");
}

#[test]
fn risk_settings_are_checked_strictly() {
    let dir = tempfile::tempdir().unwrap();
    for (risk, key) in [
        ("[risk]\nstep_up_at = 90\ndeny_at = 80\n", "risk.deny_at"),
        ("[risk]\ndeny_at = 101\n", "risk.deny_at"),
        ("[risk]\n[risk.device]\nunknown = 500\n", "risk.device.unknown"),
        ("[risk]\n[risk.time]\ntime_zone = \"Atlantis/Capital\"\n", "risk.time.time_zone"),
        ("[risk]\n[risk.location]\ntrusted_networks = [\"10.0.0.0/33\"]\n", "risk.location.trusted_networks[0]"),
        ("[risk]\n[risk.behaviour]\nwindow = \"soon\"\n", "risk.behaviour.window"),
        ("[risk]\nstep_up = \"sometimes\"\n", "risk.step_up"),
        ("[risk]\n[risk.device]\nunkown = 5\n", "unkown"),
    ] {
        let cfg = write_config(dir.path(), risk);
        let (ok, out, err) = stepgate(&["check-config", &cfg]);
        assert!(!ok, "accepted: {risk}\n{out}");
        assert!(err.contains(key), "{risk}: the error names {key}: {err}");
    }
}

/// The `run` command as operators start it: several serving threads (one listener each, with
/// SO_REUSEPORT), SIGHUP reloading all of them, SIGTERM stopping them gracefully.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_on_several_threads_alone_reloads_them_all_audits_and_stops_on_sigterm() {
    use crate::support::Client;
    use http::StatusCode;
    let app = stepgate::demo_app::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = |public: &str| {
        format!(
            "[listen]\naddress = \"127.0.0.1:{port}\"\npublic_url = \"http://localhost:{port}\"\nworkers = 3\n\
             [upstream]\nurl = \"http://{}\"\n[store]\npath = \"{}\"\n[sessions]\nsecret_key = \"{}\"\n\
             [[rule]]\nname = \"public\"\npath = \"/public/**\"\n{public}\n[default]\nrequire = \"aal1\"\n",
            app.addr,
            dir.path().join("stepgate.db").display(),
            "cd".repeat(32)
        )
    };
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config("require = \"none\"")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["--config", &path.display().to_string(), "run"])
        // A quieter log level leaves the audit records on.
        .env("STEPGATE_LOG", "warn,stepgate=info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The log, collected as it is written, so the test can wait for a line.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let collector = {
        use tokio::io::AsyncBufReadExt;
        let (log, stderr) = (log.clone(), child.stderr.take().unwrap());
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the gateway listens");
    // A second gateway on the same address (with a store of its own) is refused, not let in to
    // share the traffic.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, config("require = \"none\"").replace("stepgate.db", "other.db")).unwrap();
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["--config", &other.display().to_string(), "run"])
        .kill_on_drop(true)
        .output();
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), second)
        .await
        .expect("a second gateway on the same port must exit, not serve")
        .unwrap();
    let why = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second gateway on the same port must not start: {why}");
    assert!(why.contains(&format!("listen.address 127.0.0.1:{port}")) && why.contains("in use"), "{why}");
    // Each request on a new connection: the kernel spreads them over the threads' listeners.
    for _ in 0..30 {
        assert_eq!(Client::new(addr).get("/public/x").await.status, StatusCode::OK);
        assert_eq!(Client::new(addr).get("/account").await.status, StatusCode::UNAUTHORIZED);
    }
    // A bad reload (a time window on a public rule, which would never apply) is refused with
    // the key, and the last good config stays in force.
    std::fs::write(&path, config("require = \"none\"\nhours = \"08:00-18:00\"")).unwrap();
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let mut refused = false;
    for _ in 0..200 {
        if log.lock().unwrap().contains("config reload refused") {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "{}", log.lock().unwrap());
    assert!(log.lock().unwrap().contains("rule 'public'.hours"), "{}", log.lock().unwrap());
    for _ in 0..10 {
        assert_eq!(Client::new(addr).get("/public/x").await.status, StatusCode::OK, "the last good config serves");
    }
    // The reload also changes a key that needs a restart: the log must say so.
    let reloaded = config("action = \"deny\"").replace("workers = 3\n", "workers = 3\nheader_timeout = \"20s\"\n");
    std::fs::write(&path, reloaded).unwrap();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let mut denied_in_a_row = 0;
    for _ in 0..200 {
        if Client::new(addr).get("/public/x").await.status == StatusCode::FORBIDDEN {
            denied_in_a_row += 1;
            if denied_in_a_row == 30 {
                break;
            }
        } else {
            denied_in_a_row = 0;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(denied_in_a_row, 30, "every thread took the reloaded config");
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(40), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "a graceful stop: {status}");
    collector.await.unwrap();
    let log = log.lock().unwrap().clone();
    assert!(log.contains("\"workers\":3") && log.contains("config reloaded"), "{log}");
    assert!(log.contains("need a restart") && log.contains("listen.header_timeout"), "{log}");
    let refused = log.lines().filter(|l| l.contains("\"target\":\"audit\"") && l.contains("\"decision\":\"signin\""));
    assert_eq!(refused.count(), 30, "one audit record per refused /account request, flushed at exit");
}

/// The config the docker-compose replicas run with stays valid as the code moves on.
#[test]
fn the_compose_deployment_config_passes_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["check-config", &root.join("deploy/compose/config.toml").display().to_string()])
        .env("STEPGATE_SECRET_KEY", "ef".repeat(32))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("transfer") && stdout.contains("require aal2 max_age 5m"), "{stdout}");
}

/// A config text with `rules` in place of the rule section.
fn config_with(dir: &Path, rules: &str) -> String {
    let text = format!(
        "[listen]\naddress = \"127.0.0.1:0\"\npublic_url = \"https://app.example\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
         [sessions]\nsecret_key = \"{}\"\n{rules}",
        "ab".repeat(32)
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Mistakes that used to pass silently, or were reported in serde's words: each names the
/// key and says what to write.
#[test]
fn config_mistakes_name_the_key_and_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |extra: &str| format!("[[rule]]\nname = \"x\"\npath = \"/x\"\n{extra}\n[default]\nrequire = \"aal1\"\n");
    let cases: Vec<(String, &str, &str)> = vec![
        (rule("require = \"aal2\"\nmax_age = \"5M\""), "rule 'x'.max_age", "ms, s, m, h, d"),
        (rule("require = \"aal2\"\nmax_age = \"300\""), "rule 'x'.max_age", "ms, s, m, h, d"),
        (rule("require = \"aal2\"\nmax_age = \"5min\""), "rule 'x'.max_age", "ms, s, m, h, d"),
        (rule("require = \"aal2\"\nmax_age = \"0s\""), "rule 'x'.max_age", "longer than zero"),
        (format!("[signin]\nwindow = \"1y\"\n{}", rule("require = \"aal1\"")), "signin.window", "lower case"),
        (
            format!("[risk]\nstep_up_max_age = \"5M\"\n{}", rule("require = \"aal1\"")),
            "risk.step_up_max_age",
            "ms, s, m, h, d",
        ),
        (rule("require = \"aal2\"\nmax_age = \"1y\""), "rule 'x'.max_age", "lower case"),
        (rule("require = \"aal2\"\nmax_age = \"5 minutes\""), "rule 'x'.max_age", "e.g. \"30s\""),
        (rule("require = \"aal2\"\nmethods = [\"PSOT\"]"), "rule 'x'.methods", "'PSOT' is not an HTTP method"),
        (rule("require = \"aal2\"\nmethods = [\"PROPFIND\"]"), "rule 'x'.methods", "routes.extension_methods"),
        (rule("require = \"aal2\"\nmethods = [\"post\"]"), "rule 'x'.methods", "write \"POST\""),
        (
            format!("[routes]\nextension_methods = [\"propfind\"]\n{}", rule("require = \"aal1\"")),
            "routes.extension_methods",
            "e.g. \"PROPFIND\"",
        ),
        (rule("require = \"none\"\nhours = \"08:00-18:00\"\noutside_hours = \"deny\""), "rule 'x'.hours", "not scored"),
        (rule("require = \"none\"\ndeny_at = 50"), "rule 'x'.deny_at", "not scored"),
        (rule("require = \"none\"\nstep_up_at = 20"), "rule 'x'.step_up_at", "require = \"aal1\""),
        (rule("require = \"none\"\ndays = [\"mon\"]"), "rule 'x'.days", "action = \"deny\""),
        (
            "[default]\nrequire = \"none\"\nhours = \"08:00-18:00\"\n".into(),
            "default.hours",
            "requests on a require = \"none\" route are not scored",
        ),
        ("[default]\nrequire = \"aal1\"\ndeny_at = 50\n".into(), "default.deny_at", "Put the key on a [[rule]]"),
        ("[[rule]]\nname = \"x\"\npath = \"/x\"\nrequire = \"aal1\"\n".into(), "[default]", "[default]\nrequire"),
        (
            "[rule]\nname = \"x\"\npath = \"/x\"\nrequire = \"aal1\"\n[default]\nrequire = \"aal1\"\n".into(),
            "rule",
            "write [[rule]]",
        ),
        (
            format!("[sessions.x]\n{}", rule("require = \"aal1\""))
                .replace("[sessions.x]\n", "")
                .replace("[default]", "[[default]]"),
            "default",
            "write [default]",
        ),
    ];
    for (rules, key, says) in cases {
        let cfg = config_with(dir.path(), &rules);
        let (ok, out, err) = stepgate(&["check-config", &cfg]);
        assert!(!ok, "accepted:\n{rules}\n{out}");
        assert!(err.contains(key) && err.contains(says), "{rules}\nthe error names {key} and says {says:?}: {err}");
        assert!(!err.contains("line 1"), "{err}");
        // At start-up the same mistake stops the gateway with the same words.
        let (started, _, run_err) = stepgate(&["--config", &cfg, "run"]);
        assert!(!started && run_err.contains(key) && run_err.contains(says), "run: {run_err}");
    }
    // [sessions] may be left out when STEPGATE_SECRET_KEY holds the key: a mistake elsewhere
    // is what gets reported, not a "missing [sessions]".
    let path = config_with(dir.path(), "[default]\nrequire = \"aal1\"\n");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("[sessions]").unwrap();
    let end = start + text[start..].find("[default]").unwrap();
    std::fs::write(&path, format!("{}{}", &text[..start], &text[end..]).replace("url =", "ur1 =")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["check-config", &path])
        .env("STEPGATE_SECRET_KEY", "cd".repeat(32))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ur1") && !err.contains("[sessions]"), "{err}");
    // Declared extension methods are accepted.
    let ok = format!(
        "[routes]\nextension_methods = [\"PROPFIND\"]\n{}",
        rule("require = \"aal2\"\nmethods = [\"PROPFIND\"]")
    );
    let (accepted, out, err) = stepgate(&["check-config", &config_with(dir.path(), &ok)]);
    assert!(accepted, "{out}{err}");
    assert!(out.contains("PROPFIND"), "{out}");
}

/// `stepgate check-config x.toml | head -1`: the reader goes away early. No command panics or
/// prints a backtrace; each stops quietly with status 0 (see `say` in main.rs).
#[test]
fn no_command_panics_on_a_closed_pipe() {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("config.toml").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml").display().to_string();
    let commands: [Vec<&str>; 8] = [
        vec!["check-config", &config],
        vec!["--config", &config, "explain", "--url", "https://app.example/transfer", "--method", "POST"],
        vec!["--config", &config, "check-config"],
        vec!["user", "add", "alice", "--users-file", &users],
        vec!["demo-app", "--listen", "127.0.0.1:0"],
        vec!["demo", "--listen", "127.0.0.1:0"],
        vec!["--help"],
        vec!["check-config", "--help"],
    ];
    for args in commands {
        // The reader has gone before the command writes a byte, as with a `head` that is done.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut child = Command::new(env!("CARGO_BIN_EXE_stepgate"))
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `user add` reads its password from stdin.
        let _ = child.stdin.take().unwrap().write_all(b"a long enough password\n");
        // The servers (demo, demo-app) must stop on the closed pipe too, not serve on.
        let waited = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if waited.elapsed() > std::time::Duration::from_secs(60) {
                let _ = child.kill();
                panic!("{args:?} kept running with its standard output closed");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {:?} {err}", out.status);
    }
    assert!(std::fs::read_to_string(&users).unwrap().contains("alice"), "user add did its work before the write");
}

#[test]
fn demo_on_a_taken_port_says_how_to_pick_another_and_exits_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .args(["demo", "--listen", &listen])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the stepgate binary");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo kept running on a taken port");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success() && status.code() == Some(1), "{status}: {err}");
    assert!(err.contains(&listen) && err.contains("already in use"), "{err}");
    assert!(err.contains("--listen 127.0.0.1:"), "says how to pick another: {err}");
    assert!(!err.contains("panicked"), "{err}");
    drop(taken);
}
