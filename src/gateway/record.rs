//! What every evaluated request leaves behind, written in one place whichever way it came in:
//! the audit record of the decision (protected routes and refusals; public routes and the
//! gateway's pages are not audited), and on the answer the request id.

use crate::audit::{self, Asked, Kind};
use crate::body::Body;
use crate::pipeline::{Ctx, Evaluation, Outcome};
use crate::respond::X_REQUEST_ID;
use http::{HeaderValue, Response};
use std::time::Instant;

/// How the request reached the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The gateway proxies the request.
    Proxy,
    /// A front proxy asks about it (`/.stepgate/auth`).
    ForwardAuth,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Proxy => "proxy",
            Mode::ForwardAuth => "forward_auth",
        }
    }
}

/// The audit record of a decision.
pub fn audit_decision(ctx: &Ctx, eval: &Evaluation<'_>) {
    if eval.public && matches!(eval.outcome, Outcome::Forward { .. }) {
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
        kind: Kind::Decision,
        request_id: &ctx.request_id,
        user: eval.user(),
        client_ip: ctx.client_ip,
        rule: eval.rule.map(|r| r.name.as_str()),
        decision: eval.outcome.label(),
        reason,
        risk: eval.rule.map(|_| (eval.scored.assessment.score, reasons.as_str())),
        request: Some(Asked { method: ctx.method.as_str(), host: &ctx.host, path: ctx.path.as_str() }),
    });
}

/// The last phase of every request: the request id goes back to the client (the app's own
/// `X-Request-Id`, if it sent one, is replaced: the gateway's id is the one in its logs).
pub fn finish(
    ctx: &Ctx,
    _eval: &Evaluation<'_>,
    _mode: Mode,
    mut resp: Response<Body>,
    _started: Instant,
) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
    resp
}
