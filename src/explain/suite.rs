//! `stepgate test-policy`: runs each case of a case file through the gateway's own
//! `pipeline::evaluate` in an [`explain::sandbox`](super::sandbox) of its own, and compares the
//! decision (and the rule, when the case names one) with what the case expects.

use super::cases::Case;
use super::sandbox_on;
use crate::config::Config;
use crate::pipeline::{evaluate, Outcome, Pass};
use crate::policy::normalize::{normalize_host, normalize_path};
use crate::risk::history::RiskHistory;
use crate::state::Live;
use std::fmt::Write;
use std::sync::Arc;

/// What the gateway would do with a case's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `forward`, `signin`, `challenge`, `deny`, `bad_request`, `page`, `method_refused` (or
    /// `unavailable`, which an in-memory store never is).
    pub decision: &'static str,
    /// The rule that decided, or "-" (a refused path, a denied network, a gateway page).
    pub rule: String,
    /// The reason code (`proof_too_weak_or_old`, ...), or why the path was refused.
    pub cause: String,
    /// What a sign-in or step-up must prove, e.g. `require aal2 max_age 10m`.
    pub need: Option<String>,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (rule {}, cause {}", self.decision, self.rule, self.cause)?;
        if let Some(need) = &self.need {
            write!(f, ", needs {need}")?;
        }
        f.write_str(")")
    }
}

/// Evaluates one case's request under `live`'s config.
pub async fn verdict(live: &Arc<Live>, case: &Case) -> Result<Verdict, String> {
    let cfg = &live.config;
    let q = &case.question;
    let bad = |cause: String| Verdict { decision: "bad_request", rule: "-".into(), cause, need: None };
    let Ok(uri) = q.url.parse::<http::Uri>() else { return Ok(bad("not a valid URL".into())) };
    let host = uri.host().map(str::to_string).unwrap_or_else(|| cfg.public.host.clone());
    let Some(host) = normalize_host(&host) else { return Ok(bad("not a valid host".into())) };
    let path = match normalize_path(uri.path()) {
        Ok(p) => p,
        Err(e) => return Ok(bad(e.to_string())),
    };
    // No risk history beyond the device the case names: a test gives the same verdict anywhere.
    let mut ctx =
        sandbox_on(live.clone(), q, &RiskHistory::default()).await.map_err(|e| format!("case '{}': {e}", case.name))?;
    ctx.host = host;
    ctx.path = path;
    ctx.query = uri.query().map(str::to_string);
    let eval = evaluate(&ctx, Pass::Request).await;
    let need = match &eval.outcome {
        Outcome::SignIn { need } | Outcome::StepUp { need, .. } => Some(need.to_string()),
        _ => None,
    };
    Ok(Verdict {
        decision: eval.outcome.label(),
        rule: eval.rule_name().to_string(),
        cause: eval.outcome.cause().map_or("-", |c| c.code()).to_string(),
        need,
    })
}

/// The outcome of a whole case file.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One line per case, `ok` or `FAIL`, then a summary line.
    pub text: String,
    pub failed: usize,
}

/// Runs every case under `cfg`, in order, each in a sandbox of its own.
pub async fn run(cfg: &Config, cases: &[Case]) -> Result<Report, String> {
    let live = Arc::new(Live::new(cfg.clone())?);
    let mut report = Report::default();
    for case in cases {
        let got = verdict(&live, case).await?;
        let rule_ok = case.expect_rule.as_ref().is_none_or(|r| *r == got.rule);
        if got.decision == case.expect.label() && rule_ok {
            let _ = writeln!(report.text, "ok    {}: {got}", case.name);
            continue;
        }
        report.failed += 1;
        let by = case.expect_rule.as_ref().map_or(String::new(), |r| format!(" by rule {r}"));
        let _ = writeln!(report.text, "FAIL  {}: expected {}{by}, got {got}", case.name, case.expect.label());
    }
    let passed = cases.len() - report.failed;
    let _ = writeln!(report.text, "{} cases: {passed} passed, {} failed", cases.len(), report.failed);
    Ok(report)
}
