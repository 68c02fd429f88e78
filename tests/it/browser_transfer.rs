//! The demo's transfer in Chromium (e2e/transfer.mjs): a lapsed proof, the form kept across the
//! challenge that shows "Transfer 10 to bob", the code, the transfer done once; and the same
//! from a page that calls `fetch` with stepgate-client.js (the popup, the retry). The gateway's
//! clock is moved on when the script asks. Screenshots (desktop and 390 px) go to
//! target/e2e-artifacts/transfer/.

use crate::support::recorder::Recorder;
use crate::support::{Harness, Options, PASSWORD, USER};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const RULES: &str = r#"
[[rule]]
name = "home"
path = "/"
require = "none"

[[rule]]
name = "pay-page"
path = "/pay.js"
require = "none"

[[rule]]
name = "transfer"
path = "/transfer"
require = "aal2"
max_age = "5m"
bind = "transaction"
confirm = "Transfer {amount} to {to}"

[default]
require = "aal1"
"#;

#[tokio::test]
async fn the_demo_transfer_survives_a_lapsed_proof_and_the_script_page_steps_up_in_a_popup() {
    let root = crate::browser::require_browser();
    let port = crate::browser::free_port();
    let base = format!("http://localhost:{port}");
    let demo = stepgate::demo_app::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let app = Recorder::start(demo.addr).await;
    let h = Harness::with(Options {
        rules: RULES.into(),
        public_url: Some(base.clone()),
        listen_address: Some(format!("127.0.0.1:{port}")),
        upstream_url: Some(format!("http://{}", app.addr)),
        ..Options::default()
    })
    .await;
    h.clock.set(stepgate::clock::Clock::now(&stepgate::clock::SystemClock));
    let shots = root.join("target/e2e-artifacts/transfer");
    let mut child = tokio::process::Command::new("node")
        .arg(root.join("e2e/transfer.mjs"))
        .args([base.as_str(), &shots.display().to_string(), USER, PASSWORD])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): install Node.js"));
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = String::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(n) = line.strip_prefix("WAIT advance ") {
                h.advance(Duration::from_secs(n.parse().unwrap()));
                stdin.write_all(format!("{}\n", h.now()).as_bytes()).await.unwrap();
            }
            eprintln!("node: {line}");
            out.push_str(&line);
            out.push('\n');
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("the browser run ends in time");
    let status = child.wait().await.unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut stderr).await;
    }
    assert!(status.success(), "the browser run failed:\n{out}\n{stderr}");
    for marker in [
        "STEP challenge shows Transfer 10 to bob",
        "STEP transfer done",
        "STEP reload refused 410",
        "STEP popup shows Transfer 5 to carol",
        "STEP popup closed itself",
        "STEP script transfer done: Transferred 5 to carol",
        "E2E OK",
    ] {
        assert!(out.contains(marker), "missing `{marker}` in:\n{out}\n{stderr}");
    }
    let posts = app.seen().iter().filter(|s| s.method == "POST" && s.target == "/transfer").count();
    assert_eq!(posts, 2, "each transfer reached the app exactly once");
}
