//! The risk scorer: small signals (device, location, time, behaviour) each add points with a
//! reason code; the total, clamped to 0–100, raises the level a rule requires at
//! `risk.step_up_at` and blocks the request at `risk.deny_at`.
//!
//! `assess` is pure: the facts are gathered beforehand (see `gateway::risk`), so a score can be
//! explained (`stepgate explain`) and tested as a table.

pub mod behaviour;
pub mod config;
pub mod device;
pub mod geo;
pub mod history;
pub mod location;
pub mod time;

use crate::clock::UnixTime;
use config::RiskConfig;
use device::DeviceStatus;
use geo::GeoFacts;
use history::RiskHistory;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::Duration;
use time::TimeWindow;

/// What the risk score does to a rule, settled before deciding (see `gateway::risk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RiskVerdict {
    /// The score reached `deny_at`, or a finding blocks outright.
    pub deny: bool,
    /// The score reached `step_up_at`: the level rises one step and `max_age` shortens.
    pub raise: Option<Raise>,
    /// The context changed too much since the last proof: only sign-in proofs count.
    pub distrust_elevation: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raise {
    /// Raise the level one step (aal1 → aal2 → aal3); false: only shorten `max_age`.
    pub level: bool,
    pub max_age: Duration,
}

/// What a rule says about risk: its allowed hours and days, and its own thresholds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleRisk {
    pub window: Option<TimeWindow>,
    pub step_up_at: Option<u8>,
    pub deny_at: Option<u8>,
}

/// One reason a request is more (or less) risky.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable, upper-case: what dashboards and the audit log key on.
    pub code: &'static str,
    pub points: i32,
    /// For people: what was seen.
    pub detail: String,
}

impl Finding {
    pub fn new(code: &'static str, points: i32, detail: impl Into<String>) -> Finding {
        Finding { code, points, detail: detail.into() }
    }
}

/// Every reason code a [`Finding`] (or `Assessment::blocked_by`) can carry: metrics count
/// findings by these, so the set stays closed (a test reads the signals' sources for codes).
pub const REASON_CODES: &[&str] = &[
    "NET_DENIED",
    "NET_TRUSTED",
    "GEO_TOR",
    "GEO_ANONYMOUS",
    "GEO_HOSTING",
    "GEO_NEW_COUNTRY",
    "GEO_IMPOSSIBLE_TRAVEL",
    "DEVICE_UNKNOWN",
    "DEVICE_OTHER_USER",
    "DEVICE_TAMPERED",
    "BEHAVIOUR_BURST",
    "BEHAVIOUR_FAILED_CHALLENGES",
    "CONTEXT_IP_CHANGED",
    "CONTEXT_UA_CHANGED",
    "CONTEXT_COUNTRY_CHANGED",
    "TIME_OUTSIDE_HOURS",
];

/// The context a proof was made in, kept on the session to notice a change since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofContext {
    pub ip: IpAddr,
    /// A short hash of the User-Agent (the string itself is not kept).
    pub user_agent: String,
    pub country: Option<String>,
}

pub fn user_agent_hash(ua: &str) -> String {
    hex::encode(&Sha256::digest(ua.as_bytes())[..8])
}

/// Counts the behaviour signal needs, read from the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Protected requests of this session in the sliding window, this one included.
    pub recent_requests: u64,
    /// Failed step-up attempts of this user not yet cleared by a success.
    pub failed_challenges: u64,
}

/// Everything the scorer looks at for one request.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub now: UnixTime,
    pub ip: IpAddr,
    pub user_agent: &'a str,
    pub geo: &'a GeoFacts,
    /// None: nobody signed in, or the device signal is off.
    pub device: Option<DeviceStatus>,
    pub history: &'a RiskHistory,
    pub counts: Counts,
    /// The context of the session's latest proof, if any.
    pub proof_context: Option<&'a ProofContext>,
}

/// The scorer's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    /// 0–100.
    pub score: u8,
    pub findings: Vec<Finding>,
    /// A finding that blocks outright, whatever the score (deny list, hours with "deny").
    pub blocked_by: Option<&'static str>,
    /// The context changed so much since the last proof that step-up proofs no longer count.
    pub distrust_elevation: bool,
}

impl Assessment {
    /// The reason codes, comma-separated, for headers and audit lines.
    pub fn reasons(&self) -> String {
        self.findings.iter().map(|f| f.code).collect::<Vec<_>>().join(",")
    }
}

/// Scores a request. `window` is the matched rule's time window, if it has one.
pub fn assess(cfg: &RiskConfig, window: Option<&time::TimeWindow>, facts: &Facts<'_>) -> Assessment {
    let mut findings = Vec::new();
    let mut blocked_by = None;
    if let Some(rules) = &cfg.location {
        if location::assess(rules, facts, &mut findings) {
            blocked_by = Some("NET_DENIED");
        }
    }
    if time::assess(&cfg.time, window, facts.now, &mut findings) && blocked_by.is_none() {
        blocked_by = Some("TIME_OUTSIDE_HOURS");
    }
    if let (Some(rules), Some(status)) = (&cfg.device, &facts.device) {
        device::assess(rules, status, &mut findings);
    }
    let mut distrust_elevation = false;
    if let Some(rules) = &cfg.behaviour {
        distrust_elevation = behaviour::assess(rules, facts, &mut findings);
    }
    let total: i32 = findings.iter().map(|f| f.points).sum();
    Assessment { score: total.clamp(0, 100) as u8, findings, blocked_by, distrust_elevation }
}

/// What a score means for a rule: its thresholds (the rule's own, else `[risk]`'s) applied.
pub fn verdict(cfg: &RiskConfig, rule: &RuleRisk, a: &Assessment) -> RiskVerdict {
    let step_up_at = rule.step_up_at.unwrap_or(cfg.step_up_at);
    let deny_at = rule.deny_at.unwrap_or(cfg.deny_at);
    RiskVerdict {
        deny: a.blocked_by.is_some() || a.score >= deny_at,
        raise: (a.score >= step_up_at).then_some(Raise { level: cfg.raise_level, max_age: cfg.step_up_max_age }),
        distrust_elevation: a.distrust_elevation,
    }
}

#[cfg(test)]
#[path = "score_tests.rs"]
mod score_tests;

#[cfg(test)]
mod reason_code_tests {
    /// Every upper-case code quoted in the signals' sources is in `REASON_CODES`, and every
    /// listed code is quoted in one of them.
    #[test]
    fn reason_codes_lists_every_code_the_signals_emit() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("location.rs"),
            include_str!("device.rs"),
            include_str!("behaviour.rs"),
            include_str!("time.rs"),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for src in &sources[1..] {
            for quoted in src.split('"').skip(1).step_by(2) {
                let is_code = quoted.contains('_')
                    && quoted.len() > 3
                    && quoted.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
                if is_code {
                    seen.insert(quoted);
                }
            }
        }
        for code in &seen {
            assert!(super::REASON_CODES.contains(code), "{code} is emitted but missing from REASON_CODES");
        }
        for code in super::REASON_CODES {
            assert!(seen.contains(code) || sources[0].matches(code).count() > 1, "{code} is listed but never emitted");
        }
    }
}
