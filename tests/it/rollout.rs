//! Rolling rules out and retiring them: a shadow rule's would-be decisions are audited and
//! counted while the request passes; an expired rule stops applying when the clock passes its
//! expiry; a change of the config file reloads it, with an audit record naming the rules.

use crate::support::flows::signed_in;
use crate::support::{audit, Client, Harness, Options, DEMO_RULES};
use http::StatusCode;
use std::net::SocketAddr;
use std::time::Duration;

const METRICS: &str = "[metrics]\naddress = \"127.0.0.1:0\"\n";

async fn scrape(addr: SocketAddr) -> String {
    let r = Client::new(addr).get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

const SHADOW_RULES: &str = r#"
[[rule]]
name = "public-needs-signin"
path = "/public/**"
require = "aal1"
mode = "shadow"

[[rule]]
name = "account-aal2"
path = "/account"
require = "aal2"
mode = "shadow"
"#;

#[tokio::test]
async fn a_shadow_rules_would_be_decisions_are_audited_and_counted_while_requests_pass() {
    audit::capture();
    let rules = format!("{SHADOW_RULES}{DEMO_RULES}");
    let h = Harness::with(Options { rules, extra: METRICS.into(), ..Options::default() }).await;
    let metrics = h.running.as_ref().and_then(|r| r.metrics_addr).unwrap();

    // Signed in with a password (aal1): the default lets /account through; the shadow rule
    // would have asked for a step-up.
    let mut user = signed_in(&h).await;
    let r = user.get("/account").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.header("x-request-id").unwrap().to_string();
    let recs = audit::for_request(&id);
    let shadow: Vec<_> = recs.iter().filter(|v| v["kind"] == "shadow").collect();
    assert_eq!(shadow.len(), 1, "{recs:?}");
    assert_eq!(shadow[0]["rule"], "account-aal2");
    assert_eq!(shadow[0]["decision"], "challenge");
    assert_eq!(shadow[0]["user"], crate::support::USER);
    assert_eq!(shadow[0]["path"], "/account");
    let decision: Vec<_> = recs.iter().filter(|v| v["kind"] == "decision").collect();
    assert_eq!((&decision[0]["rule"], &decision[0]["decision"]), (&"default".into(), &"forward".into()));

    // Nobody signed in, a public route: it passes, the shadow rule would have asked for a sign-in.
    let r = h.client().get("/public/x").await;
    assert_eq!(r.status, StatusCode::OK);
    let recs = audit::for_request(r.header("x-request-id").unwrap());
    assert_eq!(recs.len(), 1, "only the shadow record (public forwards are not audited): {recs:?}");
    assert_eq!(
        (&recs[0]["kind"], &recs[0]["rule"], &recs[0]["decision"]),
        (&"shadow".into(), &"public-needs-signin".into(), &"signin".into())
    );

    let text = scrape(metrics).await;
    let series = |rule: &str, d: &str| format!("stepgate_shadow_decisions_total{{rule=\"{rule}\",decision=\"{d}\"}}");
    assert_eq!(value(&text, &series("account-aal2", "challenge")), Some(1.0), "{text}");
    assert_eq!(value(&text, &series("public-needs-signin", "signin")), Some(1.0), "{text}");
    // The requests themselves count under the rules that decided them.
    assert_eq!(value(&text, "stepgate_requests_total{mode=\"proxy\",decision=\"forward\",rule=\"public\"}"), Some(1.0));
}

#[tokio::test]
async fn an_expired_rule_stops_applying_when_the_clock_passes_its_expiry() {
    audit::capture();
    // An exception: /echo/report public for one hour from T0 (2026-11-23T12:00:00Z), then the
    // default (aal1) applies, which is stricter, so no on_expiry is needed.
    let rules = format!(
        "[[rule]]\nname = \"report-exception\"\npath = \"/echo/report\"\nrequire = \"none\"\n\
         expires = \"2026-11-23T13:00:00Z\"\nowner = \"ann\"\nticket = \"SEC-7\"\n{DEMO_RULES}"
    );
    let h = Harness::with(Options { rules, extra: METRICS.into(), ..Options::default() }).await;
    let metrics = h.running.as_ref().and_then(|r| r.metrics_addr).unwrap();
    let text = scrape(metrics).await;
    assert_eq!(value(&text, "stepgate_rule_expiry_seconds{rule=\"report-exception\"}"), Some(3600.0), "{text}");

    let mut anon = h.client();
    assert_eq!(anon.get("/echo/report").await.status, StatusCode::OK);
    h.advance(Duration::from_secs(3599));
    assert_eq!(anon.get("/echo/report").await.status, StatusCode::OK, "one second before expiry");
    h.advance(Duration::from_secs(1));
    let r = anon.get("/echo/report").await;
    assert_ne!(r.status, StatusCode::OK, "at expiry the default (aal1) applies: {}", r.body);
    let recs = audit::for_request(r.header("x-request-id").unwrap());
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["rule"], "default");
    assert_eq!(recs[0]["decision"], "signin");
    assert_eq!(recs[0]["expired_rule"], "report-exception");

    // Signed in, it passes under the default; the audit still names the skipped rule.
    let mut user = signed_in(&h).await;
    let r = user.get("/echo/report").await;
    assert_eq!(r.status, StatusCode::OK);
    let recs = audit::for_request(r.header("x-request-id").unwrap());
    assert_eq!(recs[0]["expired_rule"], "report-exception", "{recs:?}");
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn a_changed_config_file_is_reloaded_and_audited_with_the_rules_added_removed_and_changed() {
    audit::capture();
    let h = Harness::start().await;
    let path = h.dir.path().join("watched.toml");
    std::fs::write(&path, &h.config_text).unwrap();
    let state = h.running.as_ref().unwrap().state.clone();
    let watch = stepgate::reload::watch_file(vec![state], path.clone(), Default::default(), Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(120)).await;

    // Changed: transfer (max_age); removed: bytes; added: reports.
    let new = h
        .config_text
        .replace(
            "name = \"transfer\"\npath = \"/transfer\"\nrequire = \"aal2\"\nmax_age = \"5m\"",
            "name = \"transfer\"\npath = \"/transfer\"\nrequire = \"aal2\"\nmax_age = \"1m\"",
        )
        .replace(
            "[[rule]]\nname = \"bytes\"\npath = \"/bytes/**\"\nrequire = \"none\"\n",
            "[[rule]]\nname = \"reports\"\npath = \"/reports/**\"\naction = \"deny\"\n",
        );
    assert_ne!(new, h.config_text);
    std::fs::write(&path, &new).unwrap();
    let sha = sha256_hex(&new);
    let rec = audit::wait_for(|v| v["kind"] == "config_reload" && v["config_sha256"] == sha.as_str()).await;
    assert_eq!(rec["decision"], "applied");
    assert_eq!(rec["rules_added"], serde_json::json!(["reports"]));
    assert_eq!(rec["rules_removed"], serde_json::json!(["bytes"]));
    assert_eq!(rec["rules_changed"], serde_json::json!(["transfer"]));
    assert_eq!(h.client().get("/reports/x").await.status, StatusCode::FORBIDDEN, "the new rule applies");

    // A broken file is refused, audited with its hash, and the last good config stays.
    let broken = new.replace("action = \"deny\"", "action = \"block\"");
    std::fs::write(&path, &broken).unwrap();
    let sha = sha256_hex(&broken);
    let rec = audit::wait_for(|v| v["kind"] == "config_reload" && v["config_sha256"] == sha.as_str()).await;
    assert_eq!(rec["decision"], "refused");
    assert_eq!(rec["rules_changed"], serde_json::json!([]));
    assert_eq!(h.client().get("/reports/x").await.status, StatusCode::FORBIDDEN);
    watch.abort();
}
