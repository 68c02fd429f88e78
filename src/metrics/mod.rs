//! Prometheus metrics: one [`Metrics`] per gateway (held in the shared state, never a global,
//! so several gateways in one process count apart), typed recording methods, and the
//! `[metrics]` listener that serves them (`listener`).
//!
//! Every family is named `stepgate_*`; labels are closed enums (see `labels`) or rule names.

pub mod labels;
pub mod listener;
pub mod store;
#[cfg(test)]
mod tests;

use crate::clock::UnixTime;
use crate::policy::level::AuthMethod;
use crate::proxy::ProxyError;
use crate::risk::Assessment;
use labels::*;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, linear_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The registry and every family the gateway records into.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<ModeLabels>,
    challenges_shown: Counter,
    stepup_attempts: Family<StepUpLabels, Counter>,
    lockouts: Counter,
    signins: Family<SignInLabels, Counter>,
    risk_score: Histogram,
    risk_reasons: Family<ReasonLabels, Counter>,
    store_duration: HistogramFamily<StoreOpLabels>,
    store_errors: Family<StoreOpLabels, Counter>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    client_errors: Family<ClientErrorLabels, Counter>,
    open_connections: Gauge,
    parked_connections: Gauge,
    connections_refused: Counter,
    config_reloads: Family<ReloadLabels, Counter>,
    config_loaded_at: Gauge,
    shadow_decisions: Family<ShadowLabels, Counter>,
    rule_expiry: Family<RuleLabels, Gauge>,
}

pub type SharedMetrics = Arc<Metrics>;

/// Request durations: 0.5 ms to about 16 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Store calls: 0.1 ms to about 3 s.
fn store_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The representation each scrape is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The classic Prometheus text format (0.0.4): what Prometheus, promtool and most
    /// scrapers read.
    Prometheus,
    /// OpenMetrics 1.0 text, for a scraper that asks for it (`Accept: application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_buckets),
            challenges_shown: Counter::default(),
            stepup_attempts: Family::default(),
            lockouts: Counter::default(),
            signins: Family::default(),
            risk_score: Histogram::new(linear_buckets(0.0, 10.0, 11)),
            risk_reasons: Family::default(),
            store_duration: Family::new_with_constructor(store_buckets),
            store_errors: Family::default(),
            upstream_errors: Family::default(),
            client_errors: Family::default(),
            open_connections: Gauge::default(),
            parked_connections: Gauge::default(),
            connections_refused: Counter::default(),
            config_reloads: Family::default(),
            config_loaded_at: Gauge::default(),
            shadow_decisions: Family::default(),
            rule_expiry: Family::default(),
        };
        m.register();
        m.zero_known_series();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "stepgate_requests",
            "Requests decided, by how they came (mode), the decision and the matched rule",
            self.requests.clone(),
        );
        r.register(
            "stepgate_request_duration_seconds",
            "Time from a request's arrival to its response headers",
            self.request_duration.clone(),
        );
        r.register("stepgate_challenges_shown", "Step-up challenge pages shown", self.challenges_shown.clone());
        r.register(
            "stepgate_stepup_attempts",
            "Step-up attempts by second-factor method and result",
            self.stepup_attempts.clone(),
        );
        r.register(
            "stepgate_stepup_lockouts",
            "Step-up attempts refused or ended because the user is locked out after repeated failures",
            self.lockouts.clone(),
        );
        r.register("stepgate_signins", "Password sign-ins by result", self.signins.clone());
        r.register("stepgate_risk_score", "Risk scores (0-100) of scored requests", self.risk_score.clone());
        r.register("stepgate_risk_reasons", "Risk findings by reason code", self.risk_reasons.clone());
        r.register(
            "stepgate_store_operation_duration_seconds",
            "Store calls by operation (the Store trait method)",
            self.store_duration.clone(),
        );
        r.register("stepgate_store_errors", "Store calls that failed, by operation", self.store_errors.clone());
        r.register(
            "stepgate_upstream_errors",
            "Failed forwards to the upstream, by kind",
            self.upstream_errors.clone(),
        );
        r.register(
            "stepgate_client_errors",
            "Forwards that failed through the client (a body cut short or stalled, a bad target), by kind",
            self.client_errors.clone(),
        );
        r.register(
            "stepgate_open_connections",
            "Client connections open on the gateway's listener (TLS included)",
            self.open_connections.clone(),
        );
        r.register(
            "stepgate_parked_connections",
            "Idle HTTP/1.1 keep-alive connections holding only their socket (parked), of the open ones",
            self.parked_connections.clone(),
        );
        r.register(
            "stepgate_connections_refused",
            "Client connections closed at accept because listen.max_connections were open",
            self.connections_refused.clone(),
        );
        r.register(
            "stepgate_config_reloads",
            "Config reloads (SIGHUP or the config file changing) by result",
            self.config_reloads.clone(),
        );
        r.register(
            "stepgate_config_last_reload_success_timestamp_seconds",
            "Unix time the config in force was loaded (start-up or the last good reload)",
            self.config_loaded_at.clone(),
        );
        r.register(
            "stepgate_shadow_decisions",
            "What shadow rules would have decided (the request was decided by the rules after them), by rule and decision",
            self.shadow_decisions.clone(),
        );
        r.register(
            "stepgate_rule_expiry_seconds",
            "Seconds until each expiring rule expires (negative once expired and skipped)",
            self.rule_expiry.clone(),
        );
    }

    /// Series with only enum labels start at 0, so a rate over them exists before the first event.
    fn zero_known_series(&self) {
        for &method in StepUpMethod::ALL {
            for &result in StepUpResult::ALL {
                let _ = self.stepup_attempts.get_or_create(&StepUpLabels { method, result });
            }
        }
        for &result in SignInResult::ALL {
            let _ = self.signins.get_or_create(&SignInLabels { result });
        }
        for &kind in UpstreamErrorKind::ALL {
            let _ = self.upstream_errors.get_or_create(&UpstreamErrorLabels { kind });
        }
        for &kind in ClientErrorKind::ALL {
            let _ = self.client_errors.get_or_create(&ClientErrorLabels { kind });
        }
        for &result in ReloadResult::ALL {
            let _ = self.config_reloads.get_or_create(&ReloadLabels { result });
        }
        for &operation in StoreOp::ALL {
            let _ = self.store_errors.get_or_create(&StoreOpLabels { operation });
        }
    }

    /// One decided request: counted by mode, decision and rule, and timed by mode.
    pub fn request(&self, mode: Mode, decision: DecisionLabel, rule: &str, elapsed: Duration) {
        self.requests.get_or_create(&RequestLabels { mode, decision, rule: rule.to_string() }).inc();
        self.request_duration.get_or_create(&ModeLabels { mode }).observe(elapsed.as_secs_f64());
    }

    /// A scored request: its score, and each finding's reason code.
    pub fn risk(&self, assessment: &Assessment) {
        self.risk_score.observe(f64::from(assessment.score));
        for finding in &assessment.findings {
            self.risk_reasons.get_or_create(&ReasonLabels { reason: ReasonCode::of(finding.code) }).inc();
        }
    }

    pub fn challenge_shown(&self) {
        self.challenges_shown.inc();
    }

    /// A step-up attempt with `method` (a first-factor method is not a step-up: not counted).
    pub fn step_up(&self, method: AuthMethod, result: StepUpResult) {
        if let Some(method) = StepUpMethod::of(method) {
            self.stepup_attempts.get_or_create(&StepUpLabels { method, result }).inc();
        }
    }

    pub fn lockout(&self) {
        self.lockouts.inc();
    }

    pub fn sign_in(&self, result: SignInResult) {
        self.signins.get_or_create(&SignInLabels { result }).inc();
    }

    /// One store call: timed, and counted as an error when it failed.
    pub fn store_call(&self, operation: StoreOp, elapsed: Duration, failed: bool) {
        let labels = StoreOpLabels { operation };
        self.store_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if failed {
            self.store_errors.get_or_create(&labels).inc();
        }
    }

    /// A forward that failed through the client's doing (counted apart from upstream errors).
    pub fn client_error(&self, err: &ProxyError) {
        if let Some(kind) = ClientErrorKind::of(err) {
            self.client_errors.get_or_create(&ClientErrorLabels { kind }).inc();
        }
    }

    pub fn upstream_error(&self, err: &ProxyError) {
        self.upstream_errors.get_or_create(&UpstreamErrorLabels { kind: UpstreamErrorKind::of(err) }).inc();
    }

    /// Counts an accepted connection as open until the returned guard is dropped, unless `max`
    /// are open already (on every serving thread): then counts a refusal and returns None.
    pub fn connection_opened_within(self: &Arc<Self>, max: usize) -> Option<OpenConnection> {
        let before = self.open_connections.inc();
        if usize::try_from(before).unwrap_or(0) >= max {
            self.open_connections.dec();
            self.connections_refused.inc();
            return None;
        }
        Some(OpenConnection(self.clone()))
    }

    /// Counts an accepted connection as open until the returned guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.open_connections.inc();
        OpenConnection(self.clone())
    }

    /// A config in force from `at` (start-up).
    pub fn config_loaded(&self, at: UnixTime) {
        self.config_loaded_at.set(i64::try_from(at.0).unwrap_or(i64::MAX));
    }

    /// A reload: counted by result; a good one also sets the load time.
    pub fn config_reload(&self, result: ReloadResult, at: UnixTime) {
        self.config_reloads.get_or_create(&ReloadLabels { result }).inc();
        if result == ReloadResult::Success {
            self.config_loaded(at);
        }
    }

    /// A shadow rule's would-be decision.
    pub fn shadow_decision(&self, rule: &str, decision: DecisionLabel) {
        self.shadow_decisions.get_or_create(&ShadowLabels { rule: rule.to_string(), decision }).inc();
    }

    /// Sets each expiring rule's seconds to expiry as of `now`; rules gone from the config
    /// (or no longer expiring) lose their series.
    pub fn rule_expiries(&self, routes: &crate::policy::routes::RouteTable, now: UnixTime) {
        self.rule_expiry.clear();
        for r in &routes.rules {
            if let Some(e) = &r.rollout.expiry {
                self.rule_expiry.get_or_create(&RuleLabels { rule: r.name.clone() }).set(e.seconds_left(now));
            }
        }
    }

    /// The whole registry in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String fails only if an encoder does, which ours never do.
        let written = match format {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry),
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &self.registry),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

/// An open client connection, counted in `stepgate_open_connections` until dropped.
pub struct OpenConnection(SharedMetrics);

/// An idle HTTP/1.1 connection parked (only its socket held), counted until dropped.
pub struct ParkedConnection(SharedMetrics);

impl Metrics {
    pub fn connection_parked(self: &Arc<Self>) -> ParkedConnection {
        self.parked_connections.inc();
        ParkedConnection(self.clone())
    }
}

impl Drop for ParkedConnection {
    fn drop(&mut self) {
        self.0.parked_connections.dec();
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.dec();
    }
}
