//! TOTP codes from `oathtool` (Debian package `oathtool`), the external judge.

use std::process::Command;

/// `oathtool --totp -b SECRET --now "YYYY-MM-DD HH:MM:SS UTC"` for the unix time `at`.
pub fn code(secret_b32: &str, at: u64) -> String {
    let now = utc(at);
    let out = Command::new("oathtool").args(["--totp", "-b", secret_b32, "--now", &now]).output().unwrap_or_else(|e| {
        panic!("cannot run `oathtool` ({e}): install the Debian package `oathtool` (apt-get install oathtool)")
    });
    assert!(out.status.success(), "oathtool failed: {}", String::from_utf8_lossy(&out.stderr));
    let code = String::from_utf8(out.stdout).expect("oathtool prints ASCII").trim().to_string();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "odd oathtool output {code:?}");
    code
}

/// A six-digit code that is none of the codes valid around `at` (previous, current, next step).
pub fn wrong_code(secret_b32: &str, at: u64) -> String {
    let valid: Vec<String> = [at - 30, at, at + 30].iter().map(|t| code(secret_b32, *t)).collect();
    (0..1_000_000u32).map(|n| format!("{:06}", (n * 7919 + 123_457) % 1_000_000)).find(|c| !valid.contains(c)).unwrap()
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a unix time (proleptic Gregorian, days-from-civil inverse).
pub fn utc(at: u64) -> String {
    let days = (at / 86_400) as i64;
    let secs = at % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[test]
fn utc_formats_the_manual_clock_start() {
    assert_eq!(utc(super::T0), "2026-11-23 12:00:00 UTC");
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
}
