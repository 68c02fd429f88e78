//! One evaluation for every way a request reaches a decision: proxied by the gateway, asked
//! about by a front proxy (forward-auth), re-evaluated (the challenge page, an open WebSocket),
//! or dry-run (`stepgate explain`, the bench).
//!
//! ```text
//! facts (Ctx: method, host, normalized path, cookies, client, connection; now)
//!    ─▶ evaluate: route ▶ identify ▶ risk ▶ decide (pure)
//!    ─▶ Evaluation { rule, who, scored, need, outcome + typed cause }
//!    ─▶ act: proxy | forward-auth answer | challenge page | explain print
//! ```
//!
//! Acting on the evaluation is the caller's; nothing here writes a response.

pub mod ctx;
pub mod identify;
pub mod kept;
pub mod risk;
pub mod route;

pub use ctx::{is_gateway_path, is_navigation, new_request_id, Conn, Ctx, RiskRequest, TlsFacts, PREFIX};

use crate::clock::UnixTime;
use crate::policy::decide::{decide_with_risk, effective_requirement, Cause, Decision};
use crate::policy::level::{Level, Proof};
use crate::policy::routes::{Action, Requirement, Rule};
use crate::risk::RiskVerdict;
use crate::store::StoreError;
use identify::{identify, machine_identity, Touch, Who};
use risk::{Count, Scored};
use route::Routed;

/// Why the request is evaluated, which decides what the evaluation may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// A request on its way through: reading the session counts as activity, and the request
    /// counts in the behaviour signal's window.
    Request,
    /// Looking at a request without passing it (the challenge page, explain): nothing counted.
    LookOnly,
    /// An open tunnel checked again: no activity, and risk as it was scored at opening.
    Recheck(RiskVerdict),
}

/// What to do with the request, with its typed cause. Acted on by the caller, once.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Let it through; `proof` satisfied the rule (None on public routes).
    Forward { proof: Option<Proof> },
    /// Nobody is signed in and the rule needs someone.
    SignIn { need: Requirement },
    /// Signed in, but a stronger or fresher proof is needed.
    StepUp { need: Requirement, cause: Cause },
    /// Refused (403).
    Deny { cause: Cause },
    /// One of the gateway's own pages (`/.stepgate/...`).
    GatewayPage,
    /// `CONNECT` (405): the gateway opens no tunnels.
    MethodRefused,
    /// The store cannot answer on a protected route: fail closed (503).
    Unavailable,
}

impl Outcome {
    /// The decision's name in audit records, access log lines and metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Forward { .. } => "forward",
            Outcome::SignIn { .. } => "signin",
            Outcome::StepUp { .. } => "challenge",
            Outcome::Deny { .. } => "deny",
            Outcome::GatewayPage => "page",
            Outcome::MethodRefused => "method_refused",
            Outcome::Unavailable => "unavailable",
        }
    }

    /// Why, as a reason code (None for gateway pages and refused methods).
    pub fn cause(&self) -> Option<Cause> {
        match self {
            Outcome::Forward { proof: None } => Some(Cause::Public),
            Outcome::Forward { proof: Some(_) } => Some(Cause::Proven),
            Outcome::SignIn { .. } => Some(Cause::NoSession),
            Outcome::StepUp { cause, .. } | Outcome::Deny { cause } => Some(*cause),
            Outcome::Unavailable => Some(Cause::StoreUnavailable),
            Outcome::GatewayPage | Outcome::MethodRefused => None,
        }
    }
}

impl From<Decision> for Outcome {
    fn from(d: Decision) -> Outcome {
        match d {
            Decision::Forward { proof } => Outcome::Forward { proof },
            Decision::SignIn { need } => Outcome::SignIn { need },
            Decision::StepUp { need, cause } => Outcome::StepUp { need, cause },
            Decision::Deny { cause } => Outcome::Deny { cause },
        }
    }
}

/// Everything the evaluation found out, for the caller to act on and record.
#[derive(Debug)]
pub struct Evaluation<'c> {
    /// The rule that matched (None: refused or a gateway page before any rule).
    pub rule: Option<&'c Rule>,
    /// The rule needs nobody (`require = "none"`).
    pub public: bool,
    pub who: Option<Who>,
    pub scored: Scored,
    /// The rule's requirement once risk is counted (None: no rule, a deny rule, or risk denies).
    pub need: Option<Requirement>,
    pub outcome: Outcome,
    /// Why the store failed, when `outcome` is `Unavailable`.
    pub store_error: Option<StoreError>,
    /// What each shadow rule matched before `rule` would have decided (empty: none matched;
    /// never filled on a recheck).
    pub shadows: Vec<Shadowed<'c>>,
    /// The first expired rule that matched before `rule` and was skipped.
    pub expired: Option<&'c Rule>,
}

/// A shadow rule's would-be decision: recorded, never acted on.
#[derive(Debug)]
pub struct Shadowed<'c> {
    pub rule: &'c Rule,
    pub outcome: Outcome,
}

impl<'c> Evaluation<'c> {
    fn before_rule(outcome: Outcome) -> Evaluation<'c> {
        Evaluation {
            rule: None,
            public: false,
            who: None,
            scored: Scored::default(),
            need: None,
            outcome,
            store_error: None,
            shadows: Vec::new(),
            expired: None,
        }
    }

    fn unavailable(rule: &'c Rule, who: Option<Who>, e: StoreError) -> Evaluation<'c> {
        Evaluation { rule: Some(rule), store_error: Some(e), who, ..Evaluation::before_rule(Outcome::Unavailable) }
    }

    /// The matched rule's name, or "-".
    pub fn rule_name(&self) -> &str {
        self.rule.map_or("-", |r| r.name.as_str())
    }

    pub fn user(&self) -> Option<&str> {
        self.who.as_ref().map(|w| w.user.as_str())
    }
}

/// Whether a rule needs nobody.
pub fn is_public(rule: &Rule) -> bool {
    matches!(&rule.action, Action::Require(r) if r.level == Level::None)
}

/// Evaluates the request in `ctx`: route, identify, score, decide; then what each shadow rule
/// matched on the way would have decided (same identity, its own risk settings, nothing counted).
pub async fn evaluate(ctx: &Ctx, pass: Pass) -> Evaluation<'_> {
    let cfg = &ctx.live.config;
    let classified = match route::route(cfg, &ctx.host, &ctx.path, &ctx.method, ctx.client_ip, ctx.now) {
        Routed::MethodRefused => return Evaluation::before_rule(Outcome::MethodRefused),
        Routed::DeniedNetwork(_) => return Evaluation::before_rule(Outcome::Deny { cause: Cause::DeniedNetwork }),
        Routed::GatewayPage => return Evaluation::before_rule(Outcome::GatewayPage),
        Routed::Rule(c) => c,
    };
    let rule = classified.rule;
    // A recheck asks whether the open tunnel may stay: shadow rules have had their say.
    let shadow_rules = if matches!(pass, Pass::Recheck(_)) { Vec::new() } else { classified.shadows };
    let public = is_public(rule);
    let anyone_needed = !public || shadow_rules.iter().any(|r| !is_public(r));
    let touch = if matches!(pass, Pass::Recheck(_)) { Touch::No } else { Touch::Yes };
    // A machine client's credential (a bearer token, or a client certificate without a
    // session) is the identity when one is presented: checked before anything about the
    // requirement is answered.
    let credential = if anyone_needed { machine_identity(ctx).await } else { None };
    let who = if let Some(checked) = credential {
        match checked {
            Ok(who) => Some(who),
            Err(outcome) => return Evaluation { rule: Some(rule), ..Evaluation::before_rule(outcome) },
        }
    } else if !anyone_needed && cfg.identity_is_builtin() && ctx.session_cookie.is_none() {
        // A public route with no session cookie needs no store read at all.
        None
    } else if public {
        identify_if_quick(ctx, touch).await
    } else {
        match identify(ctx, touch).await {
            Ok(w) => w,
            Err(e) => return Evaluation::unavailable(rule, None, e),
        }
    };
    // Public routes are not scored: they need nobody, and scoring would cost them a store read.
    let scored = match pass {
        _ if public => Ok(Scored::default()),
        Pass::Recheck(verdict) => Ok(Scored { verdict, ..Scored::default() }),
        Pass::Request => risk::score(ctx, rule, who.as_ref(), Count::ThisRequest).await,
        Pass::LookOnly => risk::score(ctx, rule, who.as_ref(), Count::LookOnly).await,
    };
    let scored = match scored {
        Ok(s) => s,
        Err(e) => return Evaluation::unavailable(rule, who, e),
    };
    let proofs = who.as_ref().map(|w| w.proofs.as_slice());
    let outcome = decide_with_risk(&rule.action, proofs, ctx.now, &scored.verdict).into();
    let outcome = with_conditions(rule, who.as_ref(), outcome, ctx.now);
    let need = match effective_requirement(&rule.action, &scored.verdict) {
        Some(Action::Require(r)) => Some(r),
        _ => None,
    };
    let mut shadows = Vec::with_capacity(shadow_rules.len());
    for shadow in shadow_rules {
        let outcome = would_decide(ctx, shadow, who.as_ref(), proofs).await;
        shadows.push(Shadowed { rule: shadow, outcome });
    }
    Evaluation {
        rule: Some(rule),
        public,
        who,
        scored,
        need,
        outcome,
        store_error: None,
        shadows,
        expired: classified.expired,
    }
}

/// The rule's conditions (groups, claims, scopes, workload) on a known caller: one who misses
/// them is denied, whatever proof they hold or could still make (no step-up that cannot help).
/// Nobody signed in yet is asked to sign in first; a denial stays a denial.
fn with_conditions(rule: &Rule, who: Option<&Who>, outcome: Outcome, now: UnixTime) -> Outcome {
    let (Some(who), Outcome::Forward { .. } | Outcome::StepUp { .. }) = (who, &outcome) else { return outcome };
    match rule.conditions.check(&who.attrs, now) {
        Ok(()) => outcome,
        Err(cause) => Outcome::Deny { cause },
    }
}

/// The identity on a public route, if the store gives it at once: not asked while the store is
/// known not to answer, and given up after the store's `optional_wait` (250 ms for Redis). The
/// route needs nobody, so it is served either way, without identity (and so without identity
/// headers).
async fn identify_if_quick(ctx: &Ctx, touch: Touch) -> Option<Who> {
    let store = &ctx.state.store;
    let why = if !store.answering() {
        "store not answering".to_string()
    } else {
        let asked = identify(ctx, touch);
        let answer = match store.optional_wait() {
            Some(wait) => tokio::time::timeout(wait, asked).await.map_err(|_| wait),
            None => Ok(asked.await),
        };
        match answer {
            Ok(Ok(w)) => return w,
            Ok(Err(e)) => e.to_string(),
            Err(wait) => format!("no answer within {wait:?}"),
        }
    };
    tracing::warn!(request_id = %ctx.request_id, error = %why, "store unavailable; public route passed without identity");
    None
}

/// What `rule` would decide for this request, scored with its own risk settings without
/// counting the request again.
async fn would_decide(ctx: &Ctx, rule: &Rule, who: Option<&Who>, proofs: Option<&[Proof]>) -> Outcome {
    if is_public(rule) {
        return Outcome::Forward { proof: None };
    }
    match risk::score(ctx, rule, who, Count::LookOnly).await {
        Ok(scored) => {
            with_conditions(rule, who, decide_with_risk(&rule.action, proofs, ctx.now, &scored.verdict).into(), ctx.now)
        }
        Err(_) => Outcome::Unavailable,
    }
}
