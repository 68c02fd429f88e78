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

/// The fields of a body: urlencoded form pairs, or a JSON object's top-level members (a
/// nested value as its JSON text). Lenient: what a kept (unbound) request's page shows.
pub fn fields(content_type: &str, body: &[u8]) -> Vec<(String, String)> {
    match body_kind(content_type) {
        Some(Kind::Form) => form_pairs(body).take(100).collect(),
        Some(Kind::Json) => json_pairs(body).map(|p| p.into_iter().take(100).collect()).unwrap_or_default(),
        None => Vec::new(),
    }
}

/// Why a bound request's body cannot be shown as what the app will act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// `Content-Encoding` other than identity: the app decodes what the gateway cannot show.
    Encoded,
    /// Not a form or JSON, or a charset other than UTF-8.
    Type,
    /// Declared a form or JSON but is not one (invalid JSON, not UTF-8, JSON sent as a form).
    Malformed,
}

impl Unreadable {
    pub fn status(self) -> http::StatusCode {
        match self {
            Unreadable::Encoded | Unreadable::Type => http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Unreadable::Malformed => http::StatusCode::BAD_REQUEST,
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            Unreadable::Encoded => {
                "This action is confirmed field by field, so its body must not be compressed (Content-Encoding)."
            }
            Unreadable::Type => {
                "This action is confirmed field by field: send it as a form (application/x-www-form-urlencoded) \
                 or as JSON, in UTF-8."
            }
            Unreadable::Malformed => "The body is not the form or JSON its Content-Type says it is.",
        }
    }
}

/// What a bound request asks, field by field, for its confirmation: the query's pairs and then
/// the body's, every one (a name given twice, or in both places, shows every value). Fails
/// closed where the app could read the request otherwise than the page shows it.
pub fn confirmed_fields(
    content_type: &str,
    content_encoding: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, Unreadable> {
    if content_encoding.is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity")) {
        return Err(Unreadable::Encoded);
    }
    let mut out: Vec<(String, String)> = query.map(|q| form_pairs(q.as_bytes()).collect()).unwrap_or_default();
    let utf8 =
        |pairs: &[(String, String)]| !pairs.iter().any(|(k, v)| k.contains('\u{fffd}') || v.contains('\u{fffd}'));
    if !utf8(&out) {
        return Err(Unreadable::Malformed);
    }
    if body.is_empty() {
        return Ok(out);
    }
    if !charset_is_utf8(content_type) {
        return Err(Unreadable::Type);
    }
    let from_body: Vec<(String, String)> = match body_kind(content_type).ok_or(Unreadable::Type)? {
        Kind::Form => {
            // JSON labelled a form: many apps parse JSON whatever the label says.
            if body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| matches!(b, b'{' | b'[')) {
                return Err(Unreadable::Malformed);
            }
            form_pairs(body).collect()
        }
        Kind::Json => json_pairs(body).ok_or(Unreadable::Malformed)?,
    };
    if !utf8(&from_body) {
        return Err(Unreadable::Malformed);
    }
    out.extend(from_body);
    Ok(out)
}

#[derive(Clone, Copy)]
enum Kind {
    Form,
    Json,
}

fn body_kind(content_type: &str) -> Option<Kind> {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if ct == "application/x-www-form-urlencoded" {
        Some(Kind::Form)
    } else if ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json")) {
        Some(Kind::Json)
    } else {
        None
    }
}

/// No `charset` parameter, or UTF-8.
fn charset_is_utf8(content_type: &str) -> bool {
    content_type.split(';').skip(1).all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

fn form_pairs(bytes: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// A JSON object's members in order, duplicates kept (apps differ in which one they read); a
/// nested value as its JSON text. None: not a JSON object.
fn json_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    struct Members(Vec<(String, serde_json::Value)>);
    impl<'de> serde::Deserialize<'de> for Members {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Members;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Members, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = m.next_entry::<String, serde_json::Value>()? {
                        out.push(entry);
                    }
                    Ok(Members(out))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    let Members(members) = serde_json::from_slice(body).ok()?;
    let text = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    Some(members.into_iter().map(|(k, v)| (k, text(v))).collect())
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
    fn a_bound_body_is_shown_as_the_app_reads_it_or_refused() {
        let t = Template::parse("k", "Transfer {amount} to {to}").unwrap();
        let form = "application/x-www-form-urlencoded";
        let show = |ct: &str, ce: Option<&str>, q: Option<&str>, body: &[u8]| {
            confirmed_fields(ct, ce, q, body).map(|f| t.render(&f))
        };
        assert_eq!(show(form, None, None, b"amount=10&to=bob"), Ok("Transfer 10 to bob".into()));
        // A payee in the query (Flask's request.values, PHP's $_REQUEST read it) shows too.
        assert_eq!(show(form, None, Some("to=eve"), b"amount=10&to=bob"), Ok("Transfer 10 to eve / bob".into()));
        // JSON: duplicates and nested values shown, never hidden.
        let json = "application/json";
        assert_eq!(
            show(json, None, None, br#"{"amount":10,"to":"bob","amount":10000}"#),
            Ok("Transfer 10 / 10000 to bob".into())
        );
        assert_eq!(
            show(json, None, None, br#"{"amount":10,"to":{"iban":"X"}}"#),
            Ok(r#"Transfer 10 to {"iban":"X"}"#.into())
        );
        // A gzip body whose header comment reads like a form: the app would decode it.
        let gz = b"\x1f\x8b\x08\x10\0\0\0\0\0\x03&amount=10&to=bob&\0";
        assert_eq!(show(form, Some("gzip"), None, gz), Err(Unreadable::Encoded));
        assert_eq!(show(form, Some("identity"), None, b"amount=1&to=a"), Ok("Transfer 1 to a".into()));
        // JSON labelled a form, with a form-looking string inside.
        let sneaky = br#"{"amount":10000,"to":"eve","x":"&amount=10&to=bob&"}"#;
        assert_eq!(show(form, None, None, sneaky), Err(Unreadable::Malformed));
        assert_eq!(show(json, None, None, b"amount=10&to=bob"), Err(Unreadable::Malformed));
        assert_eq!(show("text/plain", None, None, b"amount=10&to=bob"), Err(Unreadable::Type));
        assert_eq!(show("multipart/form-data; boundary=x", None, None, b"--x"), Err(Unreadable::Type));
        assert_eq!(
            show("application/x-www-form-urlencoded; charset=utf-16", None, None, b"a=1"),
            Err(Unreadable::Type)
        );
        assert_eq!(
            show("application/json; charset=\"UTF-8\"", None, None, br#"{"amount":1}"#),
            Ok("Transfer 1 to ?".into())
        );
        assert_eq!(show(form, None, None, b"amount=%FF&to=bob"), Err(Unreadable::Malformed), "not UTF-8");
        // No body (DELETE): the query is what is confirmed.
        assert_eq!(show("", None, Some("amount=5&to=bob"), b""), Ok("Transfer 5 to bob".into()));
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
