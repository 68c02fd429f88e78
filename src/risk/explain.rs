//! `stepgate explain`: a dry run of the policy for one request, without a server. It prints
//! the matched rule, each signal's points and reason, the score against the thresholds, and the
//! decision, exactly as the gateway computes them (same `classify`, `assess`, `verdict`,
//! `decide_with_risk`).

use super::device::DeviceStatus;
use super::history::RiskHistory;
use super::{assess, verdict, Counts, Facts};
use crate::clock::UnixTime;
use crate::config::Config;
use crate::gateway::route::{route, Routed};
use crate::policy::decide::{decide_with_risk, effective_requirement, Decision};
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::policy::normalize::{normalize_host, normalize_path};
use crate::policy::routes::Action;
use std::fmt::Write;
use std::net::IpAddr;

/// The request to explain.
#[derive(Debug, Clone)]
pub struct Question {
    pub method: http::Method,
    pub url: String,
    /// Signed in (with a password, at `at`) as this user; None: nobody signed in.
    pub user: Option<String>,
    pub ip: IpAddr,
    pub at: UnixTime,
    pub device: DeviceStatus,
}

/// Explains `q` under `cfg`; `history` is the user's risk history (empty when unknown).
pub fn explain(cfg: &Config, q: &Question, history: &RiskHistory) -> Result<String, String> {
    let uri: http::Uri = q.url.parse().map_err(|e| format!("--url '{}': {e}", q.url))?;
    let host = uri.host().map(str::to_string).unwrap_or_else(|| cfg.public.host.clone());
    let host = normalize_host(&host).ok_or_else(|| format!("--url '{}': not a valid host", q.url))?;
    let mut out = String::new();
    let when = chrono::DateTime::from_timestamp(q.at.0 as i64, 0).map(|d| d.to_rfc3339()).unwrap_or_default();
    let _ = writeln!(out, "request   {} {}{}", q.method, host, uri.path());
    let _ = writeln!(out, "from      {} at {when}", q.ip);
    let path = match normalize_path(uri.path()) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(out, "decision  400 Bad request: {e}");
            return Ok(out);
        }
    };
    // The same routing phase as the gateway, in the same order.
    let rule = match route(cfg, &host, &path, &q.method, q.ip) {
        Routed::MethodRefused => {
            let _ = writeln!(out, "decision  405 Method not allowed: the gateway opens no tunnels");
            return Ok(out);
        }
        Routed::DeniedNetwork(net) => {
            let _ = writeln!(out, "decision  deny (403): {} is in risk.location.deny_networks ({net})", q.ip);
            return Ok(out);
        }
        Routed::GatewayPage => {
            let _ = writeln!(out, "decision  a gateway page (/.stepgate/...): served by stepgate, never forwarded");
            return Ok(out);
        }
        Routed::Rule(rule) => rule,
    };
    let _ = writeln!(out, "rule      {} ({})", rule.name, rule.action);
    if let Some(w) = &rule.risk.window {
        let _ = writeln!(out, "hours     {}", w.text);
    }
    let proofs =
        q.user.as_ref().map(|_| vec![Proof { level: Level::Aal1, method: AuthMethod::Password, auth_time: q.at }]);
    match &q.user {
        Some(u) => {
            let device = match q.device {
                DeviceStatus::Known => "known",
                DeviceStatus::Unknown => "new",
                DeviceStatus::OtherUser => "issued to another user",
                DeviceStatus::Tampered => "with a forged cookie",
            };
            let _ = writeln!(out, "user      {u}, signed in with a password just now, on a {device} device");
        }
        None => {
            let _ = writeln!(out, "user      nobody signed in");
        }
    }
    let public = matches!(&rule.action, Action::Require(r) if r.level == Level::None);
    if public {
        let _ = writeln!(out, "signals   none: public routes are not scored");
        let _ = writeln!(out, "decision  forward");
        return Ok(out);
    }
    let geo = cfg.risk.location.as_ref().map(|l| l.geo.lookup(q.ip)).unwrap_or_default();
    if let Some(l) = &cfg.risk.location {
        if l.geo.is_empty() {
            let _ = writeln!(out, "geoip     no database loaded: location signals other than networks are off");
        } else {
            let _ = writeln!(
                out,
                "geoip     country {} city {} asn {} tor {} anonymous {} hosting {}",
                geo.country.as_deref().unwrap_or("-"),
                geo.city.as_deref().unwrap_or("-"),
                geo.asn.map_or("-".into(), |a| a.to_string()),
                geo.tor,
                geo.anonymous,
                geo.hosting
            );
        }
    }
    let facts = Facts {
        now: q.at,
        ip: q.ip,
        user_agent: "",
        geo: &geo,
        device: q.user.as_ref().and(cfg.risk.device.as_ref()).map(|_| q.device.clone()),
        history,
        counts: Counts { recent_requests: 1, failed_challenges: 0 },
        proof_context: None,
    };
    let assessment = assess(&cfg.risk, rule.risk.window.as_ref(), &facts);
    let v = verdict(&cfg.risk, &rule.risk, &assessment);
    if assessment.findings.is_empty() {
        let _ = writeln!(out, "signals   none");
    } else {
        let _ = writeln!(out, "signals");
        for f in &assessment.findings {
            let _ = writeln!(out, "  {:>+4}  {:<28} {}", f.points, f.code, f.detail);
        }
    }
    let step_up_at = rule.risk.step_up_at.unwrap_or(cfg.risk.step_up_at);
    let deny_at = rule.risk.deny_at.unwrap_or(cfg.risk.deny_at);
    let _ = writeln!(out, "score     {} / 100 (step_up_at {step_up_at}, deny_at {deny_at})", assessment.score);
    if let (Some(Action::Require(raised)), Some(_)) = (effective_requirement(&rule.action, &v), v.raise) {
        let _ = writeln!(out, "effect    the rule's requirement becomes: {raised}");
    }
    if let Some(code) = assessment.blocked_by {
        let _ = writeln!(out, "effect    {code} blocks the request whatever the score");
    }
    let decision = decide_with_risk(&rule.action, proofs.as_deref(), q.at, &v);
    let line = match decision {
        Decision::Forward { .. } => "forward to the upstream".to_string(),
        Decision::SignIn { need } => format!("sign in first (then: {need})"),
        Decision::StepUp { need } => format!("challenge: step up to {need}"),
        Decision::Deny { reason } => format!("deny (403): {reason}"),
    };
    let _ = writeln!(out, "decision  {line}");
    Ok(out)
}

/// Parses `--at`: unix seconds, or RFC 3339 (`2026-11-23T12:00:00Z`).
pub fn parse_time(s: &str) -> Result<UnixTime, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(UnixTime(secs));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| UnixTime(d.timestamp().max(0) as u64))
        .map_err(|_| format!("--at '{s}': expected unix seconds or RFC 3339 such as 2026-11-23T12:00:00Z"))
}

/// Parses `--device`.
pub fn parse_device(s: &str) -> Result<DeviceStatus, String> {
    match s {
        "known" => Ok(DeviceStatus::Known),
        "new" => Ok(DeviceStatus::Unknown),
        "other-user" => Ok(DeviceStatus::OtherUser),
        _ => Err(format!("--device '{s}': expected known, new or other-user")),
    }
}
