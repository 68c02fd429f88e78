//! The route table as `stepgate check-config` prints it, and its expiry report.

use crate::clock::UnixTime;
use crate::policy::routes::RouteTable;

/// How far ahead `check-config` and the gateway warn about expiring rules.
pub const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

impl RouteTable {
    /// A human-readable table for `stepgate check-config`.
    pub fn describe(&self) -> String {
        let header = ["#", "name", "host", "path", "methods", "mode", "expires", "action"];
        let mut rows: Vec<[String; 8]> = vec![header.map(String::from)];
        for (n, r) in self.rules.iter().enumerate() {
            rows.push([
                (n + 1).to_string(),
                r.name.clone(),
                r.host_glob().unwrap_or("*").to_string(),
                r.path_pattern().unwrap_or("/**").to_string(),
                r.methods().map(|m| m.join(",")).unwrap_or_else(|| "*".into()),
                r.rollout.mode.as_str().to_string(),
                r.rollout.expiry.as_ref().map_or("-".to_string(), |e| e.text.clone()),
                if r.conditions.is_empty() { r.action.to_string() } else { format!("{}; {}", r.action, r.conditions) },
            ]);
        }
        rows.push(
            ["-", "default", "*", "/**", "*", "enforce", "-", &self.default.action.to_string()].map(String::from),
        );
        let mut widths = [0usize; 8];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &rows {
            let mut line = String::new();
            for (k, cell) in row.iter().enumerate() {
                if k + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[k]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if self.case_sensitive() {
            out.push_str("paths compare case-sensitively\n");
        } else {
            out.push_str("paths compare ASCII case-insensitively\n");
        }
        out
    }

    /// One line per rule that has expired or expires within 14 days of `now`, e.g.
    /// "warning: rule 'x' expires in 3d 4h (2027-03-31; owner ann, ticket SEC-1)".
    pub fn expiry_warnings(&self, now: UnixTime) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.rules {
            let Some(e) = &r.rollout.expiry else { continue };
            let left = e.seconds_left(now);
            let criteria = e.criteria();
            let criteria = if criteria.is_empty() { String::new() } else { format!("; {criteria}") };
            if left <= 0 {
                out.push(format!(
                    "expired: rule '{}' expired at {}{criteria}; it is skipped, remove it",
                    r.name, e.text
                ));
            } else if left.unsigned_abs() <= EXPIRY_WARNING.as_secs() {
                let left = humantime::format_duration(std::time::Duration::from_secs(left.unsigned_abs() / 60 * 60));
                out.push(format!("warning: rule '{}' expires in {left} ({}{criteria})", r.name, e.text));
            }
        }
        out
    }
}
