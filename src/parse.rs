//! Parse helpers shared by every config section: durations, CIDRs, and the error that names
//! the key and the reason.

use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Duration;

/// A configuration error: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError { key: key.into(), reason: reason.into() }
    }
}

/// The duration units a config accepts, lower case only: `5M` is not five months here, nor five
/// minutes; it is an error. `ms` stays for sub-second timeouts (`upstream.connect_timeout =
/// "500ms"`); it cannot be mistaken for months.
pub const DURATION_UNITS: &str = "ms, s, m, h, d";

/// Parses a duration such as "30s", "5m", "12h", "1d" or "1h30m": whole numbers, each followed
/// by one of [`DURATION_UNITS`]. Anything else is an error naming the key and the units.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let bad = || {
        ConfigError::new(
            key,
            format!(
                "'{value}' is not a duration: write a whole number and a unit ({DURATION_UNITS}, lower case), e.g. \"30s\", \"5m\", \"12h\", \"1d\""
            ),
        )
    };
    let mut total = Duration::ZERO;
    let mut rest = value.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let letters = rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
        if digits == 0 || letters == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = match &rest[digits..digits + letters] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return Err(bad()),
        };
        let part = u32::try_from(n).ok().and_then(|n| unit.checked_mul(n)).ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = &rest[digits + letters..];
    }
    if total.is_zero() {
        return Err(ConfigError::new(key, "must be longer than zero"));
    }
    Ok(total)
}

pub fn parse_cidr(key: &str, s: &str) -> Result<IpNet, ConfigError> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| ConfigError::new(key, format!("'{s}' is not an IP address or CIDR")))
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn only_lower_case_units_an_operator_means() {
        for (text, secs) in
            [("30s", 30), ("5m", 300), ("12h", 43_200), ("1d", 86_400), ("400d", 34_560_000), ("1h30m", 5400)]
        {
            assert_eq!(parse_duration("k", text).unwrap(), Duration::from_secs(secs), "{text}");
        }
        for text in [
            "5M",
            "5 months",
            "1y",
            "5mo",
            "300",
            "5min",
            "1H",
            "5S",
            "1w",
            "1.5h",
            "-5m",
            "5 m",
            "m",
            "",
            "1h 30m",
            "5MS",
            "5Ms",
            "+5m",
            "99999999999d",
        ] {
            let e = parse_duration("rule 'x'.max_age", text).unwrap_err();
            assert_eq!(e.key, "rule 'x'.max_age");
            assert!(e.reason.contains("ms, s, m, h, d") && e.reason.contains("lower case"), "{text}: {e}");
        }
        assert_eq!(parse_duration("k", "300ms").unwrap(), Duration::from_millis(300));
        assert!(parse_duration("k", "0s").unwrap_err().reason.contains("longer than zero"));
    }
}
