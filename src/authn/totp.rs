//! TOTP (RFC 6238) with the defaults every authenticator app understands: HMAC-SHA-1, 6 digits,
//! 30-second steps, and one step of drift either way.
//!
//! `check_code` returns the matched time step; the caller accepts it only if
//! `Store::raise_high_water(&format!("totp:{user}"), step)` returns true, so a code is used once
//! and never after a later one.

use crate::authn::AuthnError;
use crate::clock::UnixTime;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Secret};

pub const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;
pub const SECRET_LEN: usize = 20;

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A fresh 160-bit secret, as RFC 4226 recommends.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// RFC 4648 base32 without padding: what authenticator apps and `oathtool -b` accept.
pub fn secret_base32(secret: &[u8]) -> String {
    Secret::from(secret).to_base32().trim_end_matches('=').to_string()
}

/// The `otpauth://totp/...` key URI for enrollment. A `:` in issuer or account (the label's
/// separator, which neither may contain) is dropped.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let issuer = utf8_percent_encode(&issuer.replace(':', ""), URI_COMPONENT).to_string();
    let account = utf8_percent_encode(&account.replace(':', ""), URI_COMPONENT).to_string();
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        secret_base32(secret)
    )
}

/// The key URI as an inline SVG QR code (no external resources). Fails only for data too long
/// for a QR code.
pub fn qr_svg(uri: &str) -> Result<String, AuthnError> {
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| AuthnError::Qr(e.to_string()))?;
    Ok(code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build())
}

/// The time step `code` is valid for among the steps before, at and after `now`, or None.
/// Accepts exactly six ASCII digits (surrounding whitespace ignored); compares in constant time.
pub fn check_code(secret: &[u8], code: &str, now: UnixTime) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECS)
        .with_skew(1)
        .with_secret(secret.to_vec())
        .build()
        .ok()?;
    let current = now.0 / STEP_SECS;
    let mut matched = None;
    // All candidates are computed and compared, whichever matches.
    for step in [current.saturating_sub(1), current, current.saturating_add(1)] {
        let expected = totp.generate(step.saturating_mul(STEP_SECS)).to_string();
        let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if equal && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// "YYYY-MM-DD HH:MM:SS UTC" for a Unix time (days-to-civil, H. Hinnant).
    fn utc_string(t: u64) -> String {
        let days = (t / 86_400) as i64;
        let secs = t % 86_400;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
    }

    fn oathtool(base32: &str, at: u64) -> String {
        let out =
            Command::new("oathtool").args(["--totp", "-b", base32, "--now", &utc_string(at)]).output().unwrap_or_else(
                |e| panic!("cannot run `oathtool` ({e}): install the package `oathtool` (apt-get install -y oathtool)"),
            );
        assert!(out.status.success(), "oathtool failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn utc_string_is_right() {
        assert_eq!(utc_string(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_string(1_699_999_995), "2023-11-14 22:13:15 UTC");
        assert_eq!(utc_string(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn accepts_oathtool_codes_within_one_step_only() {
        for _ in 0..3 {
            let secret = new_secret();
            assert_eq!(secret.len(), 20);
            let b32 = secret_base32(&secret);
            // mid-step, so +-30 s lands in the neighbouring steps
            let t = 1_699_999_995u64;
            let step = t / 30;
            let code = oathtool(&b32, t);
            assert_eq!(code.len(), 6, "{code:?}");
            assert_eq!(check_code(&secret, &code, UnixTime(t)), Some(step));
            assert_eq!(check_code(&secret, &code, UnixTime(t - 30)), Some(step));
            assert_eq!(check_code(&secret, &code, UnixTime(t + 30)), Some(step));
            assert_eq!(check_code(&secret, &format!(" {code}\n"), UnixTime(t)), Some(step));
            for off in [60, 90] {
                assert_eq!(check_code(&secret, &code, UnixTime(t - off)), None, "-{off}");
                assert_eq!(check_code(&secret, &code, UnixTime(t + off)), None, "+{off}");
            }
            // another secret does not accept it
            assert_eq!(check_code(&new_secret(), &code, UnixTime(t)), None);
        }
    }

    #[test]
    fn rfc6238_vector() {
        // RFC 6238 appendix B, SHA-1, T = 59: 94287082, of which 6 digits are 287082.
        let secret = b"12345678901234567890";
        assert_eq!(check_code(secret, "287082", UnixTime(59)), Some(1));
        assert_eq!(oathtool(&secret_base32(secret), 59), "287082");
    }

    #[test]
    fn rejects_malformed_codes() {
        let secret = b"12345678901234567890";
        let now = UnixTime(59);
        for bad in
            ["", "28708", "2870822", "28708a", "+28708", "-28708", "287 082", "２８７０８２", "287082x", "0x1234"]
        {
            assert_eq!(check_code(secret, bad, now), None, "{bad:?}");
        }
        // a short secret is refused rather than used
        assert_eq!(check_code(b"short", "287082", now), None);
    }

    #[test]
    fn base32_has_no_padding_and_round_trips() {
        let secret = new_secret();
        let b32 = secret_base32(&secret);
        assert_eq!(b32.len(), 32);
        assert!(b32.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(secret_base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(secret_base32(&[0xff; 16]), "77777777777777777777777774");
        let parsed = Secret::try_from_base32(&b32).unwrap();
        assert_eq!(parsed.as_bytes(), secret.as_slice());
    }

    #[test]
    fn otpauth_uri_is_well_formed_and_parseable() {
        let secret = b"12345678901234567890";
        let uri = otpauth_uri(secret, "Step Gate", "alice@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/Step%20Gate:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Step%20Gate&algorithm=SHA1&digits=6&period=30"
        );
        let totp = totp_rs::Totp::from_url(&uri).unwrap();
        assert_eq!(totp.issuer(), Some("Step Gate"));
        assert_eq!(totp.account_name(), "alice@example.com");
        assert_eq!(totp.secret().as_bytes(), secret);
        let odd = otpauth_uri(secret, "a:b&c", "x:y");
        assert!(odd.starts_with("otpauth://totp/ab%26c:xy?"), "{odd}");
    }

    #[test]
    fn qr_svg_is_inline_svg() {
        let svg = qr_svg(&otpauth_uri(&new_secret(), "stepgate", "alice")).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("</svg>"));
        assert!(!svg.contains("href"), "no external resources");
        assert!(qr_svg(&"x".repeat(10_000)).is_err());
    }
}
