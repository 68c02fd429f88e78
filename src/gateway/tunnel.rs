//! An open WebSocket stays bound to the proof that opened it.
//!
//! A tunnel opened for a signed-in user is watched: every [`RECHECK`] the request that opened
//! it is evaluated again, with the config in force and the session as the store has it now
//! (without counting as activity). The tunnel is closed as soon as that evaluation would no
//! longer forward the request: the user signed out (on any instance: on Redis the local cache
//! follows within a second), the session expired or was revoked, the rule's `max_age` lapsed,
//! or the rule now denies. A store that cannot answer closes it too (fail closed).
//!
//! A step-up renews the session id (`web::sessions::elevate`), so a tunnel opened before it
//! closes; WebSocket clients reconnect with the new cookie.

use super::identify::{identify_as, Touch};
use crate::audit::{self, Kind};
use crate::policy::decide::{decide_with_risk, Decision};
use crate::policy::normalize::NormalizedPath;
use crate::proxy::upgrade::CloseWhen;
use crate::risk::RiskVerdict;
use crate::session::SessionId;
use crate::state::SharedState;
use http::{HeaderMap, Method};
use std::net::IpAddr;
use std::time::Duration;

/// How often an open tunnel's proof is checked again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The request that opened a tunnel, as far as evaluating it again needs.
pub struct Opened {
    pub host: String,
    pub path: NormalizedPath,
    pub method: Method,
    /// The request's `Cookie` headers only: what identifies the session.
    pub cookies: HeaderMap,
    pub asserted: Option<String>,
    /// The session the tunnel was opened with.
    pub session: SessionId,
    /// The risk verdict at opening time (risk is not scored again).
    pub verdict: RiskVerdict,
    pub user: String,
    pub request_id: String,
    pub client_ip: IpAddr,
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
            Closed::SessionEnded => "session ended",
            Closed::NoLongerAllowed => "proof no longer satisfies the rule",
            Closed::StoreUnavailable => "store unavailable",
        }
    }
}

/// The future that resolves when the tunnel must close; audits why.
pub fn watch(state: SharedState, opened: Opened) -> CloseWhen {
    Box::pin(async move {
        let (rule, why) = loop {
            tokio::time::sleep(RECHECK).await;
            if let Some(closed) = still_allowed(&state, &opened).await {
                break closed;
            }
        };
        tracing::info!(request_id = %opened.request_id, reason = why.as_str(), "closing an upgraded connection");
        audit::emit(&audit::Record {
            kind: Kind::TunnelClosed,
            request_id: &opened.request_id,
            user: Some(&opened.user),
            client_ip: opened.client_ip,
            rule: Some(&rule),
            decision: "close",
            reason: why.as_str(),
            risk: None,
        });
    })
}

/// Evaluates the opening request again: None while it would still be forwarded, else the rule
/// and why not.
async fn still_allowed(state: &SharedState, o: &Opened) -> Option<(String, Closed)> {
    let live = state.live();
    let cfg = &live.config;
    let now = state.clock.now();
    let rule = cfg.routes.classify(&o.host, &o.path, &o.method);
    let name = rule.name.clone();
    let who = match identify_as(&*state.store, cfg, &o.cookies, o.asserted.clone(), now, Touch::No).await {
        Ok(w) => w,
        Err(_) => return Some((name, Closed::StoreUnavailable)),
    };
    let same_session = who.as_ref().and_then(|w| w.session.as_ref()).is_some_and(|(id, _)| *id == o.session);
    let Some(who) = who.filter(|_| same_session) else { return Some((name, Closed::SessionEnded)) };
    match decide_with_risk(&rule.action, Some(&who.proofs), now, &o.verdict) {
        Decision::Forward { .. } => None,
        _ => Some((name, Closed::NoLongerAllowed)),
    }
}
