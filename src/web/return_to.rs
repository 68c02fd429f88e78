//! The return URL after a page: only a same-origin relative path, normalized like any request.

use crate::policy::normalize::normalize_path;

/// Returns a safe local path (with query) or "/" when `raw` is anything else: `//host`,
/// `/\host`, a scheme, their percent-encoded forms, control characters, or a path that does
/// not normalize.
pub fn sanitize(raw: &str) -> String {
    safe(raw).unwrap_or_else(|| "/".to_string())
}

fn safe(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > 2048 || !raw.starts_with('/') {
        return None;
    }
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\') {
        return None;
    }
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let lower = path.to_ascii_lowercase();
    // `//host`, and encoded slashes or backslashes anywhere (`/%2F/host`, `/%5Chost`).
    if lower.starts_with("//") || lower.contains("%2f") || lower.contains("%5c") || path.contains('#') {
        return None;
    }
    let normalized = normalize_path(path).ok()?;
    let p = normalized.as_str();
    // Of the gateway's own pages, only those meant to be come back to.
    let own_ok = ["/.stepgate/account", "/.stepgate/enroll/totp"].iter().any(|o| p.eq_ignore_ascii_case(o));
    if p.starts_with("//") || crate::pipeline::is_gateway_path(p) && !own_ok {
        return None;
    }
    Some(match query {
        Some(q) if !q.contains('#') => format!("{p}?{q}"),
        _ => p.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn only_local_paths_come_back() {
        let refused = [
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/%2F%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "evil.example",
            "",
            "/\tevil",
            "/\r\nLocation: x",
            "/../../etc",
            "/.stepgate/logout",
        ];
        for r in refused {
            assert_eq!(sanitize(r), "/", "{r:?} must be refused");
        }
        assert_eq!(sanitize("/transfer"), "/transfer");
        assert_eq!(sanitize("/a/./b/../c?x=1&y=2"), "/a/c?x=1&y=2");
        assert_eq!(sanitize("/%61dmin"), "/admin");
    }
}
