//! End to end in a real browser: Debian's headless Chromium, driven by playwright-core
//! (e2e/passkey.mjs) with a CDP virtual authenticator, against the real gateway and the demo
//! app. Screenshots of the enrollment and challenge pages are kept in target/e2e-artifacts/.

use crate::support::{Harness, Options, PASSWORD, USER};
use std::path::Path;
use std::process::Command;

/// The repository root, once Chromium and playwright-core (the browser tests' judges) are
/// known to be there: tests never skip, a missing one fails with its name.
pub fn require_browser() -> &'static Path {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        Path::new("/usr/bin/chromium").exists() || std::env::var_os("CHROMIUM").is_some(),
        "Chromium is missing: install the Debian package `chromium` (bash scripts/test-deps.sh does)"
    );
    assert!(
        root.join("e2e/node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix e2e` (bash scripts/test-deps.sh does)"
    );
    root
}

/// A port free right now on 127.0.0.1 (the browser's origin must name it before the gateway
/// starts, as `listen.public_url`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn a_passkey_enrolled_in_chromium_passes_an_aal3_challenge_and_reaches_the_upstream() {
    let root = require_browser();
    let port = free_port();
    let base = format!("http://localhost:{port}");
    let h = Harness::with(Options {
        rules: crate::webauthn::PASSKEY_RULES.into(),
        public_url: Some(base.clone()),
        listen_address: Some(format!("127.0.0.1:{port}")),
        ..Options::default()
    })
    .await;
    // The browser runs on the real clock; so does this gateway's (manual) clock, set to now.
    h.clock.set(stepgate::clock::Clock::now(&stepgate::clock::SystemClock));
    let artifacts = root.join("target/e2e-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let script = root.join("e2e/passkey.mjs");
    let artifacts_arg = artifacts.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(script).args([base.as_str(), artifacts_arg.as_str(), USER, PASSWORD]).output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run `node` ({e}): install Node.js"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser run failed:\n{stdout}\n{stderr}");
    for marker in [
        "STEP signed in; challenged without a passkey",
        "STEP recovery codes shown: 10",
        "STEP passkey enrolled: 1 credential, rpId localhost",
        "STEP challenged on /admin with the passkey offered",
        "STEP reached the upstream",
        "STEP app sees level aal3 methods password,webauthn",
        "E2E OK",
    ] {
        assert!(stdout.contains(marker), "missing `{marker}` in:\n{stdout}\n{stderr}");
    }
    for shot in ["enrollment.png", "recovery-codes.png", "challenge.png", "admin.png"] {
        let bytes = std::fs::read(artifacts.join(shot)).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 2000, "screenshot {shot} is missing or empty");
    }
    let factors = h.store.as_ref().unwrap().get_factors(USER).await.unwrap();
    assert_eq!(factors.webauthn.len(), 1);
    assert_eq!(factors.webauthn[0].name, "e2e laptop");
    assert!(factors.webauthn[0].last_used.is_some(), "the step-up used it");
}
