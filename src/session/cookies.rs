//! Cookie names and flags, set in one place.
//!
//! Over https the names carry the `__Host-` prefix (Secure, Path=/, no Domain), so a sibling
//! subdomain cannot plant them. HttpOnly and SameSite=Lax always.

use cookie::{Cookie, SameSite};
use http::header::{HeaderMap, HeaderValue, COOKIE};

pub const SESSION: &str = "stepgate_session";
pub const CSRF: &str = "stepgate_csrf";
/// The long-lived, signed device cookie of the risk scorer (see risk::device).
pub const DEVICE: &str = "stepgate_device";
/// Names the new recovery codes waiting to be shown once (see web::new_codes).
pub const NEW_CODES: &str = "stepgate_codes";
/// Binds an OpenID sign-in to the browser that started it (the `state` sent to the IdP).
pub const OIDC_STATE: &str = "stepgate_oidc";

/// The name a cookie goes by, given whether the public URL is https.
pub fn name(base: &str, https: bool) -> String {
    if https {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// A `Set-Cookie` value. `max_age_secs` None: a browser-session cookie; Some(0): delete it.
pub fn set(base: &str, value: &str, https: bool, max_age_secs: Option<i64>) -> HeaderValue {
    let mut c = Cookie::build((name(base, https), value.to_string()))
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Lax)
        .build();
    if let Some(secs) = max_age_secs {
        c.set_max_age(cookie::time::Duration::seconds(secs));
    }
    // Cookie values we set are base64url: always a valid header value.
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Deletes a cookie.
pub fn clear(base: &str, https: bool) -> HeaderValue {
    set(base, "", https, Some(0))
}

/// Reads a cookie the gateway set. Several cookies of the same name: none is trusted.
pub fn get(headers: &HeaderMap, base: &str, https: bool) -> Option<String> {
    let wanted = name(base, https);
    let mut found = None;
    for value in headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()) {
        for (n, v) in pairs(value) {
            if n == wanted {
                if found.is_some() {
                    return None;
                }
                found = Some(v.to_string());
            }
        }
    }
    found
}

/// The `name=value` pairs of a `Cookie` header value, trimmed, as the `cookie` crate's
/// `split_parse` reads them (a piece without `=` or with an empty name is skipped), without
/// allocating.
fn pairs(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(';').filter_map(|piece| {
        let (n, v) = piece.split_once('=')?;
        let n = n.trim();
        (!n.is_empty()).then(|| (n, v.trim()))
    })
}

/// Removes the gateway's own cookies from a request before it goes upstream: the app never
/// sees the session id.
pub fn strip_own(headers: &mut HeaderMap, https: bool) {
    let own =
        [name(SESSION, https), name(CSRF, https), name(DEVICE, https), name(NEW_CODES, https), name(OIDC_STATE, https)];
    let mut kept = String::new();
    for value in headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()) {
        for pair in value.split(';').map(str::trim) {
            let n = pair.split('=').next().unwrap_or("").trim();
            if !pair.is_empty() && !own.iter().any(|o| o == n) {
                if !kept.is_empty() {
                    kept.push_str("; ");
                }
                kept.push_str(pair);
            }
        }
    }
    headers.remove(COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept) {
            headers.insert(COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-rolled pair reader finds what the `cookie` crate finds, on random headers.
    #[test]
    fn pairs_read_as_the_cookie_crate_reads() {
        use rand::Rng;
        const ALPHABET: &[u8] = b"ab=; \t\"x_-=;;A1";
        let mut rng = rand::thread_rng();
        for _ in 0..100_000 {
            let len = rng.gen_range(0..16);
            let text: String = (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
            let ours: Vec<(String, String)> = pairs(&text).map(|(n, v)| (n.into(), v.into())).collect();
            let theirs: Vec<(String, String)> =
                Cookie::split_parse(text.as_str()).flatten().map(|c| (c.name().into(), c.value().into())).collect();
            assert_eq!(ours, theirs, "{text:?}");
        }
    }

    #[test]
    fn flags_follow_the_public_scheme() {
        let s = set(SESSION, "abc", true, None);
        let s = s.to_str().unwrap();
        assert!(s.starts_with("__Host-stepgate_session=abc"), "{s}");
        assert!(s.contains("HttpOnly") && s.contains("Secure") && s.contains("SameSite=Lax") && s.contains("Path=/"));
        let p = set(SESSION, "abc", false, None);
        let p = p.to_str().unwrap();
        assert!(p.starts_with("stepgate_session=abc") && !p.contains("Secure"), "{p}");
    }

    #[test]
    fn duplicate_cookies_are_not_trusted_and_own_cookies_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("stepgate_session=a; app=1; stepgate_csrf=c"));
        assert_eq!(get(&h, SESSION, false).as_deref(), Some("a"));
        h.append(COOKIE, HeaderValue::from_static("stepgate_session=b"));
        assert_eq!(get(&h, SESSION, false), None);
        strip_own(&mut h, false);
        assert_eq!(h.get(COOKIE).unwrap(), "app=1");
    }
}
