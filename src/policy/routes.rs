//! The route table: ordered rules, first match wins, a default for the rest.
//!
//! A rule matches a host glob (optional, case-insensitive), a path pattern and a method list
//! (optional). Path patterns are compared segment by segment against a `NormalizedPath`:
//! `/exact`, `/users/*/settings` (`*` is exactly one segment) and `/prefix/**` (the prefix itself
//! and everything under it). A trailing slash on the request is ignored for matching.
//! Matching is ASCII case-insensitive unless `routes.case_sensitive = true`.
//!
//! Two choices lean towards matching more, so that an app that treats requests alike cannot be
//! reached around a rule: a request's method compares case-insensitively (the config spells
//! methods upper case) and a rule listing `GET` also covers `HEAD`; and a reserved character in
//! a pattern (such as `!` or `@`) also matches its percent-encoded form in the path.

use crate::clock::UnixTime;
use crate::parse::{parse_duration, ConfigError};
use crate::policy::conditions::{Conditions, RawConditions};
use crate::policy::level::{AuthMethod, Level};
use crate::policy::normalize::NormalizedPath;
use crate::policy::raw::{RawDefaultRule, RawRule};
use crate::policy::rollout::{self, Rollout};
use crate::risk::config::rule_threshold;
use crate::risk::time::parse_window;
use crate::risk::RuleRisk;
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

/// What a matched rule asks of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Require(Requirement),
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub level: Level,
    /// How recent the proof must be; None: any proof within the session's life.
    pub max_age: Option<Duration>,
    /// The methods that may satisfy it; None: any method that reaches the level.
    pub allow: Option<Vec<AuthMethod>>,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "require {}", self.level)?;
        if let Some(d) = self.max_age {
            write!(f, " max_age {}", humantime::format_duration(d))?;
        }
        if let Some(allow) = &self.allow {
            let names: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
            write!(f, " allow {}", names.join(","))?;
        }
        Ok(())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Require(r) => r.fmt(f),
            Action::Deny => f.write_str("deny"),
        }
    }
}

/// The highest level a proof made with `method` can carry.
pub fn method_ceiling(method: AuthMethod) -> Level {
    match method {
        AuthMethod::Password | AuthMethod::Header => Level::Aal1,
        AuthMethod::Totp | AuthMethod::Recovery => Level::Aal2,
        AuthMethod::Webauthn => Level::Aal3,
        // What the IdP or the token's issuer proved, mapped by `authn::assurance`.
        AuthMethod::Idp | AuthMethod::Bearer => Level::Aal3,
        // A workload's certificate says which workload it is, not how strongly a person was
        // proven: rules for workloads use `workload` and `max_credential_age`.
        AuthMethod::Certificate => Level::Aal1,
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    /// None: any host. Lower-case glob.
    host: Option<String>,
    /// None for the default rule (matches everything).
    path: Option<PathPattern>,
    /// None: any method. Upper-case, `HEAD` added where `GET` is listed.
    methods: Option<Vec<String>>,
    /// The rule's own risk settings (time window, thresholds).
    pub risk: RuleRisk,
    /// Enforced or shadow, and when it expires.
    pub rollout: Rollout,
    /// Who may use the route besides how strongly proven: groups, claims, scopes, workload, client.
    pub conditions: Conditions,
    /// SHA-256 of the rule as written: a reload compares rules by name and this.
    pub digest: [u8; 32],
    /// `bind = "transaction"`: every proof confirms one request body, once.
    pub bind: Option<crate::policy::bind::Bind>,
}

/// A rule's conditions; refused where they could never act (a public or a deny rule).
fn parse_conditions(prefix: &str, raw: &RawRule, action: &Action) -> Result<Conditions, ConfigError> {
    let written = RawConditions {
        groups: raw.groups.as_deref(),
        claims: raw.claims.as_ref(),
        scopes: raw.scopes.as_deref(),
        workload: raw.workload.as_deref(),
        client: raw.client.as_deref(),
        max_credential_age: raw.max_credential_age.as_deref(),
    };
    if let Some(k) = written.keys_set().first() {
        let why = match action {
            Action::Deny => Some("must not be set with action = \"deny\" (nobody passes a deny)"),
            Action::Require(r) if r.level == Level::None => Some(
                "never applies with require = \"none\": a public route admits anyone. Use require = \"aal1\" (or higher) for the condition to act, or remove the key",
            ),
            _ => None,
        };
        if let Some(why) = why {
            return Err(ConfigError::new(format!("{prefix}{k}"), why));
        }
    }
    Conditions::parse(prefix, written)
}

fn parse_rule_risk(prefix: &str, raw: &RawRule) -> Result<RuleRisk, ConfigError> {
    // A public rule is never scored (it needs nobody, and scoring costs a store read), so a
    // time window or a threshold on it would pass silently and never act.
    if raw.require.as_deref().map(str::trim) == Some("none") && raw.action.as_deref() != Some("deny") {
        let set = [
            ("hours", raw.hours.is_some()),
            ("days", raw.days.is_some()),
            ("time_zone", raw.time_zone.is_some()),
            ("outside_hours", raw.outside_hours.is_some()),
            ("step_up_at", raw.step_up_at.is_some()),
            ("deny_at", raw.deny_at.is_some()),
        ];
        if let Some((k, _)) = set.iter().find(|(_, on)| *on) {
            return Err(ConfigError::new(
                format!("{prefix}{k}"),
                "never applies with require = \"none\": requests on a public route are not scored. \
                 Use require = \"aal1\" (or higher) for the time window or threshold to act, \
                 action = \"deny\" to block the route, or remove the key",
            ));
        }
    }
    let window = parse_window(
        prefix,
        raw.hours.as_deref(),
        raw.days.as_deref(),
        raw.time_zone.as_deref(),
        raw.outside_hours.as_deref(),
    )?;
    let step_up_at = rule_threshold(&format!("{prefix}step_up_at"), raw.step_up_at)?;
    let deny_at = rule_threshold(&format!("{prefix}deny_at"), raw.deny_at)?;
    if let (Some(s), Some(d)) = (step_up_at, deny_at) {
        if d <= s {
            return Err(ConfigError::new(format!("{prefix}deny_at"), "must be above step_up_at"));
        }
    }
    Ok(RuleRisk { window, step_up_at, deny_at })
}

impl Rule {
    /// The host glob as configured (lower-cased), if any.
    pub fn host_glob(&self) -> Option<&str> {
        self.host.as_deref()
    }
    /// The path pattern as configured; None for the default rule.
    pub fn path_pattern(&self) -> Option<&str> {
        self.path.as_ref().map(|p| p.text.as_str())
    }
    /// The methods the rule is limited to, if any (upper-case).
    pub fn methods(&self) -> Option<&[String]> {
        self.methods.as_deref()
    }
    fn matches(&self, host: &str, path: &NormalizedPath, method: &http::Method, case_sensitive: bool) -> bool {
        if let Some(ms) = &self.methods {
            if !ms.iter().any(|m| m.eq_ignore_ascii_case(method.as_str())) {
                return false;
            }
        }
        if let Some(glob) = &self.host {
            if !glob_match(glob.as_bytes(), host.as_bytes()) {
                return false;
            }
        }
        match &self.path {
            Some(p) => p.matches(path.as_str(), case_sensitive),
            None => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Compared byte-wise (ASCII case folded unless case-sensitive); non-ASCII stored
    /// percent-encoded with upper-case hex, as in a normalized path.
    Literal(String),
    /// Exactly one non-empty segment.
    Star,
}

#[derive(Debug, Clone)]
struct PathPattern {
    text: String,
    segs: Vec<Seg>,
    /// Ends in `/**`: the path may go on with any further segments (or none).
    prefix: bool,
}

impl PathPattern {
    fn parse(key: &str, text: &str) -> Result<PathPattern, ConfigError> {
        let rest =
            text.strip_prefix('/').ok_or_else(|| ConfigError::new(key, format!("'{text}' must start with '/'")))?;
        let mut pat = PathPattern { text: text.to_string(), segs: Vec::new(), prefix: false };
        if rest.is_empty() {
            return Ok(pat); // "/": the root only
        }
        let parts: Vec<&str> = rest.split('/').collect();
        for (n, part) in parts.iter().enumerate() {
            let last = n + 1 == parts.len();
            let bad = |why: &str| ConfigError::new(key, format!("'{text}': {why}"));
            match *part {
                "" if last => {
                    return Err(bad(
                        "ends in '/'; write it without (a trailing slash is ignored when matching) or end it in '/**'",
                    ))
                }
                "" => return Err(bad("empty segment ('//')")),
                "." | ".." => return Err(bad("dot segments ('.' or '..') never reach the route table")),
                "**" if last => pat.prefix = true,
                "**" => return Err(bad("'**' may only be the last segment")),
                "*" => pat.segs.push(Seg::Star),
                lit => pat.segs.push(Seg::Literal(parse_literal(lit).map_err(|why| bad(&why))?)),
            }
        }
        Ok(pat)
    }

    fn matches(&self, path: &str, case_sensitive: bool) -> bool {
        let mut segs = path.split('/').filter(|s| !s.is_empty());
        for p in &self.segs {
            match segs.next() {
                None => return false,
                Some(s) => {
                    if let Seg::Literal(lit) = p {
                        if !literal_matches(lit.as_bytes(), s.as_bytes(), case_sensitive) {
                            return false;
                        }
                    }
                }
            }
        }
        self.prefix || segs.next().is_none()
    }

    /// Whether some path matches both patterns (conservative: true when unsure).
    fn overlaps(&self, other: &PathPattern) -> bool {
        let (n, m) = (self.segs.len(), other.segs.len());
        let lengths = match (self.prefix, other.prefix) {
            (true, true) => true,
            (true, false) => m >= n,
            (false, true) => n >= m,
            (false, false) => n == m,
        };
        lengths
            && self.segs.iter().zip(&other.segs).all(|(a, b)| match (a, b) {
                (Seg::Literal(x), Seg::Literal(y)) => x.eq_ignore_ascii_case(y),
                _ => true,
            })
    }

    /// Whether every path `later` matches is matched by `self` too (conservative: false when unsure).
    fn covers(&self, later: &PathPattern, case_sensitive: bool) -> bool {
        if self.prefix {
            if self.segs.len() > later.segs.len() {
                return false;
            }
        } else if later.prefix || self.segs.len() != later.segs.len() {
            return false;
        }
        self.segs.iter().zip(&later.segs).all(|(a, b)| match (a, b) {
            (Seg::Star, _) => true,
            (Seg::Literal(_), Seg::Star) => false,
            (Seg::Literal(x), Seg::Literal(y)) => {
                if case_sensitive {
                    x == y
                } else {
                    x.eq_ignore_ascii_case(y)
                }
            }
        })
    }
}

/// A literal pattern segment: no `%`, `;`, `\`, `*` inside, no controls or characters that never
/// appear raw in a normalized path; non-ASCII is percent-encoded to match normalized paths.
fn parse_literal(lit: &str) -> Result<String, String> {
    let mut out = String::with_capacity(lit.len());
    for c in lit.chars() {
        match c {
            '%' => return Err("'%' is not allowed; write the character itself".into()),
            ';' => return Err("';' is not allowed (path parameters are refused before matching)".into()),
            '\\' => return Err("'\\' is not allowed (backslashes are refused before matching)".into()),
            '*' => return Err("'*' must be a whole segment ('/*/') or the last one ('/**')".into()),
            c if c.is_ascii_alphanumeric() || "-._~!$&'()+,=:@".contains(c) => out.push(c),
            c if c.is_ascii() => return Err(format!("character {c:?} cannot appear in a request path")),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    Ok(out)
}

/// Compares a pattern literal with a path segment. A reserved pattern character (`!`, `@`, ...)
/// matches itself or its escape (`%21`); escapes in the pattern (non-ASCII) compare as text.
fn literal_matches(pat: &[u8], seg: &[u8], case_sensitive: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(&b)
        }
    };
    let (mut i, mut j) = (0, 0);
    while i < pat.len() {
        let p = pat[i];
        if j < seg.len() && eq(p, seg[j]) {
            i += 1;
            j += 1;
            continue;
        }
        // The pattern's reserved character, written as an escape in the path?
        if p != b'%' && !p.is_ascii_alphanumeric() && j + 2 < seg.len() && seg[j] == b'%' {
            let hex = [HEX[usize::from(p >> 4)], HEX[usize::from(p & 0x0f)]];
            if seg[j + 1].eq_ignore_ascii_case(&hex[0]) && seg[j + 2].eq_ignore_ascii_case(&hex[1]) {
                i += 1;
                j += 3;
                continue;
            }
        }
        return false;
    }
    j == seg.len()
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `*` matches any run of bytes (possibly empty); everything else literally. Both lower-case.
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if p < pat.len() && pat[p].eq_ignore_ascii_case(&s[i]) {
            p += 1;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

fn parse_host_glob(key: &str, raw: &str) -> Result<String, ConfigError> {
    let host = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if host.is_empty() {
        return Err(ConfigError::new(key, "empty; leave the key out to match any host"));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let addr: std::net::Ipv6Addr =
            inner.parse().map_err(|_| ConfigError::new(key, format!("'{raw}' is not an IPv6 address in brackets")))?;
        return Ok(format!("[{addr}]"));
    }
    if host.contains(':') {
        return Err(ConfigError::new(key, format!("'{raw}': leave out the port (hosts are matched without it)")));
    }
    if let Some(c) = host.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*'))) {
        return Err(ConfigError::new(key, format!("'{raw}': character {c:?} cannot appear in a host name")));
    }
    Ok(host)
}

/// Whether glob `a` matches every host glob `b` matches (conservative).
fn host_covers(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(a), _) if a.bytes().all(|c| c == b'*') => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a == b || (!b.contains('*') && glob_match(a.as_bytes(), b.as_bytes())),
    }
}

fn methods_cover(a: Option<&[String]>, b: Option<&[String]>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|m| a.contains(m)),
    }
}

/// The methods a rule may name without declaring them: RFC 9110's and PATCH (RFC 5789).
pub const STANDARD_METHODS: [&str; 9] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// Checks `routes.extension_methods`: each a valid method token, upper case, not a standard one.
fn parse_extension_methods(raw: &[String]) -> Result<Vec<String>, ConfigError> {
    let key = "routes.extension_methods";
    let mut out = Vec::new();
    for m in raw {
        let m = m.trim();
        if m.is_empty() || http::Method::from_bytes(m.as_bytes()).is_err() || m.bytes().any(|b| b.is_ascii_lowercase())
        {
            return Err(ConfigError::new(
                key,
                format!("'{m}' is not an upper-case HTTP method token, e.g. \"PROPFIND\""),
            ));
        }
        if STANDARD_METHODS.contains(&m) {
            return Err(ConfigError::new(key, format!("'{m}' is a standard method; list only extension methods here")));
        }
        out.push(m.to_string());
    }
    Ok(out)
}

fn parse_methods(key: &str, raw: &[String], extensions: &[String]) -> Result<Vec<String>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(
            key,
            "empty: the rule would match nothing; leave the key out to match any method",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for m in raw {
        let up = m.trim().to_ascii_uppercase();
        let known = STANDARD_METHODS.contains(&up.as_str()) || extensions.contains(&up);
        // Methods are case-sensitive tokens (RFC 9110 §9.1): "post" is not POST on the wire, so
        // the config spells them as sent rather than guessing.
        if known && m.trim() != up {
            return Err(ConfigError::new(key, format!("'{m}': write \"{up}\" (methods are upper case)")));
        }
        if !known {
            return Err(ConfigError::new(
                key,
                format!(
                    "'{m}' is not an HTTP method: use {}; an extension method (e.g. WebDAV's PROPFIND) must be listed in routes.extension_methods first",
                    STANDARD_METHODS.join(", ")
                ),
            ));
        }
        if !out.contains(&up) {
            out.push(up);
        }
    }
    // HEAD runs the GET handler in most apps: a rule on GET must not be walked around with HEAD.
    if out.iter().any(|m| m == "GET") && !out.iter().any(|m| m == "HEAD") {
        out.push("HEAD".to_string());
    }
    Ok(out)
}

/// The action fields shared by `[[rule]]` and `[default]`; `prefix` is e.g. "rule 'admin'." or "default.".
fn parse_action(
    prefix: &str,
    action: Option<&str>,
    require: Option<&str>,
    max_age: Option<&str>,
    allow: Option<&[String]>,
) -> Result<Action, ConfigError> {
    let key = |k: &str| format!("{prefix}{k}");
    match action {
        None | Some("require") => {}
        Some("deny") => {
            for (k, set) in [("require", require.is_some()), ("max_age", max_age.is_some()), ("allow", allow.is_some())]
            {
                if set {
                    return Err(ConfigError::new(
                        key(k),
                        "must not be set with action = \"deny\" (nothing can satisfy a deny)",
                    ));
                }
            }
            return Ok(Action::Deny);
        }
        Some(other) => {
            return Err(ConfigError::new(
                key("action"),
                format!("unknown action '{other}'; expected \"require\" or \"deny\""),
            ))
        }
    }
    let require = require.ok_or_else(|| {
        ConfigError::new(key("require"), "missing; set none, aal1, aal2 or aal3 (or action = \"deny\")")
    })?;
    let level = Level::parse(require.trim()).ok_or_else(|| {
        ConfigError::new(key("require"), format!("unknown level '{require}'; expected none, aal1, aal2 or aal3"))
    })?;
    let max_age = match max_age {
        None => None,
        Some(_) if level == Level::None => {
            return Err(ConfigError::new(
                key("max_age"),
                "meaningless with require = \"none\" (nothing is proven); remove it",
            ))
        }
        Some(v) => Some(parse_duration(&key("max_age"), v)?),
    };
    let allow = match allow {
        None => None,
        Some(_) if level == Level::None => {
            return Err(ConfigError::new(
                key("allow"),
                "meaningless with require = \"none\" (nothing is proven); remove it",
            ))
        }
        Some([]) => {
            return Err(ConfigError::new(
                key("allow"),
                "empty: nothing could satisfy the rule; leave the key out to allow any method",
            ))
        }
        Some(list) => {
            let mut out = Vec::new();
            for name in list {
                let m = AuthMethod::parse(name.trim()).ok_or_else(|| {
                    ConfigError::new(
                        key("allow"),
                        format!("unknown method '{name}'; expected password, header, totp, recovery or webauthn"),
                    )
                })?;
                if method_ceiling(m) < level {
                    return Err(ConfigError::new(
                        key("allow"),
                        format!(
                            "'{m}' cannot reach {level} (it proves at most {}); remove it or lower require",
                            method_ceiling(m)
                        ),
                    ));
                }
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            Some(out)
        }
    };
    Ok(Action::Require(Requirement { level, max_age, allow }))
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    pub rules: Vec<Rule>,
    pub default: Rule,
    case_sensitive: bool,
}

impl RouteTable {
    pub fn build(rules: &[RawRule], default: &RawDefaultRule, case_sensitive: bool) -> Result<RouteTable, ConfigError> {
        RouteTable::build_with(rules, default, case_sensitive, &[])
    }

    /// `build`, with the extension methods rules may name (`routes.extension_methods`).
    pub fn build_with(
        rules: &[RawRule],
        default: &RawDefaultRule,
        case_sensitive: bool,
        extension_methods: &[String],
    ) -> Result<RouteTable, ConfigError> {
        let extensions = parse_extension_methods(extension_methods)?;
        let mut built: Vec<Rule> = Vec::with_capacity(rules.len());
        let mut names: HashSet<&str> = HashSet::new();
        for (n, raw) in rules.iter().enumerate() {
            let name = raw.name.trim();
            if name.is_empty() {
                return Err(ConfigError::new(format!("rule #{}.name", n + 1), "empty; give every rule a name"));
            }
            let prefix = format!("rule '{name}'.");
            if !names.insert(name) {
                return Err(ConfigError::new(format!("{prefix}name"), "duplicate; another rule already has this name"));
            }
            let host = raw.host.as_deref().map(|h| parse_host_glob(&format!("{prefix}host"), h)).transpose()?;
            let path = PathPattern::parse(&format!("{prefix}path"), &raw.path)?;
            let methods = raw
                .methods
                .as_deref()
                .map(|m| parse_methods(&format!("{prefix}methods"), m, &extensions))
                .transpose()?;
            let action = parse_action(
                &prefix,
                raw.action.as_deref(),
                raw.require.as_deref(),
                raw.max_age.as_deref(),
                raw.allow.as_deref(),
            )?;
            let risk = parse_rule_risk(&prefix, raw)?;
            let rollout = rollout::parse(&prefix, raw)?;
            let conditions = parse_conditions(&prefix, raw, &action)?;
            let bind = crate::policy::bind::parse(
                &prefix,
                raw.bind.as_deref(),
                raw.confirm.as_deref(),
                methods.as_deref(),
                &action,
            )?;
            let digest = digest(raw);
            let rule = Rule {
                name: name.to_string(),
                action,
                host,
                path: Some(path),
                methods,
                risk,
                rollout,
                conditions,
                digest,
                bind,
            };
            // Only a rule that applies for good hides later ones: a shadow rule never decides,
            // and an expiring one hands its requests on once it expires.
            if let Some(earlier) = built.iter().find(|e| e.rollout.permanent() && covers(e, &rule, case_sensitive)) {
                let what = if rule.rollout.is_shadow() { "shadow rule never evaluated: " } else { "" };
                return Err(ConfigError::new(
                    format!("rule '{name}'"),
                    format!(
                        "{what}shadowed by earlier rule '{0}', which matches every request it would; move it above '{0}' or remove it",
                        earlier.name
                    ),
                ));
            }
            built.push(rule);
        }
        let action = parse_action(
            "default.",
            default.action.as_deref(),
            default.require.as_deref(),
            default.max_age.as_deref(),
            default.allow.as_deref(),
        )?;
        let default = Rule {
            name: "default".to_string(),
            action,
            host: None,
            path: None,
            methods: None,
            risk: RuleRisk::default(),
            rollout: Rollout::default(),
            conditions: Conditions::default(),
            digest: digest(default),
            bind: None,
        };
        let table = RouteTable { rules: built, default, case_sensitive };
        table.refuse_loosening_expiry()?;
        Ok(table)
    }

    /// An expiring enforced rule hands its requests to the later rules that overlap it (and
    /// to the default, unless a later permanent rule covers it): if any of them is weaker,
    /// the expiry loosens protection, which needs `on_expiry = "fall_through"`.
    fn refuse_loosening_expiry(&self) -> Result<(), ConfigError> {
        for (n, rule) in self.rules.iter().enumerate() {
            let Some(expiry) = &rule.rollout.expiry else { continue };
            if rule.rollout.is_shadow() || expiry.fall_through {
                continue;
            }
            let mut instead: Vec<&Rule> = Vec::new();
            let mut covered = false;
            for later in self.rules[n + 1..].iter().filter(|l| !l.rollout.is_shadow()) {
                if overlaps(rule, later) {
                    instead.push(later);
                }
                if later.rollout.permanent() && covers(later, rule, self.case_sensitive) {
                    covered = true;
                    break;
                }
            }
            if !covered {
                instead.push(&self.default);
            }
            for other in instead {
                let fewer_conditions = match other.action {
                    Action::Deny => None,
                    Action::Require(_) => rule
                        .conditions
                        .stricter_than(&other.conditions)
                        .map(|k| format!("what applies instead does not keep its `{k}` condition")),
                };
                if let Some(why) = rollout::loosens(&rule.action, &other.action).or(fewer_conditions) {
                    return Err(ConfigError::new(
                        format!("rule '{}'.expires", rule.name),
                        format!(
                            "its expiry would loosen protection: after {} its requests fall to '{}' ({}), and {why}; \
                             write on_expiry = \"fall_through\" if that is meant, or add a rule below it that keeps the protection",
                            expiry.text, other.name, other.action
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The first enforced rule that matches, expiry aside (see `classify_at`). `host` is
    /// already normalized (see normalize::normalize_host).
    pub fn classify(&self, host: &str, path: &NormalizedPath, method: &http::Method) -> &Rule {
        self.rules
            .iter()
            .find(|r| !r.rollout.is_shadow() && r.matches(host, path, method, self.case_sensitive))
            .unwrap_or(&self.default)
    }

    /// The rule that decides at `now`, with the shadow rules matched before it and the first
    /// expired rule skipped on the way. Allocates nothing unless a shadow rule matches.
    pub fn classify_at(
        &self,
        host: &str,
        path: &NormalizedPath,
        method: &http::Method,
        now: UnixTime,
    ) -> Classified<'_> {
        let mut shadows = Vec::new();
        let mut expired = None;
        for r in &self.rules {
            if !r.matches(host, path, method, self.case_sensitive) {
                continue;
            }
            if r.rollout.expired(now) {
                expired = expired.or(Some(r));
            } else if r.rollout.is_shadow() {
                shadows.push(r);
            } else {
                return Classified { rule: r, shadows, expired };
            }
        }
        Classified { rule: &self.default, shadows, expired }
    }

    pub fn case_sensitive(&self) -> bool {
        self.case_sensitive
    }
}

/// What `classify_at` found.
#[derive(Debug)]
pub struct Classified<'a> {
    /// The rule that decides.
    pub rule: &'a Rule,
    /// Shadow rules that matched before it, in order.
    pub shadows: Vec<&'a Rule>,
    /// The first expired rule that matched before it, skipped.
    pub expired: Option<&'a Rule>,
}

fn digest(raw: &impl fmt::Debug) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(format!("{raw:?}").as_bytes()).into()
}

/// Whether some request could match both rules (conservative: true when unsure).
fn overlaps(a: &Rule, b: &Rule) -> bool {
    let hosts = match (a.host.as_deref(), b.host.as_deref()) {
        (Some(x), Some(y)) if !x.contains('*') && !y.contains('*') => x == y,
        _ => true,
    };
    let methods = match (a.methods.as_deref(), b.methods.as_deref()) {
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        _ => true,
    };
    let paths = match (&a.path, &b.path) {
        (Some(x), Some(y)) => x.overlaps(y),
        _ => true,
    };
    hosts && methods && paths
}

/// Whether `earlier` matches every request `later` could match.
fn covers(earlier: &Rule, later: &Rule, case_sensitive: bool) -> bool {
    let (Some(a), Some(b)) = (&earlier.path, &later.path) else {
        return false;
    };
    host_covers(earlier.host.as_deref(), later.host.as_deref())
        && methods_cover(earlier.methods.as_deref(), later.methods.as_deref())
        && a.covers(b, case_sensitive)
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
