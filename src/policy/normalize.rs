//! Path and host normalization: the one place a request path is turned into what is matched
//! AND forwarded.
//!
//! The canonical form of a path:
//! - starts with `/`; segments are separated by single slashes (duplicates merged);
//! - has no `.` or `..` segments (removed as in RFC 3986 5.2.4; climbing above the root is refused);
//! - escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, every other escape is
//!   kept with upper-case hex; bytes that may not appear raw in a path are percent-encoded;
//! - keeps one trailing slash when the input ended in one (or in a dot segment);
//! - keeps the client's letter case (matching decides about case, not this module: `/ADMIN` is
//!   matched by `/admin/**` unless `routes.case_sensitive`).
//!
//! # What is refused, and why
//!
//! The app behind the gateway, its framework or the file system under it may read a path
//! differently from the route table: `/admin.` is `/admin` to IIS. Whatever some common reader
//! takes for another path is refused with 400, before any rule is looked at: the gateway cannot
//! know which reader sits behind it, so these refusals hold whatever the rules or
//! `routes.case_sensitive` say. Per segment, after decoding:
//!
//! | refused | example | read as | by |
//! |---|---|---|---|
//! | encoded `/`, any `\` | `/admin%2Fx`, `/admin%5Cx` | a segment boundary | servers that decode before splitting; Windows |
//! | `;`, raw or encoded | `/admin;x`, `/admin%3Bx/users` | `/admin`, `/admin/users` | Tomcat, Jetty, Spring strip path parameters (some after decoding) |
//! | encoded `?`, `#` | `/admin%3F`, `/admin%23/x` | `/admin` + query or fragment | apps that decode, then parse the URL again |
//! | controls (C0, DEL, C1), raw or encoded | `/admin%00.html`, `/admin%C2%85` | `/admin` | C string truncation, `trim()`/`strip()` |
//! | invalid escapes, escapes that are not UTF-8 | `/%C0%AE`, `/%u002e` | `.` | overlong-UTF-8 decoders, IIS `%u` escapes |
//! | double encoding: `%25` + two hex digits, or `%25u` + four | `/%2561dmin`, `/x%252F` | `/admin`, `/x/` | apps that decode twice |
//! | a segment ending in `.` | `/admin.`, `/admin../x`, `/admin%2E` | `/admin` | Windows and IIS drop trailing dots |
//! | whitespace starting or ending a segment | `/admin%20`, `/%20admin` | `/admin` | Windows drops trailing spaces; `trim()` |
//! | `+` starting or ending a segment | `/admin+` | `/admin ` then `/admin` | form decoders (`URLDecoder`, PHP `urldecode`) |
//! | `:$` (NTFS stream) | `/admin::$INDEX_ALLOCATION/x` | the directory `admin` | IIS on NTFS |
//! | a DOS 8.3 short name, `BASE~N[.EXT]` | `/ADMINI~1/x` | `/administration/x` | IIS with short names on |
//! | non-ASCII that folds onto ASCII, invisible characters, non-ASCII whitespace, slash look-alikes | `/admın`, `/ａｄｍｉｎ`, `/ad\u{AD}min` | `/admin` | see `confusable` for the table and its sources |
//!
//! Dots elsewhere (`/file.txt`, `/v1.2/x`, `/.well-known`) and ordinary non-ASCII (`/café`,
//! `/日本`) pass; the dot segments `.` and `..` (also spelled `%2E`) are resolved, not refused.
//!
//! Why refuse rather than fold: forwarding the folded form (`/admin` for `/admin.`) would hand
//! a strict app a path the client never sent; matching the folded form but forwarding the raw
//! one can let an earlier, laxer rule decide a path that a strict app treats as a protected one.
//! A 400 is right for every app. It costs some rare legitimate spellings, refused too:
//! `/c++`, `/straße` (`ß` upper-cases to `SS`), `/İstanbul`, emoji joined with ZWJ or
//! variation selectors, names ending in a dot.

use crate::policy::confusable;
use std::net::Ipv6Addr;

/// A request path in canonical form (see the module docs). Only `normalize_path` makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath(String);

impl NormalizedPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The non-empty segments, in order (`/a/b/` gives `a`, `b`; `/` gives none).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
    /// Whether the path ends in `/` (the root `/` does).
    pub fn has_trailing_slash(&self) -> bool {
        self.0.ends_with('/')
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path refused: {0}")]
    Refused(&'static str),
}

fn refuse(reason: &'static str) -> PathError {
    PathError::Refused(reason)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// May appear raw in a path segment besides unreserved: sub-delims (minus `;`), `:` and `@`.
fn is_raw_ok(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0x0f)] as char);
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Normalizes `raw`, the path part of a request target (the query already split off).
pub fn normalize_path(raw: &str) -> Result<NormalizedPath, PathError> {
    match already_normal(raw) {
        Some(checked) => checked.map(|()| NormalizedPath(raw.to_string())),
        None => normalize_slowly(raw),
    }
}

/// The common case, without allocating per segment: a path of bytes allowed raw (no escape,
/// no `\`, `;` or control), no empty segment but a trailing one, no dot segment, is its own
/// normal form once its segments pass the same checks. None: take the general path.
fn already_normal(raw: &str) -> Option<Result<(), PathError>> {
    let rest = raw.strip_prefix('/')?;
    if !rest.bytes().all(|b| b == b'/' || is_raw_ok(b)) {
        return None;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        match seg {
            "" if segments.peek().is_none() => {}
            "" | "." | ".." => return None,
            _ => {
                if let Err(e) = check_segment(seg) {
                    return Some(Err(e));
                }
            }
        }
    }
    Some(Ok(()))
}

/// The general case: escapes, dot segments, duplicate slashes.
fn normalize_slowly(raw: &str) -> Result<NormalizedPath, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(refuse("does not start with '/'"));
    }
    // Pass 1: escapes resolved, one canonical string per segment (empty segments included),
    // each with its bytes as decoded, which the segment checks read.
    let mut segments: Vec<(String, Vec<u8>)> = Vec::new();
    let mut current = String::new();
    let mut decoded: Vec<u8> = Vec::new();
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' => {
                segments.push((std::mem::take(&mut current), std::mem::take(&mut decoded)));
                i += 1;
            }
            b'%' => {
                let (hi, lo) =
                    match (bytes.get(i + 1).copied().and_then(hex_val), bytes.get(i + 2).copied().and_then(hex_val)) {
                        (Some(h), Some(l)) => (h, l),
                        _ => return Err(refuse("invalid percent escape")),
                    };
                let v = (hi << 4) | lo;
                match v {
                    b'/' => return Err(refuse("encoded slash")),
                    b'\\' => return Err(refuse("encoded backslash")),
                    b';' => return Err(refuse("encoded ';'")),
                    b'?' => return Err(refuse("encoded '?'")),
                    b'#' => return Err(refuse("encoded '#'")),
                    _ if is_control(v) => return Err(refuse("encoded control character")),
                    _ if is_unreserved(v) => current.push(v as char),
                    _ => push_escaped(&mut current, v),
                }
                decoded.push(v);
                i += 3;
            }
            b'\\' => return Err(refuse("backslash")),
            b';' => return Err(refuse("path parameter (';')")),
            _ if is_control(b) => return Err(refuse("control character")),
            _ => {
                if is_raw_ok(b) {
                    current.push(b as char);
                } else {
                    // Not allowed raw in a path (space, quotes, non-ASCII, ...): encode it so the
                    // same resource has one spelling. Valid UTF-8 since `raw` is a &str.
                    push_escaped(&mut current, b);
                }
                decoded.push(b);
                i += 1;
            }
        }
    }
    segments.push((current, decoded));

    // Pass 2: what a reader could take for another path, then dot segments and duplicate slashes.
    let last = segments.len() - 1;
    let mut trailing = false;
    let mut out: Vec<String> = Vec::with_capacity(segments.len());
    for (n, (seg, decoded)) in segments.into_iter().enumerate() {
        let is_last = n == last;
        let Ok(text) = std::str::from_utf8(&decoded) else {
            return Err(refuse("escapes do not decode to UTF-8"));
        };
        match seg.as_str() {
            "" => trailing = is_last,
            "." => trailing = is_last,
            ".." => {
                if out.pop().is_none() {
                    return Err(refuse("dot segments climb above the root"));
                }
                trailing = is_last;
            }
            _ => {
                check_segment(text)?;
                out.push(seg);
                trailing = false;
            }
        }
    }
    let mut path = String::with_capacity(raw.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if trailing || out.is_empty() {
        path.push('/');
    }
    Ok(NormalizedPath(path))
}

/// The refusals that read a whole decoded segment (see the module docs for who reads what).
/// `text` is neither empty nor a dot segment.
fn check_segment(text: &str) -> Result<(), PathError> {
    if is_double_encoded(text.as_bytes()) {
        return Err(refuse("double percent-encoding ('%25' before an escape)"));
    }
    if let Some(why) = text.chars().find_map(confusable::refused_char) {
        return Err(refuse(why));
    }
    let (first, end) = match (text.chars().next(), text.chars().next_back()) {
        (Some(f), Some(e)) => (f, e),
        _ => return Ok(()),
    };
    if end == '.' {
        return Err(refuse("segment ends in '.'"));
    }
    if first.is_whitespace() || end.is_whitespace() {
        return Err(refuse("segment starts or ends with whitespace"));
    }
    if first == '+' || end == '+' {
        return Err(refuse("segment starts or ends with '+' (a space to form decoders)"));
    }
    if text.contains(":$") {
        return Err(refuse("NTFS stream name (':$')"));
    }
    if is_dos_short_name(text) {
        return Err(refuse("DOS 8.3 short name ('~' and a number)"));
    }
    Ok(())
}

/// `%` followed by two hex digits, or by `u` and four (IIS), in the decoded text: an app that
/// decodes once more reads another character there. A raw `%` always starts a valid escape, so
/// every `%` here was spelled `%25`.
fn is_double_encoded(text: &[u8]) -> bool {
    let hex = |s: &[u8]| !s.is_empty() && s.iter().all(|&b| hex_val(b).is_some());
    text.iter().enumerate().filter(|&(_, &b)| b == b'%').any(|(i, _)| {
        let rest = &text[i + 1..];
        (rest.len() >= 2 && hex(&rest[..2])) || (rest.len() >= 5 && matches!(rest[0], b'u' | b'U') && hex(&rest[1..5]))
    })
}

/// `BASE~N` or `BASE~N.EXT` with BASE of 1 to 6 characters and EXT of at most 3: the form of the
/// 8.3 names Windows gives long file names (`ADMINI~1` for `administration`).
fn is_dos_short_name(text: &str) -> bool {
    let (name, ext) = match text.rsplit_once('.') {
        Some((n, e)) if !n.is_empty() => (n, Some(e)),
        _ => (text, None),
    };
    let Some((base, num)) = name.rsplit_once('~') else { return false };
    let base_len = base.chars().count();
    (1..=6).contains(&base_len)
        && !base.contains('.')
        && !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit())
        && ext.is_none_or(|e| e.chars().count() <= 3)
}

/// Lower-cases, drops the port and a trailing dot. None when it is not a valid host.
///
/// IPv6 literals come back in brackets in their canonical text form (`[::1]`).
pub fn normalize_host(raw: &str) -> Option<String> {
    if let Some(rest) = raw.strip_prefix('[') {
        let end = rest.find(']')?;
        let addr: Ipv6Addr = rest[..end].parse().ok()?;
        let after = &rest[end + 1..];
        if !after.is_empty() {
            valid_port(after.strip_prefix(':')?)?;
        }
        return Some(format!("[{addr}]"));
    }
    let host = match raw.split_once(':') {
        Some((h, port)) => {
            valid_port(port)?;
            h
        }
        None => raw,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return None;
        }
    }
    Some(host.to_ascii_lowercase())
}

/// An empty port is allowed (RFC 3986 3.2.3); otherwise up to 65535.
fn valid_port(port: &str) -> Option<()> {
    if port.is_empty() {
        return Some(());
    }
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().map(|_| ())
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
