//! The `[metrics]` listener: counters move as a user signs in and steps up, and Prometheus's
//! own checker (`promtool`, Debian package `prometheus`) accepts the scrape.

use crate::support::flows::{enroll_totp, signed_in, submit_totp};
use crate::support::{totp, Client, Harness, Options, Resp, PASSWORD, USER};
use http::StatusCode;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

const METRICS: &str = "[metrics]\naddress = \"127.0.0.1:0\"\n";

async fn with_metrics() -> (Harness, SocketAddr) {
    let rules = format!(
        "[[rule]]\nname = \"closed\"\npath = \"/closed/**\"\naction = \"deny\"\n{}",
        crate::support::DEMO_RULES
    );
    let h = Harness::with(Options { extra: METRICS.into(), rules, ..Options::default() }).await;
    let addr = h.running.as_ref().and_then(|r| r.metrics_addr).expect("the metrics listener's address");
    assert_ne!(addr.port(), 0);
    (h, addr)
}

async fn scrape(addr: SocketAddr) -> Resp {
    let r = Client::new(addr).get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r
}

/// The value of the sample `series` (name and labels exactly as written); panics if absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// `promtool check metrics` on `text` (stdin); panics with its output unless it accepts it.
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `promtool` ({e}): install the Debian package `prometheus` (apt-get install prometheus)")
        });
    child.stdin.take().expect("promtool's stdin").write_all(text.as_bytes()).expect("write the scrape to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics refused the scrape ({}):\n{}{}\n--- scrape ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_sign_in_and_a_totp_step_up_move_the_counters_and_promtool_accepts_the_scrape() {
    let (h, addr) = with_metrics().await;
    let before = scrape(addr).await;
    assert_eq!(before.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(value(&before.body, r#"stepgate_signins_total{result="success"}"#), 0.0);
    promtool_accepts(&before.body);

    let mut c = signed_in(&h).await;
    let enrolled = enroll_totp(&h, &mut c).await;
    let mut c = signed_in(&h).await;
    let wrong = c.sign_in_returning(USER, "not the password", "/").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let r = submit_totp(&mut c, "/transfer", &totp::code(&enrolled.secret, h.now())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // A denial, a challenge, a forward, and a refusal before evaluation, counted by decision.
    assert_eq!(c.get("/closed/x").await.status, StatusCode::FORBIDDEN);
    let mut fresh = signed_in(&h).await;
    assert_eq!(fresh.get_with("/transfer", &[("accept", "application/json")]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fresh.get("/account").await.status, StatusCode::OK);
    assert_eq!(fresh.get("/admin%2fx").await.status, StatusCode::BAD_REQUEST);

    let t = scrape(addr).await.body;
    assert_eq!(value(&t, r#"stepgate_requests_total{mode="proxy",decision="deny",rule="closed"}"#), 1.0);
    assert_eq!(value(&t, r#"stepgate_requests_total{mode="proxy",decision="challenge",rule="transfer"}"#), 1.0);
    assert!(value(&t, r#"stepgate_requests_total{mode="proxy",decision="forward",rule="default"}"#) >= 1.0);
    assert!(value(&t, r#"stepgate_requests_total{mode="proxy",decision="page",rule="-"}"#) >= 1.0);
    assert_eq!(value(&t, r#"stepgate_requests_total{mode="proxy",decision="bad_request",rule="-"}"#), 1.0);
    assert!(value(&t, r#"stepgate_request_duration_seconds_count{mode="proxy"}"#) >= 5.0);
    assert!(value(&t, r#"stepgate_signins_total{result="success"}"#) >= 2.0, "two sign-ins");
    assert!(value(&t, r#"stepgate_signins_total{result="fail"}"#) >= 1.0);
    assert!(value(&t, r#"stepgate_stepup_attempts_total{method="totp",result="success"}"#) >= 1.0);
    assert_eq!(value(&t, r#"stepgate_stepup_attempts_total{method="totp",result="fail"}"#), 0.0);
    assert!(value(&t, "stepgate_challenges_shown_total") >= 1.0);
    let store_calls: f64 = t
        .lines()
        .filter(|l| l.starts_with("stepgate_store_operation_duration_seconds_count{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(store_calls > 0.0, "store calls are timed:\n{t}");
    assert!(value(&t, r#"stepgate_store_operation_duration_seconds_count{operation="raise_high_water"}"#) >= 1.0);
    assert!(value(&t, "stepgate_config_last_reload_success_timestamp_seconds") >= crate::support::T0 as f64);
    // Labels never carry who or where: no user name, password or path in the scrape.
    for secret in [USER, PASSWORD, "/transfer"] {
        assert!(!t.contains(secret), "{secret} appears in the scrape");
    }
    promtool_accepts(&t);

    // Prometheus asks for OpenMetrics first and gets it; anything else on the listener is a 404.
    let om = Client::new(addr)
        .get_with(
            "/metrics",
            &[("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")],
        )
        .await;
    assert!(om.header("content-type").unwrap_or("").starts_with("application/openmetrics-text"), "{:?}", om.headers);
    assert!(om.body.ends_with("# EOF\n"));
    for path in ["/", "/metrics/x", "/.stepgate/health"] {
        assert_eq!(Client::new(addr).get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn two_gateways_in_one_process_count_apart_and_without_metrics_there_is_no_listener() {
    let (a, a_addr) = with_metrics().await;
    let (_b, b_addr) = with_metrics().await;
    signed_in(&a).await;
    assert!(value(&scrape(a_addr).await.body, r#"stepgate_signins_total{result="success"}"#) >= 1.0);
    assert_eq!(value(&scrape(b_addr).await.body, r#"stepgate_signins_total{result="success"}"#), 0.0);

    let plain = Harness::start().await;
    assert_eq!(plain.running.as_ref().and_then(|r| r.metrics_addr), None);
}

#[tokio::test]
async fn scored_requests_feed_the_risk_histogram_and_reason_counters() {
    // Risk on with the behaviour signal: a burst of requests is scored and its reasons counted.
    let extra = format!("{METRICS}[risk]\n[risk.behaviour]\nmax_requests = 3\nwindow = \"1m\"\n");
    let h = Harness::with(Options { extra, ..Options::default() }).await;
    let addr = h.running.as_ref().and_then(|r| r.metrics_addr).expect("the metrics listener");
    let before = value(&scrape(addr).await.body, "stepgate_risk_score_count");
    let mut c = signed_in(&h).await;
    for _ in 0..6 {
        c.get("/account").await;
    }
    // Public routes are not scored.
    c.get("/public/x").await;
    let t = scrape(addr).await.body;
    assert_eq!(value(&t, "stepgate_risk_score_count") - before, 6.0, "six scored requests:\n{t}");
    let reasons: f64 = t
        .lines()
        .filter(|l| l.starts_with("stepgate_risk_reasons_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(reasons >= 1.0, "the burst is a finding:\n{t}");
    promtool_accepts(&t);
}
