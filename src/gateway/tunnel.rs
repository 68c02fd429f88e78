//! An open WebSocket stays bound to the proof that opened it.
//!
//! A tunnel opened for a signed-in user is watched: every [`RECHECK`] the request that opened
//! it is evaluated again, with the config in force and the session as the store has it now
//! (without counting as activity). The tunnel is closed as soon as that evaluation would no
//! longer forward the request: the user signed out (on any instance: on Redis the local cache
//! follows within a second), the session expired or was revoked, the rule's `max_age` lapsed,
//! or the rule now denies. A store that cannot answer closes it too (fail closed).
//!
//! A tunnel opened with a bearer token or a client certificate (no session) is watched the
//! same way: the token is verified again each time, so it closes when the token expires, the
//! issuer's keys no longer verify it, or the rule changes.
//!
//! A step-up renews the session id (`web::sessions::elevate`), so a tunnel opened before it
//! closes; WebSocket clients reconnect with the new cookie.

use crate::audit::{self, Kind};
use crate::pipeline::{evaluate, Ctx, Outcome, Pass};
use crate::proxy::upgrade::CloseWhen;
use crate::risk::RiskVerdict;
use crate::session::SessionId;
use std::time::Duration;

/// How often an open tunnel's proof is checked again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The request that opened a tunnel, as far as evaluating it again needs.
pub struct Opened {
    /// The opening request's facts (its cookies, client, path...).
    pub ctx: Ctx,
    /// The session the tunnel was opened with (None: a bearer token or client certificate).
    pub session: Option<SessionId>,
    /// The risk verdict at opening time (risk is not scored again).
    pub verdict: RiskVerdict,
    pub user: String,
}

/// Why an open tunnel was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    SessionEnded,
    NoLongerAllowed,
    StoreUnavailable,
}

impl Closed {
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::SessionEnded => "session_ended",
            Closed::NoLongerAllowed => "proof_no_longer_satisfies_rule",
            Closed::StoreUnavailable => "store_unavailable",
        }
    }
}

/// The future that resolves when the tunnel must close; audits why.
pub fn watch(opened: Opened) -> CloseWhen {
    Box::pin(async move {
        let (rule, why) = loop {
            tokio::time::sleep(RECHECK).await;
            if let Some(closed) = still_allowed(&opened).await {
                break closed;
            }
        };
        let o = &opened.ctx;
        tracing::info!(request_id = %o.request_id, reason = why.as_str(), "closing an upgraded connection");
        audit::emit(&audit::Record {
            workload: None,
            client: None,
            kind: Kind::TunnelClosed,
            request_id: &o.request_id,
            user: Some(&opened.user),
            client_ip: o.client_ip,
            rule: Some(&rule),
            decision: "close",
            reason: why.as_str(),
            risk: None,
            request: Some(audit::Asked { method: o.method.as_str(), host: &o.host, path: o.path.as_str() }),
            expired_rule: None,
        });
    })
}

/// Evaluates the opening request again, through the one pipeline: None while it would still
/// be forwarded, else the rule and why not.
async fn still_allowed(o: &Opened) -> Option<(String, Closed)> {
    let ctx = o.ctx.again_at(o.ctx.state.clock.now());
    let eval = evaluate(&ctx, Pass::Recheck(o.verdict)).await;
    let name = eval.rule_name().to_string();
    if eval.outcome == Outcome::Unavailable {
        return Some((name, Closed::StoreUnavailable));
    }
    let same = match (&o.session, eval.who.as_ref()) {
        (Some(opened), Some(w)) => w.session.as_ref().is_some_and(|(id, _)| id == opened),
        (None, Some(w)) => w.session.is_none() && w.user == o.user,
        (_, None) => false,
    };
    // A denial (an expired token is `invalid_token`) is the rule no longer allowing it.
    if !same && !matches!(eval.outcome, Outcome::Deny { .. }) {
        return Some((name, Closed::SessionEnded));
    }
    match eval.outcome {
        Outcome::Forward { .. } => None,
        _ => Some((name, Closed::NoLongerAllowed)),
    }
}
