//! The decision: a pure function of facts and `now`.

pub use super::cause::Cause;
use crate::clock::UnixTime;
use crate::policy::level::{Level, Proof};
use crate::policy::routes::{method_ceiling, Action, Requirement};
use crate::risk::{Raise, RiskVerdict};

/// What to do with a request. Acted on in exactly one place (the gateway pipeline).
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let it through; `proof` is the one that satisfied the rule (None for public routes).
    Forward { proof: Option<Proof> },
    /// Nobody is signed in and the rule needs someone.
    SignIn { need: Requirement },
    /// Signed in, but no proof is strong, fresh or of an allowed method enough
    /// (`Cause::ProofTooWeak`), or risk asks for more (`Cause::RiskRaised`).
    StepUp { need: Requirement, cause: Cause },
    /// The rule or the risk blocks this request.
    Deny { cause: Cause },
}

/// The level a proof counts for: what it records, but never more than its method can prove
/// (a password proof recorded as aal3 would be a bug elsewhere; it still counts as aal1 only).
pub fn effective_level(proof: &Proof) -> Level {
    proof.level.min(method_ceiling(proof.method))
}

/// Whether `proof` satisfies `need` at `now`.
pub fn satisfies(proof: &Proof, need: &Requirement, now: UnixTime) -> bool {
    if effective_level(proof) < need.level {
        return false;
    }
    if let Some(allow) = &need.allow {
        if !allow.contains(&proof.method) {
            return false;
        }
    }
    if let Some(max_age) = need.max_age {
        if now.since(proof.auth_time) > max_age {
            return false;
        }
    }
    true
}

/// `proofs` is None when no session is present.
pub fn decide(action: &Action, proofs: Option<&[Proof]>, now: UnixTime) -> Decision {
    let need = match action {
        Action::Deny => return Decision::Deny { cause: Cause::RuleDenies },
        Action::Require(need) => need,
    };
    if need.level == Level::None {
        return Decision::Forward { proof: None };
    }
    let Some(proofs) = proofs else {
        return Decision::SignIn { need: need.clone() };
    };
    let best = proofs.iter().filter(|p| satisfies(p, need, now)).max_by_key(|p| (effective_level(p), p.auth_time));
    match best {
        Some(p) => Decision::Forward { proof: Some(p.clone()) },
        None => Decision::StepUp { need: need.clone(), cause: Cause::ProofTooWeak },
    }
}

/// The requirement a raised risk turns `need` into. A public route stays public. The level
/// rises only where an allowed method can reach the higher level; `max_age` shortens always.
pub fn raised(need: &Requirement, raise: Raise) -> Requirement {
    if need.level == Level::None {
        return need.clone();
    }
    let up = match need.level {
        Level::Aal1 => Level::Aal2,
        _ => Level::Aal3,
    };
    let reachable = need.allow.as_ref().is_none_or(|a| a.iter().any(|m| method_ceiling(*m) >= up));
    Requirement {
        level: if raise.level && reachable { up } else { need.level },
        max_age: Some(need.max_age.map_or(raise.max_age, |m| m.min(raise.max_age))),
        allow: need.allow.clone(),
    }
}

/// The requirement in force for this request once risk is counted; None when risk denies it.
pub fn effective_requirement(action: &Action, risk: &RiskVerdict) -> Option<Action> {
    if risk.deny {
        return None;
    }
    Some(match (action, risk.raise) {
        (Action::Require(need), Some(raise)) => Action::Require(raised(need, raise)),
        _ => action.clone(),
    })
}

/// `decide`, with the risk verdict applied first.
pub fn decide_with_risk(action: &Action, proofs: Option<&[Proof]>, now: UnixTime, risk: &RiskVerdict) -> Decision {
    let Some(action) = effective_requirement(action, risk) else {
        return Decision::Deny { cause: Cause::RiskTooHigh };
    };
    let decision = if risk.distrust_elevation {
        let signin_only: Option<Vec<Proof>> =
            proofs.map(|ps| ps.iter().filter(|p| effective_level(p) <= Level::Aal1).cloned().collect());
        decide(&action, signin_only.as_deref(), now)
    } else {
        decide(&action, proofs, now)
    };
    match decision {
        Decision::StepUp { need, .. } if risk.raise.is_some() || risk.distrust_elevation => {
            Decision::StepUp { need, cause: Cause::RiskRaised }
        }
        d => d,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
