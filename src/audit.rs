//! Audit records: tracing events under the target `audit` with stable field names.
//! Never a secret: no password, code, recovery code, session id or cookie value.

use std::net::IpAddr;

/// What an audit record is about; serialized as the record's `kind` (snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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
    /// An open WebSocket closed because its proof ended (sign-out, expiry, max_age).
    TunnelClosed,
    /// `stepgate user remove`, `reset-factors` or `unlock`: what an administrator did to a user.
    UserAdmin,
    /// A shadow rule's would-be decision (the request was decided by the rules after it).
    Shadow,
    /// A config reload, applied or refused.
    ConfigReload,
    /// A request of a `bind = "transaction"` rule: kept, confirmed, forwarded or refused,
    /// with its digest and the rendered confirmation.
    Transaction,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::SignIn => "sign_in",
            Kind::SignOut => "sign_out",
            Kind::StepUp => "step_up",
            Kind::Enroll => "enroll",
            Kind::Lockout => "lockout",
            Kind::PossibleClone => "possible_clone",
            Kind::Revoke => "revoke",
            Kind::TunnelClosed => "tunnel_closed",
            Kind::UserAdmin => "user_admin",
            Kind::Shadow => "shadow",
            Kind::ConfigReload => "config_reload",
            Kind::Transaction => "transaction",
        }
    }
}

/// The request a record is about: what was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub method: &'a str,
    pub host: &'a str,
    /// The normalized path, never the query (it may hold secrets).
    pub path: &'a str,
}

/// One audit line.
pub struct Record<'a> {
    pub kind: Kind,
    pub request_id: &'a str,
    pub user: Option<&'a str>,
    pub client_ip: IpAddr,
    pub rule: Option<&'a str>,
    /// A fixed word (`forward`, `challenge`, `success`...): `'static`, so the set stays bounded.
    pub decision: &'static str,
    /// A fixed reason code or phrase; never built from request data.
    pub reason: &'static str,
    /// The risk score and its reason codes, on decisions.
    pub risk: Option<(u8, &'a str)>,
    /// The request the record is about (decisions, closed tunnels).
    pub request: Option<Asked<'a>>,
    /// On decisions: the expired rule that matched first and was skipped (a config name).
    pub expired_rule: Option<&'a str>,
    /// The workload the caller is, proved by a client certificate (SPIFFE ID or subject).
    pub workload: Option<&'a str>,
    /// A bearer token's client, as the token's issuer names it.
    pub client: Option<&'a str>,
}

static SINK: crate::log_line::Sink = crate::log_line::Sink::new();

/// Sends audit lines to `write` from now on (the binary installs its log writer at start-up).
/// Until a sink is installed, and if the operator turned audit off, records go nowhere.
pub fn install(write: crate::log_line::Write) {
    SINK.install(write);
}

/// What a config reload did, for its audit record.
pub struct Reload<'a> {
    /// The config file's SHA-256 (hex); None when it could not be read.
    pub sha256: Option<&'a str>,
    /// "applied" or "refused".
    pub result: &'static str,
    pub added: &'a [&'a str],
    pub removed: &'a [&'a str],
    /// Same name, different content.
    pub changed: &'a [&'a str],
}

/// The audit record of a reload (rule names come from the config, so the line stays bounded).
pub fn emit_reload(r: &Reload<'_>) {
    if SINK.is_installed() {
        SINK.send(&reload_line(r, std::time::SystemTime::now()));
    }
}

fn reload_line(r: &Reload<'_>, at: std::time::SystemTime) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        kind: Kind,
        decision: &'a str,
        config_sha256: Option<&'a str>,
        rules_added: &'a [&'a str],
        rules_removed: &'a [&'a str],
        rules_changed: &'a [&'a str],
    }
    let fields = Fields {
        kind: Kind::ConfigReload,
        decision: r.result,
        config_sha256: r.sha256,
        rules_added: r.added,
        rules_removed: r.removed,
        rules_changed: r.changed,
    };
    crate::log_line::render("audit", &fields, at, 512)
}

/// A transaction record (`bind = "transaction"`): what was confirmed, by its digest.
pub struct Transaction<'a> {
    pub request_id: &'a str,
    pub user: &'a str,
    pub client_ip: IpAddr,
    pub rule: &'a str,
    /// `kept`, `confirmed`, `forward`, `refused`.
    pub decision: &'static str,
    /// A fixed reason code.
    pub reason: &'static str,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub digest: &'a str,
    /// The rendered confirmation (request data, as the user saw it), if the rule has `confirm`.
    pub confirmation: Option<&'a str>,
}

pub fn emit_transaction(t: &Transaction<'_>) {
    if !SINK.is_installed() {
        return;
    }
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        kind: Kind,
        request_id: &'a str,
        user: &'a str,
        client_ip: IpAddr,
        rule: &'a str,
        decision: &'a str,
        reason: &'a str,
        method: &'a str,
        host: &'a str,
        path: &'a str,
        transaction: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        confirmation: Option<&'a str>,
    }
    let path = t.path.split('?').next().unwrap_or("");
    let fields = Fields {
        kind: Kind::Transaction,
        request_id: t.request_id,
        user: t.user,
        client_ip: t.client_ip.to_canonical(),
        rule: t.rule,
        decision: t.decision,
        reason: t.reason,
        method: t.method,
        host: t.host,
        path,
        transaction: t.digest,
        confirmation: t.confirmation,
    };
    SINK.send(&crate::log_line::render("audit", &fields, std::time::SystemTime::now(), 1024));
}

/// One audit line: this runs on every protected request.
pub fn emit(r: &Record<'_>) {
    if SINK.is_installed() {
        SINK.send(&line(r, std::time::SystemTime::now()));
    }
}

fn line(r: &Record<'_>, at: std::time::SystemTime) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        kind: Kind,
        request_id: &'a str,
        user: &'a str,
        client_ip: IpAddr,
        rule: &'a str,
        decision: &'a str,
        reason: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        risk_score: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        risk_reasons: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        method: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expired_rule: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        workload: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<&'a str>,
    }
    let fields = Fields {
        kind: r.kind,
        request_id: r.request_id,
        user: r.user.unwrap_or("-"),
        client_ip: r.client_ip.to_canonical(),
        rule: r.rule.unwrap_or("-"),
        decision: r.decision,
        reason: r.reason,
        risk_score: r.risk.map(|(s, _)| s),
        risk_reasons: r.risk.map(|(_, codes)| codes),
        method: r.request.map(|a| a.method),
        host: r.request.map(|a| a.host),
        path: r.request.map(|a| a.path),
        expired_rule: r.expired_rule,
        workload: r.workload,
        client: r.client,
    };
    crate::log_line::render("audit", &fields, at, 320)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_every_field_and_no_secret() {
        let r = Record {
            workload: None,
            client: None,
            kind: Kind::Decision,
            request_id: "0123abcd",
            user: Some("ann \"quoted\""),
            client_ip: "::ffff:192.0.2.7".parse().unwrap(),
            rule: Some("admin"),
            decision: "challenge",
            reason: "proof too weak or too old",
            risk: Some((40, "new_device,new_country")),
            request: Some(Asked { method: "POST", host: "app.example", path: "/transfer" }),
            expired_rule: None,
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_556_800_123_456);
        let bytes = line(&r, at);
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1, "exactly one line");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["timestamp"], "2025-12-01T02:40:00.123456Z");
        assert_eq!(v["target"], "audit");
        assert_eq!(v["level"], "INFO");
        let f = &v["fields"];
        assert_eq!(f["kind"], "decision");
        assert_eq!(f["user"], "ann \"quoted\"");
        assert_eq!(f["client_ip"], "192.0.2.7");
        assert_eq!(f["rule"], "admin");
        assert_eq!(f["decision"], "challenge");
        assert_eq!(f["risk_score"], 40);
        assert_eq!(f["risk_reasons"], "new_device,new_country");
        assert_eq!(
            (&f["method"], &f["host"], &f["path"]),
            (&"POST".into(), &"app.example".into(), &"/transfer".into())
        );

        let r = Record { user: None, rule: None, risk: None, request: None, ..r };
        let v: serde_json::Value = serde_json::from_slice(&line(&r, at)).unwrap();
        assert_eq!(v["fields"]["user"], "-");
        assert_eq!(v["fields"]["rule"], "-");
        assert!(v["fields"].get("risk_score").is_none());
        assert!(v["fields"].get("path").is_none());
    }
}
