//! Method overrides: a request that names another method than the one it was sent with
//! (`_method`). Rules match the method a request is sent with, while an app that honours an
//! override acts as the method it names: such a request is refused, never reinterpreted.
//!
//! Where the frameworks read it: the query (Symfony, Laravel, Express's `method-override`), a
//! POST's form fields (Rails' `Rack::MethodOverride`, Laravel, Symfony; urlencoded and
//! multipart) and a POST's JSON members (Laravel reads JSON bodies into the same input).

/// A field name that names a method override, as the frameworks read names: `_method` in any
/// case, also percent-encoded, and with PHP's spellings (`.` and space become `_`).
fn is_override_key(k: &str) -> bool {
    let k = k.as_bytes();
    k.len() == 7 && matches!(k[0], b'_' | b'.' | b' ') && k[1..].eq_ignore_ascii_case(b"method")
}

/// Whether a query carries `_method`.
pub fn query_overrides(query: &str) -> bool {
    if !query.as_bytes().windows(6).any(|w| w.eq_ignore_ascii_case(b"method")) {
        return false; // the hot path: no parse
    }
    form_urlencoded::parse(query.as_bytes()).any(|(k, _)| is_override_key(&k))
}

/// Whether a framework may read form fields or JSON members from a POST sent with these
/// `Content-Type` values: none at all (Rack reads such a POST as a form), more than one (apps
/// differ in which they read), a form (urlencoded or multipart) or JSON.
pub fn body_may_override(content_types: &[&[u8]]) -> bool {
    let [one] = content_types else { return true };
    let essence = one.split(|b| *b == b';').next().unwrap_or_default().trim_ascii().to_ascii_lowercase();
    essence.is_empty()
        || essence == b"application/x-www-form-urlencoded"
        || essence.starts_with(b"multipart/")
        || essence.ends_with(b"/json")
        || essence.ends_with(b"+json")
}

/// Whether a POST body names another method: read as a form and as JSON whatever its label
/// says (an app may read it otherwise than it is labelled), and as multipart parts when
/// `content_type` gives a boundary.
pub fn body_overrides(content_type: &str, body: &[u8]) -> bool {
    if !body.windows(6).any(|w| w.eq_ignore_ascii_case(b"method")) {
        return false; // the common case: no parse
    }
    form_urlencoded::parse(body).any(|(k, _)| is_override_key(&k))
        || json_names_override(body)
        || multipart_names_override(content_type, body)
}

/// A JSON object with a top-level `_method` member.
fn json_names_override(body: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
        Ok(members) => members.keys().any(|k| is_override_key(k)),
        // Duplicate keys or the like: asked of the raw text, to fail closed.
        Err(_) => body.first().is_some_and(|b| *b == b'{') && raw_mentions_override(body),
    }
}

/// `multipart/...; boundary=...` → the boundary.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        let v = v.trim().trim_matches('"');
        (k.trim().eq_ignore_ascii_case("boundary") && !v.is_empty()).then(|| v.to_string())
    })
}

/// Whether a part of a multipart body is named `_method`: its headers name it in a
/// `Content-Disposition` parameter, or mention it at all (to fail closed on headers that parsers
/// read differently). Multipart without a boundary the gateway can read: any mention counts.
fn multipart_names_override(content_type: &str, body: &[u8]) -> bool {
    let multipart = content_type.trim_start().get(..10).is_some_and(|t| t.eq_ignore_ascii_case("multipart/"));
    match boundary(content_type) {
        Some(b) => parts_name_override(&b, body),
        None => multipart && raw_mentions_override(body),
    }
}

fn parts_name_override(boundary: &str, body: &[u8]) -> bool {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut at = 0;
    while let Some(i) = find(&body[at..], d) {
        at += i + d.len();
        let rest = &body[at..];
        let end = find(rest, b"\r\n\r\n").or_else(|| find(rest, b"\n\n")).unwrap_or(rest.len());
        if raw_mentions_override(&rest[..end]) {
            return true;
        }
    }
    false
}

/// Whether bytes name `_method` (or a spelling of it) as a whole name anywhere: not within a
/// longer name such as `payment_method`.
fn raw_mentions_override(bytes: &[u8]) -> bool {
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-');
    let whole = |start: usize, len: usize| {
        (start == 0 || !name_byte(bytes[start - 1])) && bytes.get(start + len).is_none_or(|b| !name_byte(*b))
    };
    let at = |start: usize, prefix: &[&[u8]]| {
        prefix.iter().any(|p| {
            let end = start + p.len() + 6;
            end <= bytes.len()
                && bytes[start..start + p.len()].eq_ignore_ascii_case(p)
                && bytes[start + p.len()..end].eq_ignore_ascii_case(b"method")
                && whole(start, p.len() + 6)
        })
    };
    (0..bytes.len()).any(|i| at(i, &[b"_", b".", b" ", b"%5f"]))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_naming_another_method_is_found_in_every_spelling() {
        for q in ["_method=DELETE", "a=1&_METHOD=put", "%5Fmethod=DELETE", ".method=DELETE", "+method=PATCH"] {
            assert!(query_overrides(q), "{q}");
        }
        for q in ["payment_method=card", "method=x", "methods=a", "a=_method", "x_method=1", ""] {
            assert!(!query_overrides(q), "{q}");
        }
    }

    #[test]
    fn a_body_naming_another_method_is_found_as_a_form_json_or_multipart() {
        let form = "application/x-www-form-urlencoded";
        assert!(body_overrides(form, b"name=a&_method=DELETE"));
        assert!(body_overrides(form, b"%5Fmethod=delete"));
        assert!(body_overrides(form, b"_Method=PUT"));
        assert!(!body_overrides(form, b"payment_method=card&note=method"));
        // JSON, also labelled as something else, and with a duplicate that serde would refuse.
        assert!(body_overrides("application/json", br#"{"_method":"DELETE","id":1}"#));
        assert!(body_overrides(form, br#"{"_method":"DELETE"}"#));
        assert!(body_overrides("application/json", br#"{"a":1,"a":2,"_method":"PUT"}"#));
        assert!(!body_overrides("application/json", br#"{"payment_method":"card"}"#));
        // Multipart: the part's name, quoted or not; a file's content is not a name.
        let mp = "multipart/form-data; boundary=XyZ";
        let part = |disposition: &str, value: &str| {
            format!("--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n--XyZ--\r\n").into_bytes()
        };
        assert!(body_overrides(mp, &part("form-data; name=\"_method\"", "DELETE")));
        assert!(body_overrides(mp, &part("form-data; name=_method", "DELETE")));
        assert!(body_overrides(mp, &part("form-data; NAME=\"_METHOD\"", "DELETE")));
        assert!(body_overrides("multipart/form-data; boundary=\"XyZ\"", &part("form-data; name=\"_method\"", "x")));
        assert!(!body_overrides(mp, &part("form-data; name=\"file\"; filename=\"a.txt\"", "a _method b")));
        assert!(!body_overrides(mp, &part("form-data; name=\"payment_method\"", "card")));
        assert!(body_overrides(mp, &part("form-data; name=\"%5Fmethod\"", "DELETE")));
        // RFC 5987 spelling, and multipart whose boundary cannot be read: any mention counts.
        assert!(body_overrides(mp, &part("form-data; name*=utf-8''%5Fmethod", "DELETE")));
        assert!(body_overrides("multipart/form-data", &part("form-data; name=\"_method\"", "DELETE")));
        assert!(!body_overrides("multipart/form-data", &part("form-data; name=\"file\"", "payment_method")));
        assert!(!body_overrides("application/json", br#"{"a":1,"a":2,"payment_method":"card"}"#));
    }

    #[test]
    fn forms_json_and_unlabelled_bodies_are_read_other_types_are_not() {
        for ct in [
            &[][..],
            &[&b"application/x-www-form-urlencoded; charset=utf-8"[..]][..],
            &[&b"Multipart/Form-Data; boundary=x"[..]][..],
            &[&b"application/json"[..]][..],
            &[&b"application/vnd.api+json"[..]][..],
            &[&b"text/plain"[..], &b"application/json"[..]][..],
            &[&b""[..]][..],
        ] {
            assert!(body_may_override(ct), "{ct:?}");
        }
        for ct in [&b"application/octet-stream"[..], b"text/plain", b"image/png"] {
            assert!(!body_may_override(&[ct]), "{ct:?}");
        }
    }
}
