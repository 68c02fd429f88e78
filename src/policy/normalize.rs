//! Path and host normalization: the one place a request path is turned into what is matched
//! AND forwarded.
//!
//! The canonical form of a path:
//! - starts with `/`; segments are separated by single slashes (duplicates merged);
//! - has no `.` or `..` segments (removed as in RFC 3986 5.2.4; climbing above the root is refused);
//! - escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, every other escape is
//!   kept with upper-case hex; bytes that may not appear raw in a path are percent-encoded;
//! - keeps one trailing slash when the input ended in one (or in a dot segment);
//! - keeps the client's letter case (matching decides about case, not this module).
//!
//! Whatever cannot be normalized without guessing is refused: an encoded `/`, any `\`, control
//! characters (raw or encoded), invalid escapes, escapes that do not decode to UTF-8, and `;`
//! path parameters.

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
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(refuse("does not start with '/'"));
    }
    // Pass 1: escapes resolved, one canonical string per segment (empty segments included).
    // `decoded` collects every byte as it decodes, to check the whole path is UTF-8.
    let mut segments: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' => {
                segments.push(std::mem::take(&mut current));
                decoded.push(b'/');
                i += 1;
            }
            b'%' => {
                let (hi, lo) =
                    match (bytes.get(i + 1).copied().and_then(hex_val), bytes.get(i + 2).copied().and_then(hex_val)) {
                        (Some(h), Some(l)) => (h, l),
                        _ => return Err(refuse("invalid percent escape")),
                    };
                let v = (hi << 4) | lo;
                if v == b'/' {
                    return Err(refuse("encoded slash"));
                }
                if v == b'\\' {
                    return Err(refuse("encoded backslash"));
                }
                if is_control(v) {
                    return Err(refuse("encoded control character"));
                }
                if is_unreserved(v) {
                    current.push(v as char);
                } else {
                    push_escaped(&mut current, v);
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
    segments.push(current);
    if std::str::from_utf8(&decoded).is_err() {
        return Err(refuse("escapes do not decode to UTF-8"));
    }

    // Pass 2: dot segments and duplicate slashes.
    let last = segments.len() - 1;
    let mut trailing = false;
    let mut out: Vec<String> = Vec::with_capacity(segments.len());
    for (n, seg) in segments.into_iter().enumerate() {
        let is_last = n == last;
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
