//! The behaviour signal: bursts of protected requests, recent failed challenges, and a context
//! (address, browser, country) that changed since the session's last proof.

use super::config::BehaviourRules;
use super::{user_agent_hash, Facts, Finding};

/// How many failed challenges count (each one `failed_challenge` points).
const MAX_FAILURES_COUNTED: u64 = 3;

/// Adds the behaviour findings; returns true when the context changed so much that the
/// session's step-up proofs must not carry over (`bind_elevation`).
pub fn assess(rules: &BehaviourRules, facts: &Facts<'_>, out: &mut Vec<Finding>) -> bool {
    let c = facts.counts;
    if c.recent_requests > rules.max_requests {
        out.push(Finding::new(
            "BEHAVIOUR_BURST",
            rules.burst,
            format!(
                "{} protected requests in {} (limit {})",
                c.recent_requests,
                humantime::format_duration(rules.window),
                rules.max_requests
            ),
        ));
    }
    if c.failed_challenges > 0 {
        let n = c.failed_challenges.min(MAX_FAILURES_COUNTED) as i32;
        out.push(Finding::new(
            "BEHAVIOUR_FAILED_CHALLENGES",
            rules.failed_challenge.saturating_mul(n),
            format!("{} failed step-up attempt(s) recently", c.failed_challenges),
        ));
    }
    let Some(proof) = facts.proof_context else { return false };
    let mut very_different = false;
    if proof.ip != facts.ip {
        out.push(Finding::new("CONTEXT_IP_CHANGED", rules.ip_changed, format!("last proof from {}", proof.ip)));
    }
    if proof.user_agent != user_agent_hash(facts.user_agent) {
        out.push(Finding::new(
            "CONTEXT_UA_CHANGED",
            rules.user_agent_changed,
            "another browser than at the last proof",
        ));
        very_different = true;
    }
    if let (Some(then), Some(now)) = (&proof.country, &facts.geo.country) {
        if then != now {
            out.push(Finding::new("CONTEXT_COUNTRY_CHANGED", rules.ip_changed, format!("last proof from {then}")));
            very_different = true;
        }
    }
    rules.bind_elevation && very_different
}
