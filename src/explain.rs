//! `stepgate explain`: a dry run of the policy for one request, without a server. The request
//! goes through the gateway's own `pipeline::evaluate` against a store that lives in memory,
//! seeded with what the question says (a session signed in with a password at `--at`, the
//! user's risk history, a device cookie); it prints the matched rule, each signal's points and
//! reason, the score against the thresholds, and the decision. `stepgate test-policy` runs a
//! file of such requests in the same sandbox ([`cases`], [`suite`]).

pub mod cases;
pub mod suite;

use crate::clock::{ManualClock, UnixTime};
use crate::config::{Config, Identity};
use crate::pipeline::{evaluate, Conn, Ctx, Outcome, Pass, RiskRequest};
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::policy::normalize::{normalize_host, normalize_path};
use crate::risk::device::{self, DeviceStatus};
use crate::risk::history::RiskHistory;
use crate::session::{Session, SessionId};
use crate::state::{AppState, Live};
use crate::store::embedded::EmbeddedStore;
use crate::store::Store;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

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
    /// The proofs the user's session holds, oldest sign-in first; empty: one password proof
    /// made at `at`. The session was last active at `at` whatever their age.
    pub proofs: Vec<Proof>,
    /// The signed-in user's groups (`--groups a,b`; a case's `groups`).
    pub groups: Vec<String>,
    /// `--bearer-claims`: an access token's claims, taken as verified (needs `[bearer]`).
    pub bearer_claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// `--workload`: a client certificate naming this workload (SPIFFE ID or subject), issued at `at`.
    pub workload: Option<String>,
}

/// Explains `q` under `cfg`; `history` is the user's risk history (empty when unknown).
pub async fn explain(cfg: &Config, q: &Question, history: &RiskHistory) -> Result<String, String> {
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
    let mut ctx = sandbox(cfg, q, history).await?;
    ctx.host = host;
    ctx.path = path;
    ctx.query = uri.query().map(str::to_string);
    let ctx = ctx;
    let eval = evaluate(&ctx, Pass::Request).await;
    let rule = match (&eval.outcome, eval.rule) {
        (Outcome::MethodRefused, _) => {
            let _ = writeln!(out, "decision  405 Method not allowed: the gateway opens no tunnels");
            return Ok(out);
        }
        (Outcome::GatewayPage, _) => {
            let _ = writeln!(out, "decision  a gateway page (/.stepgate/...): served by stepgate, never forwarded");
            return Ok(out);
        }
        (_, None) => {
            let net = cfg.risk.location.as_ref().and_then(|l| crate::risk::location::denied_network(l, q.ip));
            let net = net.map_or(String::new(), |n| format!(" ({n})"));
            let _ = writeln!(out, "decision  deny (403): {} is in risk.location.deny_networks{net}", q.ip);
            return Ok(out);
        }
        (_, Some(rule)) => rule,
    };
    if let Some(expired) = eval.expired {
        let when = expired.rollout.expiry.as_ref().map_or("", |e| e.text.as_str());
        let _ = writeln!(out, "expired   rule {} (expired {when}) matched first and was skipped", expired.name);
    }
    for s in &eval.shadows {
        let cause = s.outcome.cause().map_or("", |c| c.code());
        let _ = writeln!(
            out,
            "shadow    rule {} ({}) would decide: {} {cause} (not acted on)",
            s.rule.name,
            s.rule.action,
            s.outcome.label()
        );
    }
    let _ = writeln!(out, "rule      {} ({})", rule.name, rule.action);
    if let Some(w) = &rule.risk.window {
        let _ = writeln!(out, "hours     {}", w.text);
    }
    match (&eval.who, &q.bearer_claims, &q.workload) {
        (Some(w), Some(_), _) => {
            let level = w.proofs.first().map_or("-", |p| p.level.as_str());
            let _ = writeln!(
                out,
                "token     subject {}, client {}, level {level}, scopes {}",
                w.user,
                w.attrs.client.as_deref().unwrap_or("-"),
                if w.attrs.scopes.is_empty() { "-".to_string() } else { w.attrs.scopes.join(" ") }
            );
        }
        (Some(w), None, Some(_)) => {
            let _ = writeln!(out, "workload  {} (client certificate, aal1)", w.user);
        }
        _ => {}
    }
    match &q.user {
        _ if q.bearer_claims.is_some() || q.workload.is_some() => {}
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
    if eval.public {
        let _ = writeln!(out, "signals   none: public routes are not scored");
        let _ = writeln!(out, "decision  forward");
        return Ok(out);
    }
    if let Some(l) = &cfg.risk.location {
        let geo = &eval.scored.geo;
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
    let assessment = &eval.scored.assessment;
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
    if let (Some(raised), Some(_)) = (&eval.need, eval.scored.verdict.raise) {
        let _ = writeln!(
            out,
            "effect    the rule's requirement becomes: {}",
            crate::policy::routes::Action::Require(raised.clone())
        );
    }
    if let Some(code) = assessment.blocked_by {
        let _ = writeln!(out, "effect    {code} blocks the request whatever the score");
    }
    let line = match &eval.outcome {
        Outcome::Forward { .. } => "forward to the upstream".to_string(),
        Outcome::SignIn { need } => format!("sign in first (then: {need})"),
        Outcome::StepUp { need, .. } if q.bearer_claims.is_some() => {
            let acr = cfg
                .bearer
                .as_ref()
                .map_or_else(|| need.level.as_str().to_string(), |b| crate::bearer::acr_values(b, need.level));
            let age = need.max_age.map_or(String::new(), |a| format!(", max_age={}", a.as_secs()));
            format!("401 insufficient_user_authentication (RFC 9470: acr_values=\"{acr}\"{age})")
        }
        Outcome::StepUp { need, .. } => format!("challenge: step up to {need}"),
        Outcome::Deny { cause: c @ crate::policy::cause::Cause::InvalidToken } => format!("401: {}", c.code()),
        Outcome::Deny { cause } => format!("deny (403): {}", cause.code()),
        Outcome::Unavailable => "503: the store cannot answer".to_string(),
        // Printed above.
        Outcome::GatewayPage | Outcome::MethodRefused => return Ok(out),
    };
    let _ = writeln!(out, "decision  {line}");
    Ok(out)
}

/// A gateway of its own for the question: `cfg`, a clock stopped at `--at`, and an in-memory
/// store holding the user's session (`q.proofs`, or a password proof at `--at`), history and
/// device. The context asks for `/` on the public host; set `host`, `path`, `query` for another
/// request. The bench evaluates requests in it too, and `test-policy` each case.
pub async fn sandbox(cfg: &Config, q: &Question, history: &RiskHistory) -> Result<Ctx, String> {
    sandbox_on(Arc::new(Live::new(cfg.clone())?), q, history).await
}

/// [`sandbox`] on a `Live` already built from the config, for many questions in a row.
pub async fn sandbox_on(live: Arc<Live>, q: &Question, history: &RiskHistory) -> Result<Ctx, String> {
    let store = Arc::new(EmbeddedStore::in_memory().map_err(|e| e.to_string())?);
    let clock = Arc::new(ManualClock::new(q.at));
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let state = Arc::new(AppState::sharing(live.clone(), store.clone(), clock, metrics));
    let cfg = &live.config;
    let mut history = history.clone();
    let mut session_cookie = None;
    let mut device_cookie = None;
    if let Some(user) = &q.user {
        let signed_in = Proof { level: Level::Aal1, method: AuthMethod::Password, auth_time: q.at };
        let mut proofs = q.proofs.iter().cloned();
        let mut session = Session::new(user, proofs.next().unwrap_or(signed_in));
        proofs.for_each(|p| session.record(p));
        session.last_seen = q.at;
        if !q.groups.is_empty() {
            let sub = user.clone();
            session.idp = Some(crate::session::IdpFacts { sub, groups: q.groups.clone(), ..Default::default() });
        }
        let id = SessionId::generate();
        let expires = session.expires_at(cfg.sessions.idle_timeout, cfg.sessions.absolute_timeout);
        store.put_session(&id.key(), &session, expires).await.map_err(|e| e.to_string())?;
        session_cookie = Some(id.as_cookie_value().to_string());
        let id = device::new_device_id();
        device_cookie = match q.device {
            DeviceStatus::Known => {
                history.remember_device(&id, q.at);
                Some(device::encode(&live.secretbox, &id, user))
            }
            DeviceStatus::OtherUser => Some(device::encode(&live.secretbox, &id, &format!("not-{user}"))),
            DeviceStatus::Tampered => Some("forged".to_string()),
            DeviceStatus::Unknown => None,
        };
        store.put_risk_history(user, &history).await.map_err(|e| e.to_string())?;
    }
    let asserted = match (&cfg.identity, &q.user) {
        (Identity::Header { .. }, Some(u)) => Some(u.clone()),
        _ => None,
    };
    // `--groups` with a header identity: the groups a trusted proxy would assert.
    let asserted_groups = match &cfg.identity {
        Identity::Header { groups_header: Some(_), .. } if asserted.is_some() => q.groups.clone(),
        _ => Vec::new(),
    };
    Ok(Ctx {
        state,
        live: live.clone(),
        now: q.at,
        request_id: "explain".to_string(),
        conn: Arc::new(Conn::plain(SocketAddr::new(q.ip, 0))),
        peer_trusted: false,
        client_ip: q.ip,
        json: true,
        navigation: false,
        method: q.method.clone(),
        host: cfg.public.host.clone(),
        path: normalize_path("/").map_err(|e| e.to_string())?,
        query: None,
        asserted,
        asserted_groups,
        session_cookie,
        bearer: q.bearer_claims.clone().map(crate::bearer::Presented::DryRunClaims),
        client_cert: q
            .workload
            .clone()
            .map(|id| crate::workload::Presented::DryRun(crate::workload::Workload { id, issued_at: q.at })),
        risk_ctx: RiskRequest {
            user_agent: String::new(),
            device_cookie: if cfg.risk.enabled { device_cookie } else { None },
        },
    })
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
