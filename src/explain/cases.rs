//! The case file of `stepgate test-policy`: `[[case]]` entries, each a request and the decision
//! expected for it. Every case is checked before any runs; an error names the file, the case and
//! the key.

use super::Question;
use crate::clock::UnixTime;
use crate::config::Config;
use crate::parse::parse_duration;
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::risk::device::DeviceStatus;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// When a case happens if it does not say (`at`): Monday 2026-01-05 12:00:00 UTC. Fixed, so a
/// case file gives the same verdicts on every run.
pub const DEFAULT_AT: UnixTime = UnixTime(1_767_614_400);

/// The client address of a case that names none.
pub const DEFAULT_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The decision a case expects; the names are those of audit records and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Forward,
    Signin,
    Challenge,
    Deny,
    /// The URL cannot be normalized without guessing (the gateway answers 400).
    BadRequest,
    /// One of the gateway's own pages (`/.stepgate/...`).
    Page,
    /// `CONNECT` (405).
    MethodRefused,
}

impl Expect {
    pub fn label(self) -> &'static str {
        match self {
            Expect::Forward => "forward",
            Expect::Signin => "signin",
            Expect::Challenge => "challenge",
            Expect::Deny => "deny",
            Expect::BadRequest => "bad_request",
            Expect::Page => "page",
            Expect::MethodRefused => "method_refused",
        }
    }
}

/// One checked case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub question: Question,
    pub expect: Expect,
    pub expect_rule: Option<String>,
}

/// A case file that cannot be run: which file, which case, which key and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{message}", case.as_ref().map(|c| format!("case {c}: ")).unwrap_or_default())]
pub struct CaseFileError {
    pub file: String,
    /// `'name'`, or `#3` for a case without a name.
    pub case: Option<String>,
    pub message: String,
}

/// A case as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    method: Option<String>,
    url: String,
    user: Option<String>,
    groups: Option<toml::Value>,
    level: Option<Level>,
    proof_method: Option<AuthMethod>,
    proof_age: Option<String>,
    ip: Option<String>,
    at: Option<toml::Value>,
    device: Option<String>,
    expect: Expect,
    expect_rule: Option<String>,
}

/// Reads the case file's text (`file` names it in errors) for `cfg`, whose identity source
/// decides how a signed-in user proved it (a password, or the trusted proxy's header).
pub fn parse(file: &str, text: &str, cfg: &Config) -> Result<Vec<Case>, CaseFileError> {
    let fail = |case: Option<String>, message: String| CaseFileError { file: file.to_string(), case, message };
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| fail(None, e.to_string()))?;
    let entries = match table.remove("case") {
        Some(toml::Value::Array(entries)) => entries,
        Some(_) => return Err(fail(None, "case: write each case as a [[case]] table".into())),
        None => return Err(fail(None, "no [[case]] entries: a policy test needs at least one case".into())),
    };
    if let Some(key) = table.keys().next() {
        return Err(fail(None, format!("{key}: unknown key (the file holds only [[case]] entries)")));
    }
    let mut cases: Vec<Case> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let label = match entry.get("name").and_then(toml::Value::as_str) {
            Some(name) => format!("'{name}'"),
            None => format!("#{}", i + 1),
        };
        let raw: RawCase = entry.try_into().map_err(|e: toml::de::Error| fail(Some(label.clone()), one_line(&e)))?;
        if cases.iter().any(|c| c.name == raw.name) {
            return Err(fail(Some(label), "name: another case has this name".into()));
        }
        cases.push(check(raw, cfg).map_err(|message| fail(Some(label), message))?);
    }
    Ok(cases)
}

/// A serde error on one line (toml's own carry no position for a single table).
fn one_line(e: &toml::de::Error) -> String {
    e.message().trim().replace('\n', " ")
}

fn check(raw: RawCase, cfg: &Config) -> Result<Case, String> {
    let groups = match &raw.groups {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => {
            let names: Option<Vec<String>> = a.iter().map(|v| v.as_str().map(str::to_string)).collect();
            names.ok_or("groups: a list of group names, e.g. groups = [\"finance\"]")?
        }
        Some(_) => return Err("groups: a list of group names, e.g. groups = [\"finance\"]".to_string()),
    };
    if !groups.is_empty() && raw.user.is_none() {
        return Err("groups: groups need a signed-in user: add user = \"...\"".to_string());
    }
    let method = raw.method.as_deref().unwrap_or("GET");
    let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("method: '{method}' is not an HTTP method"))?;
    let ip = match &raw.ip {
        None => DEFAULT_IP,
        Some(s) => s.parse().map_err(|_| format!("ip: '{s}' is not an IP address"))?,
    };
    let at = match &raw.at {
        None => DEFAULT_AT,
        Some(v) => parse_at(v)?,
    };
    let device = match raw.device.as_deref().unwrap_or("known") {
        "known" => DeviceStatus::Known,
        "new" => DeviceStatus::Unknown,
        "other-user" => DeviceStatus::OtherUser,
        other => return Err(format!("device: '{other}': expected known, new or other-user")),
    };
    let age = match &raw.proof_age {
        None => Duration::ZERO,
        Some(s) => parse_duration("proof_age", s).map_err(|e| e.to_string())?,
    };
    let proofs = match &raw.user {
        None => {
            let stated = raw.proof_method.map(|_| "proof_method").or(raw.proof_age.as_ref().map(|_| "proof_age"));
            let stated = stated.or(raw.level.filter(|l| *l != Level::None).map(|_| "level"));
            if let Some(key) = stated {
                return Err(format!("{key}: a proof needs a signed-in user: add user = \"...\""));
            }
            Vec::new()
        }
        Some(_) => {
            let signed_in = if cfg.identity_is_builtin() { AuthMethod::Password } else { AuthMethod::Header };
            proofs(raw.level, raw.proof_method, signed_in, at, age)?
        }
    };
    let question = Question {
        method,
        url: raw.url,
        user: raw.user,
        ip,
        at,
        device,
        proofs,
        groups,
        bearer_claims: None,
        workload: None,
    };
    Ok(Case { name: raw.name, question, expect: raw.expect, expect_rule: raw.expect_rule })
}

/// `at`: unix seconds, or RFC 3339 quoted or as a TOML date-time.
fn parse_at(v: &toml::Value) -> Result<UnixTime, String> {
    let text = match v {
        toml::Value::Integer(secs) => {
            return u64::try_from(*secs).map(UnixTime).map_err(|_| format!("at: {secs} is before 1970"));
        }
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => return Err("at: expected unix seconds or RFC 3339 such as \"2026-01-05T12:00:00Z\"".to_string()),
    };
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|d| UnixTime(d.timestamp().max(0) as u64))
        .or_else(|_| text.parse::<u64>().map(UnixTime))
        .map_err(|_| {
            format!(
                "at: '{text}': expected unix seconds or RFC 3339 such as \"2026-01-05T12:00:00Z\" (with its offset)"
            )
        })
}

/// The levels a method can prove.
fn levels_of(method: AuthMethod) -> &'static [Level] {
    match method {
        AuthMethod::Password | AuthMethod::Header => &[Level::Aal1],
        AuthMethod::Totp | AuthMethod::Recovery => &[Level::Aal2],
        // Without user verification a WebAuthn assertion is aal2.
        AuthMethod::Webauthn => &[Level::Aal3, Level::Aal2],
        // What the IdP or token issuer proved: any level its acr/amr map to.
        AuthMethod::Idp | AuthMethod::Bearer => &[Level::Aal1, Level::Aal2, Level::Aal3],
        AuthMethod::Certificate => &[Level::Aal1],
    }
}

/// The session's proofs, all made `age` before `at`: the sign-in (`signed_in`) and, for a
/// stronger level or another method, the step-up.
fn proofs(
    level: Option<Level>,
    method: Option<AuthMethod>,
    signed_in: AuthMethod,
    at: UnixTime,
    age: Duration,
) -> Result<Vec<Proof>, String> {
    let when = UnixTime(at.0.saturating_sub(age.as_secs()));
    let method = match (level, method) {
        (Some(Level::None), _) => {
            return Err("level: \"none\" means nobody is signed in: remove user (or level)".to_string());
        }
        (_, Some(m)) => m,
        (Some(Level::Aal1) | None, None) => signed_in,
        (Some(Level::Aal2), None) => AuthMethod::Totp,
        (Some(Level::Aal3), None) => AuthMethod::Webauthn,
    };
    let possible = levels_of(method);
    let level = level.unwrap_or(possible[0]);
    if !possible.contains(&level) {
        let names: Vec<&str> = possible.iter().map(|l| l.as_str()).collect();
        return Err(format!("level: a {method} proof is {}, not {level}", names.join(" or ")));
    }
    let sign_in = Proof { level: Level::Aal1, method: signed_in, auth_time: when };
    if method == signed_in {
        return Ok(vec![sign_in]);
    }
    Ok(vec![sign_in, Proof { level, method, auth_time: when }])
}

#[cfg(test)]
#[path = "cases_tests.rs"]
mod tests;
