//! `bind = "transaction"` and `confirm = "Transfer {amount} to {to}"` on a rule: the proof is
//! bound to the one request it confirms (its body digest), and the challenge page shows what
//! is being confirmed, filled from the request's form or JSON fields.

use crate::parse::ConfigError;
use crate::policy::level::Level;
use crate::policy::routes::Action;

/// A rule's transaction binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The confirmation text, in pieces; None: the page shows the fields as they are.
    pub confirm: Option<Template>,
}

/// `Transfer {amount} to {to}` as literal text and field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
}

/// The methods a bound rule binds (and a step-up keeps): all but the safe ones that carry no
/// body. Fail closed: an extension method (`PROPFIND`, a custom `X-PAY`) is bound too, or it
/// would pass a bound rule on the session's proof alone.
pub fn carries_body(method: &http::Method) -> bool {
    !matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE)
}

/// Parses `bind` and `confirm` of the rule at `prefix` (`routes.rules[2].`).
pub fn parse(
    prefix: &str,
    bind: Option<&str>,
    confirm: Option<&str>,
    methods: Option<&[String]>,
    action: &Action,
) -> Result<Option<Bind>, ConfigError> {
    let Some(bind) = bind else {
        if confirm.is_some() {
            return Err(ConfigError::new(format!("{prefix}confirm"), "needs bind = \"transaction\" on the same rule"));
        }
        return Ok(None);
    };
    if bind != "transaction" {
        return Err(ConfigError::new(
            format!("{prefix}bind"),
            format!("'{bind}': the only binding is \"transaction\""),
        ));
    }
    match action {
        Action::Require(r) if r.level >= Level::Aal2 => {}
        _ => {
            return Err(ConfigError::new(
                format!("{prefix}bind"),
                "needs require = \"aal2\" or \"aal3\": a transaction is confirmed with a second factor",
            ))
        }
    }
    if let Some(ms) = methods {
        let any = ms.iter().any(|m| carries_body(&http::Method::from_bytes(m.as_bytes()).unwrap_or(http::Method::GET)));
        if !any {
            return Err(ConfigError::new(
                format!("{prefix}bind"),
                "binds the body of a request: list a method that carries one (POST, PUT, PATCH, DELETE) in methods",
            ));
        }
    }
    let confirm = confirm.map(|c| Template::parse(&format!("{prefix}confirm"), c)).transpose()?;
    Ok(Some(Bind { confirm }))
}

impl Template {
    pub fn parse(key: &str, text: &str) -> Result<Template, ConfigError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| ConfigError::new(key, "a '{' is not closed by '}'"))?;
            let name = &after[..close];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
                return Err(ConfigError::new(
                    key,
                    format!("'{{{name}}}': a field name is letters, digits, '_', '-', '.'"),
                ));
            }
            pieces.push(Piece::Field(name.to_string()));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(ConfigError::new(key, "a '}' has no '{'"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        if pieces.is_empty() {
            return Err(ConfigError::new(key, "is empty"));
        }
        Ok(Template(pieces))
    }

    /// The text with each `{field}` replaced by its value (`?` when the request has none).
    /// A field sent more than once shows every value (`10 / 10000`): apps differ in which one
    /// they read (most take the last), so the confirmation never shows just one of them.
    /// Plain text: the page escapes it.
    pub fn render(&self, fields: &[(String, String)]) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(name) => {
                    let values: Vec<String> = fields.iter().filter(|(k, _)| k == name).map(|(_, v)| shown(v)).collect();
                    if values.is_empty() {
                        out.push('?');
                    } else {
                        out.push_str(&values.join(" / "));
                    }
                }
            }
        }
        out
    }
}

/// A value as shown in a confirmation: control characters made visible, long values cut.
fn shown(v: &str) -> String {
    let mut s: String = v.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).take(200).collect();
    if v.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// The fields of a body: urlencoded form pairs, or a JSON object's top-level scalars.
pub fn fields(content_type: &str, body: &[u8]) -> Vec<(String, String)> {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if ct == "application/x-www-form-urlencoded" {
        return form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).take(100).collect();
    }
    if ct == "application/json" || ct.ends_with("+json") {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
            return map
                .into_iter()
                .filter_map(|(k, v)| match v {
                    serde_json::Value::String(s) => Some((k, s)),
                    serde_json::Value::Number(n) => Some((k, n.to_string())),
                    serde_json::Value::Bool(b) => Some((k, b.to_string())),
                    _ => None,
                })
                .take(100)
                .collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::routes::Requirement;

    #[test]
    fn a_field_sent_twice_shows_every_value_in_the_confirmation() {
        let t = Template::parse("k", "Transfer {amount} to {to}").unwrap();
        let f = fields("application/x-www-form-urlencoded", b"amount=10&to=bob&amount=10000&to=eve");
        assert_eq!(t.render(&f), "Transfer 10 / 10000 to bob / eve");
        let f = fields("application/x-www-form-urlencoded", b"amount=10&to=bob");
        assert_eq!(t.render(&f), "Transfer 10 to bob");
    }

    #[test]
    fn every_method_but_the_safe_ones_is_bound() {
        for m in ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", "X-PAY", "MKCOL"] {
            assert!(carries_body(&http::Method::from_bytes(m.as_bytes()).unwrap()), "{m}");
        }
        for m in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert!(!carries_body(&http::Method::from_bytes(m.as_bytes()).unwrap()), "{m}");
        }
    }

    fn aal2() -> Action {
        Action::Require(Requirement { level: Level::Aal2, max_age: None, allow: None })
    }

    #[test]
    fn renders_fields_from_a_form_and_json() {
        let t = Template::parse("k", "Transfer {amount} to {to}").unwrap();
        let f = fields("application/x-www-form-urlencoded", b"to=bob&amount=10");
        assert_eq!(t.render(&f), "Transfer 10 to bob");
        let f = fields("application/json; charset=utf-8", br#"{"amount": 12.5, "to": "<b>eve</b>"}"#);
        assert_eq!(t.render(&f), "Transfer 12.5 to <b>eve</b>");
        assert_eq!(t.render(&[]), "Transfer ? to ?");
        assert_eq!(t.render(&[("to".into(), "a\nb".into())]), "Transfer ? to a\u{fffd}b");
    }

    #[test]
    fn refuses_what_cannot_bind_and_names_the_key() {
        let p = "routes.rules[0].";
        assert_eq!(parse(p, None, Some("x"), None, &aal2()).unwrap_err().key, "routes.rules[0].confirm");
        assert_eq!(parse(p, Some("request"), None, None, &aal2()).unwrap_err().key, "routes.rules[0].bind");
        let get = ["GET".to_string()];
        let e = parse(p, Some("transaction"), None, Some(&get), &aal2()).unwrap_err();
        assert!(e.to_string().contains("carries one"), "{e}");
        assert!(parse(p, Some("transaction"), None, None, &Action::Deny).is_err());
        let e = parse(p, Some("transaction"), Some("Pay {amount"), None, &aal2()).unwrap_err();
        assert_eq!(e.key, "routes.rules[0].confirm");
        let ok = parse(p, Some("transaction"), Some("Pay {amount} to {unknown_field}"), None, &aal2()).unwrap();
        assert!(ok.unwrap().confirm.is_some());
    }
}
