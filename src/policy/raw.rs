//! The `[[rule]]` and `[default]` tables as written by operators. Strict: unknown keys are
//! errors. `RouteTable::build` validates them.

use serde::Deserialize;

/// One `[[rule]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    #[serde(default)]
    pub host: Option<String>,
    pub path: String,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub require: Option<String>,
    #[serde(default)]
    pub max_age: Option<String>,
    /// The proof methods that may satisfy `require` (default: any that reaches the level).
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// "transaction": each proof confirms one request (its body digest), once.
    #[serde(default)]
    pub bind: Option<String>,
    /// What the challenge page says is being confirmed: `Transfer {amount} to {to}`.
    #[serde(default)]
    pub confirm: Option<String>,
    /// "deny" blocks the route outright.
    #[serde(default)]
    pub action: Option<String>,
    /// Allowed hours, e.g. "08:00-18:00" (risk: time signal).
    #[serde(default)]
    pub hours: Option<String>,
    /// Allowed days, e.g. ["mon", "tue", "wed", "thu", "fri"].
    #[serde(default)]
    pub days: Option<Vec<String>>,
    /// The zone `hours` and `days` are read in (default: risk.time.time_zone).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// "score" (default) or "deny": what happens outside `hours`/`days`.
    #[serde(default)]
    pub outside_hours: Option<String>,
    /// Overrides risk.step_up_at for this rule.
    #[serde(default)]
    pub step_up_at: Option<i64>,
    /// Overrides risk.deny_at for this rule.
    #[serde(default)]
    pub deny_at: Option<i64>,
    /// "enforce" (default) or "shadow": evaluated and recorded, but never acts.
    #[serde(default)]
    pub mode: Option<String>,
    /// When the rule stops applying: a date (through the end of that day, UTC) or RFC 3339.
    #[serde(default)]
    pub expires: Option<String>,
    /// Exit criteria, free text shown by check-config: who owns the rule, its ticket, why.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// "fall_through": accept that the rule's expiry loosens protection.
    #[serde(default)]
    pub on_expiry: Option<String>,
    /// Conditions (`policy::conditions`): any of these groups,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// each of these claims equal to its value,
    #[serde(default)]
    pub claims: Option<std::collections::BTreeMap<String, String>>,
    /// all of these token scopes,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// a workload (client certificate) whose ID matches this glob,
    #[serde(default)]
    pub workload: Option<String>,
    /// a bearer token client (`client_id`, else `azp`) matching this glob,
    #[serde(default)]
    pub client: Option<String>,
    /// with a certificate or token issued within this long.
    #[serde(default)]
    pub max_credential_age: Option<String>,
}

/// `[default]`: what applies where no rule matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaultRule {
    #[serde(default)]
    pub require: Option<String>,
    #[serde(default)]
    pub max_age: Option<String>,
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    #[serde(default)]
    pub action: Option<String>,
}
