//! Rolling rules out and retiring them: a rule's `mode` (enforce or shadow) and its expiry
//! with exit criteria (`expires`, `owner`, `ticket`, `reason`, `on_expiry`).
//!
//! A shadow rule is evaluated and recorded but never decides; an expired rule is skipped.
//! Both fall through to the rules after them. An expiring rule whose expiry would hand its
//! requests to a weaker rule is refused at load unless `on_expiry = "fall_through"` says so.

use crate::clock::UnixTime;
use crate::parse::ConfigError;
use crate::policy::raw::RawRule;
use crate::policy::routes::{Action, Requirement};

/// Whether a rule acts on requests or is only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    Shadow,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// When a rule stops applying, and its exit criteria.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The first second at which the rule no longer applies.
    pub at: UnixTime,
    /// As written in the config (`2027-03-31` or an RFC 3339 time).
    pub text: String,
    pub owner: Option<String>,
    pub ticket: Option<String>,
    pub reason: Option<String>,
    /// `on_expiry = "fall_through"`: a loosening expiry accepted on purpose.
    pub fall_through: bool,
}

impl Expiry {
    pub fn expired(&self, now: UnixTime) -> bool {
        now >= self.at
    }

    /// Seconds until expiry; negative once expired.
    pub fn seconds_left(&self, now: UnixTime) -> i64 {
        let at = i64::try_from(self.at.0).unwrap_or(i64::MAX);
        let now = i64::try_from(now.0).unwrap_or(i64::MAX);
        at.saturating_sub(now)
    }

    /// "owner ann, ticket SEC-1, reason ..." (the parts that are set).
    pub fn criteria(&self) -> String {
        let parts: Vec<String> = [("owner", &self.owner), ("ticket", &self.ticket), ("reason", &self.reason)]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
            .collect();
        parts.join(", ")
    }
}

/// A rule's mode and expiry, parsed from its `[[rule]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollout {
    pub mode: Mode,
    pub expiry: Option<Expiry>,
}

impl Rollout {
    pub fn is_shadow(&self) -> bool {
        self.mode == Mode::Shadow
    }
    pub fn expired(&self, now: UnixTime) -> bool {
        self.expiry.as_ref().is_some_and(|e| e.expired(now))
    }
    /// Whether the rule applies to every request it matches for good (enforced, never expiring):
    /// only such a rule makes a later one unreachable.
    pub fn permanent(&self) -> bool {
        self.mode == Mode::Enforce && self.expiry.is_none()
    }
}

/// Parses `mode`, `expires`, `owner`, `ticket`, `reason`, `on_expiry`; `prefix` is "rule 'x'.".
pub fn parse(prefix: &str, raw: &RawRule) -> Result<Rollout, ConfigError> {
    let key = |k: &str| format!("{prefix}{k}");
    let mode = match raw.mode.as_deref().map(str::trim) {
        None | Some("enforce") => Mode::Enforce,
        Some("shadow") => Mode::Shadow,
        Some(other) => {
            return Err(ConfigError::new(
                key("mode"),
                format!("unknown mode '{other}'; expected \"enforce\" or \"shadow\""),
            ))
        }
    };
    let text = |k: &str, v: &Option<String>| -> Result<Option<String>, ConfigError> {
        match v.as_deref().map(str::trim) {
            None => Ok(None),
            Some("") => Err(ConfigError::new(key(k), "empty; leave the key out or say something")),
            Some(s) if s.chars().count() > 200 => Err(ConfigError::new(key(k), "longer than 200 characters")),
            Some(s) => Ok(Some(s.to_string())),
        }
    };
    let (owner, ticket, reason) =
        (text("owner", &raw.owner)?, text("ticket", &raw.ticket)?, text("reason", &raw.reason)?);
    let fall_through = match raw.on_expiry.as_deref().map(str::trim) {
        None => false,
        Some("fall_through") => true,
        Some(other) => {
            return Err(ConfigError::new(
                key("on_expiry"),
                format!("unknown value '{other}'; the only one is \"fall_through\" (an expired rule is skipped)"),
            ))
        }
    };
    let Some(expires) = raw.expires.as_deref().map(str::trim) else {
        for (k, set) in [
            ("on_expiry", fall_through),
            ("owner", owner.is_some()),
            ("ticket", ticket.is_some()),
            ("reason", reason.is_some()),
        ] {
            if set {
                return Err(ConfigError::new(
                    key(k),
                    "only meaningful on an expiring rule; set expires = \"YYYY-MM-DD\" (or an RFC 3339 time) too",
                ));
            }
        }
        return Ok(Rollout { mode, expiry: None });
    };
    let at = parse_expiry(expires).ok_or_else(|| {
        ConfigError::new(
            key("expires"),
            format!("'{expires}' is neither a date (\"2027-03-31\", meaning through the end of that day UTC) nor an RFC 3339 time (\"2027-03-31T18:00:00Z\")"),
        )
    })?;
    let expiry = Expiry { at, text: expires.to_string(), owner, ticket, reason, fall_through };
    Ok(Rollout { mode, expiry: Some(expiry) })
}

/// `YYYY-MM-DD`: the rule applies through the end of that day (UTC), so it expires at the next
/// midnight UTC. An RFC 3339 time: it expires at that instant.
pub fn parse_expiry(text: &str) -> Option<UnixTime> {
    let secs = if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        day.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc().timestamp()
    } else {
        chrono::DateTime::parse_from_rfc3339(text).ok()?.timestamp()
    };
    u64::try_from(secs).ok().map(UnixTime)
}

/// Why handing requests from `this` to `instead` loosens protection (None: it does not).
pub fn loosens(this: &Action, instead: &Action) -> Option<String> {
    match (this, instead) {
        (_, Action::Deny) => None,
        (Action::Deny, Action::Require(r)) => {
            Some(format!("it denies, and what applies instead lets requests through ({r})"))
        }
        (Action::Require(a), Action::Require(b)) => requirement_loosens(a, b),
    }
}

fn requirement_loosens(a: &Requirement, b: &Requirement) -> Option<String> {
    if b.level < a.level {
        return Some(format!("what applies instead needs a lower level ({} instead of {})", b.level, a.level));
    }
    if let Some(age) = a.max_age {
        match b.max_age {
            None => return Some("what applies instead has no max_age".to_string()),
            Some(other) if other > age => {
                return Some("what applies instead accepts older proofs (a longer max_age)".to_string())
            }
            Some(_) => {}
        }
    }
    if let Some(allowed) = &a.allow {
        match &b.allow {
            None => return Some("what applies instead accepts any method (no allow list)".to_string()),
            Some(other) if other.iter().any(|m| !allowed.contains(m)) => {
                return Some("what applies instead allows methods this rule does not".to_string())
            }
            Some(_) => {}
        }
    }
    None
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
