//! Audit records: tracing events under the target `audit` with stable field names.
//! Never a secret: no password, code, recovery code, session id or cookie value.

use std::net::IpAddr;

/// What an audit record is about.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Decision,
    SignIn,
    SignOut,
    StepUp,
    Enroll,
    Lockout,
    /// An authenticator whose signature counter went backwards: possibly cloned.
    PossibleClone,
    /// A factor removed.
    Revoke,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::SignIn => "signin",
            Kind::SignOut => "signout",
            Kind::StepUp => "stepup",
            Kind::Enroll => "enroll",
            Kind::Lockout => "lockout",
            Kind::PossibleClone => "possible_clone",
            Kind::Revoke => "revoke",
        }
    }
}

/// One audit line.
pub struct Record<'a> {
    pub kind: Kind,
    pub request_id: &'a str,
    pub user: Option<&'a str>,
    pub client_ip: IpAddr,
    pub rule: Option<&'a str>,
    pub decision: &'a str,
    pub reason: &'a str,
    /// The risk score and its reason codes, on decisions.
    pub risk: Option<(u8, &'a str)>,
}

pub fn emit(r: &Record<'_>) {
    tracing::info!(
        target: "audit",
        kind = r.kind.as_str(),
        request_id = r.request_id,
        user = r.user.unwrap_or("-"),
        client_ip = %r.client_ip,
        rule = r.rule.unwrap_or("-"),
        decision = r.decision,
        reason = r.reason,
        risk_score = r.risk.map(|(s, _)| s),
        risk_reasons = r.risk.map(|(_, codes)| codes),
    );
}
