//! What every evaluated request leaves behind, written in one place whichever way it came in:
//! the audit record of the decision (protected routes and refusals; public routes and the
//! gateway's pages are not audited), the metrics and the access line, and on the answer the
//! request id.

use crate::access_log::{self, AccessLine};
use crate::audit::{self, Asked, Kind};
use crate::body::Body;
use crate::metrics::labels::DecisionLabel;
pub use crate::metrics::labels::Mode;
use crate::pipeline::{Ctx, Evaluation, Outcome};
use crate::respond::X_REQUEST_ID;
use crate::state::Live;
use http::{HeaderValue, Response};
use std::time::Instant;

/// The audit record of a decision, and one per shadow rule's would-be decision. A public
/// route's forward is audited only when an expired rule was skipped on the way to it.
pub fn audit_decision(ctx: &Ctx, eval: &Evaluation<'_>) {
    audit_shadows(ctx, eval);
    if eval.public && matches!(eval.outcome, Outcome::Forward { .. }) && eval.expired.is_none() {
        return;
    }
    if matches!(eval.outcome, Outcome::GatewayPage | Outcome::MethodRefused) {
        return;
    }
    let reason = match &eval.outcome {
        // Which method's proof let the request through.
        Outcome::Forward { proof: Some(p) } => p.method.as_str(),
        other => other.cause().map_or("", |c| c.code()),
    };
    let reasons = eval.scored.assessment.reasons();
    audit::emit(&audit::Record {
        workload: eval.who.as_ref().and_then(|w| w.attrs.workload.as_deref()),
        client: eval.who.as_ref().and_then(|w| w.attrs.client.as_deref()),
        kind: Kind::Decision,
        request_id: &ctx.request_id,
        user: eval.user(),
        client_ip: ctx.client_ip,
        rule: eval.rule.map(|r| r.name.as_str()),
        decision: eval.outcome.label(),
        reason,
        risk: eval.rule.map(|_| (eval.scored.assessment.score, reasons.as_str())),
        request: Some(Asked { method: ctx.method.as_str(), host: &ctx.host, path: ctx.path.as_str() }),
        expired_rule: eval.expired.map(|r| r.name.as_str()),
    });
}

/// What each shadow rule would have decided: kind `shadow`, the shadow rule, its decision and cause.
fn audit_shadows(ctx: &Ctx, eval: &Evaluation<'_>) {
    for shadow in &eval.shadows {
        audit::emit(&audit::Record {
            workload: eval.who.as_ref().and_then(|w| w.attrs.workload.as_deref()),
            client: eval.who.as_ref().and_then(|w| w.attrs.client.as_deref()),
            kind: Kind::Shadow,
            request_id: &ctx.request_id,
            user: eval.user(),
            client_ip: ctx.client_ip,
            rule: Some(shadow.rule.name.as_str()),
            decision: shadow.outcome.label(),
            reason: shadow.outcome.cause().map_or("", |c| c.code()),
            risk: None,
            request: Some(Asked { method: ctx.method.as_str(), host: &ctx.host, path: ctx.path.as_str() }),
            expired_rule: None,
        });
    }
}

/// The decision's name in metrics and the access log.
pub fn decision_label(outcome: &Outcome) -> DecisionLabel {
    match outcome {
        Outcome::Forward { .. } => DecisionLabel::Forward,
        Outcome::SignIn { .. } => DecisionLabel::SignIn,
        Outcome::StepUp { .. } => DecisionLabel::Challenge,
        Outcome::Deny { .. } => DecisionLabel::Deny,
        Outcome::Unavailable => DecisionLabel::Unavailable,
        Outcome::GatewayPage => DecisionLabel::Page,
        Outcome::MethodRefused => DecisionLabel::BadRequest,
    }
}

/// The last phase of every evaluated request: the request id goes back to the client (the
/// app's own `X-Request-Id`, if it sent one, is replaced: the gateway's id is the one in its
/// logs); the request is counted and timed, its score observed, its access line written.
pub fn finish(
    ctx: &Ctx,
    eval: &Evaluation<'_>,
    mode: Mode,
    mut resp: Response<Body>,
    started: Instant,
) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
    let elapsed = started.elapsed();
    let decision = decision_label(&eval.outcome);
    let metrics = &ctx.state.metrics;
    metrics.request(mode, decision, eval.rule_name(), elapsed);
    for shadow in &eval.shadows {
        metrics.shadow_decision(&shadow.rule.name, decision_label(&shadow.outcome));
    }
    let scored = eval.rule.is_some_and(|r| ctx.live.config.risk.enabled || r.risk.window.is_some());
    if scored && !eval.public && eval.outcome != Outcome::Unavailable {
        metrics.risk(&eval.scored.assessment);
    }
    let line = AccessLine {
        request_id: &ctx.request_id,
        method: ctx.method.as_str(),
        host: &ctx.host,
        path: ctx.path.as_str(),
        query: ctx.query.as_deref(),
        status: resp.status().as_u16(),
        duration: elapsed,
        bytes: access_log::response_bytes(&resp),
        user_agent: Some(ctx.risk_ctx.user_agent.as_str()).filter(|ua| !ua.is_empty()),
        client_ip: ctx.client_ip,
        user: eval.user(),
        rule: eval.rule.map(|r| r.name.as_str()),
        decision,
        mode,
    };
    access_log::write(&ctx.live.config.access_log, &line);
    resp
}

/// What a request refused before it could be evaluated (CONNECT, a path or host that cannot
/// be normalized, a forward-auth question that cannot be read) leaves behind: counted as a bad
/// request, and an access line with what it asked for as it asked.
pub struct Refused<'a> {
    pub live: &'a Live,
    pub metrics: &'a crate::metrics::Metrics,
    pub request_id: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub user_agent: Option<&'a str>,
    pub client_ip: std::net::IpAddr,
    pub mode: Mode,
}

impl<'a> Refused<'a> {
    /// The refusal of the request in `ctx` (whose facts could be read).
    pub fn of(ctx: &'a Ctx, mode: Mode) -> Refused<'a> {
        Refused {
            live: &ctx.live,
            metrics: &ctx.state.metrics,
            request_id: &ctx.request_id,
            method: ctx.method.as_str(),
            host: &ctx.host,
            path: ctx.path.as_str(),
            user_agent: Some(ctx.risk_ctx.user_agent.as_str()).filter(|ua| !ua.is_empty()),
            client_ip: ctx.client_ip,
            mode,
        }
    }
}

pub fn finish_refused(r: &Refused<'_>, resp: Response<Body>, started: Instant) -> Response<Body> {
    let elapsed = started.elapsed();
    r.metrics.request(r.mode, DecisionLabel::BadRequest, "-", elapsed);
    let line = AccessLine {
        request_id: r.request_id,
        method: r.method,
        host: r.host,
        path: r.path,
        query: None,
        status: resp.status().as_u16(),
        duration: elapsed,
        bytes: access_log::response_bytes(&resp),
        user_agent: r.user_agent,
        client_ip: r.client_ip,
        user: None,
        rule: None,
        decision: DecisionLabel::BadRequest,
        mode: r.mode,
    };
    access_log::write(&r.live.config.access_log, &line);
    resp
}
