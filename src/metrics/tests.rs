//! The typed methods, read back through the text the listener serves.

use super::labels::*;
use super::listener::{negotiate, respond};
use super::store::MeteredStore;
use super::*;
use crate::risk::Finding;
use crate::store::config::{RedisConfig, RedisTarget};
use crate::store::embedded::EmbeddedStore;
use crate::store::SharedStore;

/// The value of the sample line starting with `series` (name and labels as written), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn scrape(m: &Metrics) -> String {
    m.encode(Format::Prometheus)
}

#[test]
fn a_request_is_counted_by_mode_decision_and_rule_and_timed_by_mode() {
    let m = Metrics::new();
    m.request(Mode::Proxy, DecisionLabel::Challenge, "transfer", Duration::from_millis(3));
    m.request(Mode::Proxy, DecisionLabel::Challenge, "transfer", Duration::from_millis(30));
    m.request(Mode::ForwardAuth, DecisionLabel::Forward, "default", Duration::from_secs(100));
    let t = scrape(&m);
    let series = r#"stepgate_requests_total{mode="proxy",decision="challenge",rule="transfer"}"#;
    assert_eq!(sample(&t, series), Some(2.0), "{t}");
    let series = r#"stepgate_requests_total{mode="forward_auth",decision="forward",rule="default"}"#;
    assert_eq!(sample(&t, series), Some(1.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_request_duration_seconds_count{mode="proxy"}"#), Some(2.0), "{t}");
    let sum = sample(&t, r#"stepgate_request_duration_seconds_sum{mode="proxy"}"#).unwrap();
    assert!((sum - 0.033).abs() < 1e-9, "{sum}");
    // 100 s is beyond the last bucket: counted in +Inf only.
    assert_eq!(
        sample(&t, r#"stepgate_request_duration_seconds_bucket{mode="forward_auth",le="+Inf"}"#),
        Some(1.0),
        "{t}"
    );
    assert!(t.contains("# TYPE stepgate_requests_total counter"), "classic text names the counter with _total: {t}");
    assert!(!t.contains("# EOF"), "no OpenMetrics terminator in the classic format");
}

#[test]
fn risk_counts_the_score_and_each_known_reason_and_folds_unknown_ones() {
    let m = Metrics::new();
    let a = Assessment {
        score: 45,
        findings: vec![
            Finding::new("DEVICE_UNKNOWN", 20, "x"),
            Finding::new("GEO_NEW_COUNTRY", 25, "y"),
            Finding::new("SOMETHING_NEW", 0, "z"),
        ],
        ..Assessment::default()
    };
    m.risk(&a);
    m.risk(&Assessment::default());
    let t = scrape(&m);
    assert_eq!(sample(&t, "stepgate_risk_score_count"), Some(2.0), "{t}");
    assert_eq!(sample(&t, "stepgate_risk_score_sum"), Some(45.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_risk_score_bucket{le="40"}"#), Some(1.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_risk_score_bucket{le="50"}"#), Some(2.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_risk_reasons_total{reason="DEVICE_UNKNOWN"}"#), Some(1.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_risk_reasons_total{reason="GEO_NEW_COUNTRY"}"#), Some(1.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_risk_reasons_total{reason="OTHER"}"#), Some(1.0), "{t}");
    assert!(!t.contains("SOMETHING_NEW"));
}

#[test]
fn step_ups_lockouts_and_sign_ins_start_at_zero_and_count_by_label() {
    let m = Metrics::new();
    let t = scrape(&m);
    for method in ["totp", "recovery", "webauthn"] {
        for result in ["success", "fail"] {
            let series = format!(r#"stepgate_stepup_attempts_total{{method="{method}",result="{result}"}}"#);
            assert_eq!(sample(&t, &series), Some(0.0), "{series} starts at 0: {t}");
        }
    }
    m.step_up(AuthMethod::Totp, StepUpResult::Success);
    m.step_up(AuthMethod::Webauthn, StepUpResult::Fail);
    m.step_up(AuthMethod::Password, StepUpResult::Success); // not a step-up
    m.lockout();
    m.challenge_shown();
    m.challenge_shown();
    m.sign_in(SignInResult::Success);
    m.sign_in(SignInResult::Locked);
    let t = scrape(&m);
    assert_eq!(sample(&t, r#"stepgate_stepup_attempts_total{method="totp",result="success"}"#), Some(1.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_stepup_attempts_total{method="webauthn",result="fail"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"stepgate_stepup_attempts_total{method="recovery",result="success"}"#), Some(0.0));
    assert_eq!(sample(&t, "stepgate_stepup_lockouts_total"), Some(1.0), "{t}");
    assert_eq!(sample(&t, "stepgate_challenges_shown_total"), Some(2.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_signins_total{result="success"}"#), Some(1.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_signins_total{result="locked"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"stepgate_signins_total{result="fail"}"#), Some(0.0));
}

#[test]
fn upstream_errors_by_kind_connections_and_reloads() {
    let m = Arc::new(Metrics::new());
    let timeout = ProxyError::Timeout { authority: "a:1".into(), after: Duration::from_secs(1) };
    m.upstream_error(&timeout);
    m.upstream_error(&ProxyError::ClientBody("cut".into()));
    let first = m.connection_opened();
    let second = m.connection_opened();
    assert_eq!(sample(&scrape(&m), "stepgate_open_connections"), Some(2.0));
    drop(first);
    m.config_loaded(UnixTime(1_000));
    m.config_reload(ReloadResult::Error, UnixTime(2_000));
    let t = scrape(&m);
    assert_eq!(sample(&t, "stepgate_open_connections"), Some(1.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_upstream_errors_total{kind="timeout"}"#), Some(1.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_upstream_errors_total{kind="client_body"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"stepgate_upstream_errors_total{kind="connect"}"#), Some(0.0));
    assert_eq!(sample(&t, r#"stepgate_config_reloads_total{result="error"}"#), Some(1.0), "{t}");
    assert_eq!(
        sample(&t, "stepgate_config_last_reload_success_timestamp_seconds"),
        Some(1_000.0),
        "a bad reload keeps the time"
    );
    m.config_reload(ReloadResult::Success, UnixTime(3_000));
    let t = scrape(&m);
    assert_eq!(sample(&t, r#"stepgate_config_reloads_total{result="success"}"#), Some(1.0));
    assert_eq!(sample(&t, "stepgate_config_last_reload_success_timestamp_seconds"), Some(3_000.0));
    drop(second);
    assert_eq!(sample(&scrape(&m), "stepgate_open_connections"), Some(0.0));
}

#[tokio::test]
async fn the_store_wrapper_times_each_call_by_method_name_and_counts_failures() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let embedded: SharedStore = Arc::new(EmbeddedStore::open(&dir.path().join("s.db")).unwrap());
    let store = MeteredStore::wrap(embedded, metrics.clone());
    let now = UnixTime(1_000);
    assert_eq!(store.hit_counter("k", Duration::from_secs(60), now).await.unwrap(), 1);
    assert_eq!(store.read_counter("k", now).await.unwrap(), 1);
    assert_eq!(store.read_counter("k", now).await.unwrap(), 1);
    store.ready(now).await.unwrap();
    let t = scrape(&metrics);
    assert_eq!(sample(&t, r#"stepgate_store_operation_duration_seconds_count{operation="hit_counter"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"stepgate_store_operation_duration_seconds_count{operation="read_counter"}"#), Some(2.0));
    // `ready` is one call, not the put and take it makes inside the store.
    assert_eq!(sample(&t, r#"stepgate_store_operation_duration_seconds_count{operation="ready"}"#), Some(1.0));
    assert_eq!(sample(&t, r#"stepgate_store_operation_duration_seconds_count{operation="put_ephemeral"}"#), None);
    assert_eq!(sample(&t, r#"stepgate_store_errors_total{operation="read_counter"}"#), Some(0.0));

    // A Redis store with nobody listening: real errors, counted under the operation.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = RedisConfig {
        target: RedisTarget::Single { url: format!("redis://{closed}/0") },
        prefix: "t".into(),
        timeout: Duration::from_millis(200),
    };
    let redis: SharedStore =
        Arc::new(crate::store::redis::RedisStore::open(&cfg, Arc::new(crate::clock::SystemClock)).unwrap());
    let store = MeteredStore::wrap(redis, metrics.clone());
    assert!(store.get_factors("alice").await.is_err());
    let t = scrape(&metrics);
    assert_eq!(sample(&t, r#"stepgate_store_errors_total{operation="get_factors"}"#), Some(1.0), "{t}");
    assert_eq!(sample(&t, r#"stepgate_store_operation_duration_seconds_count{operation="get_factors"}"#), Some(1.0));
}

#[test]
fn only_get_and_head_of_metrics_answer_and_the_format_follows_accept() {
    let m = Arc::new(Metrics::new());
    let req = |method: &str, path: &str, accept: Option<&str>| {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some(a) = accept {
            b = b.header("accept", a);
        }
        b.body(()).unwrap()
    };
    for (method, path) in [("GET", "/"), ("GET", "/metrics/"), ("POST", "/metrics"), ("GET", "/metricsx")] {
        assert_eq!(respond(&m, &req(method, path, None)).status(), 404, "{method} {path}");
    }
    let ok = respond(&m, &req("GET", "/metrics", None));
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = respond(&m, &req("GET", "/metrics", Some(prometheus)));
    assert!(om.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert_eq!(respond(&m, &req("HEAD", "/metrics", None)).status(), 200);

    assert_eq!(negotiate([prometheus].into_iter()), Format::OpenMetrics);
    assert_eq!(negotiate(["*/*"].into_iter()), Format::Prometheus);
    assert_eq!(negotiate(std::iter::empty()), Format::Prometheus);
    assert_eq!(negotiate(["text/plain, application/openmetrics-text;q=0.5"].into_iter()), Format::Prometheus);
    assert_eq!(negotiate(["application/openmetrics-text;q=0"].into_iter()), Format::Prometheus);
    let text = m.encode(Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"), "{text}");
}
