//! What an identity provider or a token issuer says it proved (`acr`, `amr`, RFC 8176), as a
//! stepgate level. One table for ID tokens (`[identity]`) and access tokens (`[bearer]`).
//!
//! Only what came back in a verified token is ever mapped, never what was asked for.

use crate::parse::ConfigError;
use crate::policy::level::Level;
use std::collections::BTreeMap;

/// `acr` values and `amr` values (or `+`-joined sets of them) with the level each proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssuranceMap {
    /// In the order `acr_values` are offered: lowest level first, then as written.
    acr: Vec<(String, Level)>,
    /// Each entry's methods must all be in `amr` for it to count.
    amr: Vec<(Vec<String>, Level)>,
}

/// `acr` values with a meaning across IdPs: stepgate's own names, the OpenID EAP ACR values
/// (`phr`, `phrh`), the PAPE policies, and Okta's LoA URNs. IdPs whose `acr` is local (Keycloak's
/// "1"/"2", Entra's authentication contexts) need an `acr_map` of their own.
pub const DEFAULT_ACR: &[(&str, Level)] = &[
    ("aal1", Level::Aal1),
    ("aal2", Level::Aal2),
    ("aal3", Level::Aal3),
    ("urn:okta:loa:1fa:any", Level::Aal1),
    ("urn:okta:loa:1fa:pwd", Level::Aal1),
    ("urn:okta:loa:2fa:any", Level::Aal2),
    ("http://schemas.openid.net/pape/policies/2007/06/multi-factor", Level::Aal2),
    ("urn:okta:loa:2fa:any:ifpossible", Level::Aal2),
    ("phr", Level::Aal3),
    ("phrh", Level::Aal3),
    ("http://schemas.openid.net/pape/policies/2007/06/phishing-resistant", Level::Aal3),
];

/// RFC 8176 `amr` values. A one-time code or a key alone is one factor; with a password, or
/// `mfa` said outright, two; a hardware key with user verification (PIN or biometric) is aal3.
pub const DEFAULT_AMR: &[(&str, Level)] = &[
    ("pwd", Level::Aal1),
    ("pin", Level::Aal1),
    ("kba", Level::Aal1),
    ("otp", Level::Aal1),
    ("sms", Level::Aal1),
    ("tel", Level::Aal1),
    ("swk", Level::Aal1),
    ("hwk", Level::Aal2),
    ("mfa", Level::Aal2),
    ("mca", Level::Aal2),
    ("pwd+otp", Level::Aal2),
    ("pwd+swk", Level::Aal2),
    ("pwd+sms", Level::Aal2),
    ("hwk+pin", Level::Aal3),
    ("hwk+fpt", Level::Aal3),
    ("hwk+face", Level::Aal3),
    ("hwk+iris", Level::Aal3),
];

fn level_value(key: &str, value: &str) -> Result<Level, ConfigError> {
    match Level::parse(value.trim()) {
        Some(Level::None) | None => {
            Err(ConfigError::new(key, format!("{value:?} is not a level: write \"aal1\", \"aal2\" or \"aal3\"")))
        }
        Some(l) => Ok(l),
    }
}

impl Default for AssuranceMap {
    fn default() -> Self {
        AssuranceMap::from_tables(DEFAULT_ACR, DEFAULT_AMR)
    }
}

impl AssuranceMap {
    fn from_tables(acr: &[(&str, Level)], amr: &[(&str, Level)]) -> AssuranceMap {
        let mut acr: Vec<(String, Level)> = acr.iter().map(|(k, l)| (k.to_string(), *l)).collect();
        acr.sort_by_key(|(_, l)| *l);
        let amr = amr.iter().map(|(k, l)| (k.split('+').map(str::to_string).collect(), *l)).collect();
        AssuranceMap { acr, amr }
    }

    /// From the config's `acr_map` and `amr_map` (each replaces its default table when given);
    /// `prefix` is e.g. "identity.".
    pub fn parse(
        prefix: &str,
        acr_map: Option<&BTreeMap<String, String>>,
        amr_map: Option<&BTreeMap<String, String>>,
    ) -> Result<AssuranceMap, ConfigError> {
        let mut map = AssuranceMap::default();
        if let Some(raw) = acr_map {
            let mut acr = Vec::with_capacity(raw.len());
            for (value, level) in raw {
                let key = format!("{prefix}acr_map.{value:?}");
                if value.trim().is_empty() || value.contains(char::is_whitespace) {
                    return Err(ConfigError::new(key, "an acr value is one word, without spaces"));
                }
                acr.push((value.clone(), level_value(&key, level)?));
            }
            acr.sort_by_key(|(_, l)| *l);
            map.acr = acr;
        }
        if let Some(raw) = amr_map {
            let mut amr = Vec::with_capacity(raw.len());
            for (value, level) in raw {
                let key = format!("{prefix}amr_map.{value:?}");
                let methods: Vec<String> = value.split('+').map(|m| m.trim().to_string()).collect();
                if methods.iter().any(|m| m.is_empty() || m.contains(char::is_whitespace)) {
                    return Err(ConfigError::new(
                        key,
                        "an amr entry is a method such as \"hwk\", or methods joined by '+' such as \"hwk+pin\"",
                    ));
                }
                amr.push((methods, level_value(&key, level)?));
            }
            map.amr = amr;
        }
        Ok(map)
    }

    /// The level a verified token proves: the higher of what its `acr` and its `amr` map to;
    /// `Level::None` when neither is known (the caller decides what a plain sign-in counts for).
    pub fn level(&self, acr: Option<&str>, amr: &[String]) -> Level {
        let by_acr = acr.and_then(|a| self.acr.iter().find(|(v, _)| v == a)).map_or(Level::None, |(_, l)| *l);
        let by_amr = self
            .amr
            .iter()
            .filter(|(methods, _)| methods.iter().all(|m| amr.contains(m)))
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(Level::None);
        by_acr.max(by_amr)
    }

    /// The `acr` values that prove at least `level`, lowest first: what to ask an IdP for
    /// (`acr_values`) and what an RFC 9470 answer names.
    pub fn acr_values_for(&self, level: Level) -> Vec<&str> {
        self.acr.iter().filter(|(_, l)| *l >= level).map(|(v, _)| v.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amr(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_follow_rfc_8176_and_the_common_acr_values() {
        let m = AssuranceMap::default();
        assert_eq!(m.level(None, &amr(&["pwd"])), Level::Aal1);
        assert_eq!(m.level(None, &amr(&["otp"])), Level::Aal1, "a code alone is one factor");
        assert_eq!(m.level(None, &amr(&["pwd", "otp"])), Level::Aal2);
        assert_eq!(m.level(None, &amr(&["mfa"])), Level::Aal2);
        assert_eq!(m.level(None, &amr(&["hwk"])), Level::Aal2);
        assert_eq!(m.level(None, &amr(&["hwk", "pin"])), Level::Aal3);
        assert_eq!(m.level(Some("phr"), &[]), Level::Aal3);
        assert_eq!(m.level(Some("urn:okta:loa:2fa:any"), &amr(&["pwd"])), Level::Aal2);
        assert_eq!(m.level(Some("unknown"), &[]), Level::None);
        assert_eq!(m.level(None, &[]), Level::None);
    }

    #[test]
    fn configured_tables_replace_the_defaults_and_name_bad_entries() {
        let acr: BTreeMap<String, String> = [("1".to_string(), "aal1".to_string()), ("2".into(), "aal2".into())].into();
        let amr: BTreeMap<String, String> = [("otp".to_string(), "aal2".to_string())].into();
        let m = AssuranceMap::parse("identity.", Some(&acr), Some(&amr)).unwrap();
        assert_eq!(m.level(Some("2"), &[]), Level::Aal2);
        assert_eq!(m.level(Some("phr"), &[]), Level::None, "the default acr table is replaced");
        assert_eq!(m.level(None, &amr_of("otp")), Level::Aal2);
        assert_eq!(m.acr_values_for(Level::Aal2), vec!["2"]);
        assert_eq!(m.acr_values_for(Level::Aal1), vec!["1", "2"]);

        let bad: BTreeMap<String, String> = [("2".to_string(), "strong".to_string())].into();
        let e = AssuranceMap::parse("identity.", Some(&bad), None).unwrap_err();
        assert!(e.to_string().contains("identity.acr_map.\"2\""), "{e}");
        let none: BTreeMap<String, String> = [("x".to_string(), "none".to_string())].into();
        assert!(AssuranceMap::parse("bearer.", None, Some(&none)).is_err());
        let spaced: BTreeMap<String, String> = [("hwk + ".to_string(), "aal3".to_string())].into();
        assert!(AssuranceMap::parse("bearer.", None, Some(&spaced)).is_err());
    }

    fn amr_of(v: &str) -> Vec<String> {
        vec![v.to_string()]
    }

    #[test]
    fn acr_values_are_offered_lowest_sufficient_first() {
        let m = AssuranceMap::default();
        let aal2 = m.acr_values_for(Level::Aal2);
        let levels: Vec<Level> = aal2.iter().map(|v| m.level(Some(v), &[])).collect();
        assert!(levels.windows(2).all(|w| w[0] <= w[1]), "{aal2:?}");
        assert_eq!(levels.first(), Some(&Level::Aal2));
        assert!(aal2.contains(&"aal2") && aal2.contains(&"phr") && !aal2.contains(&"aal1"));
        let aal3 = m.acr_values_for(Level::Aal3);
        assert!(aal3.iter().all(|v| m.level(Some(v), &[]) == Level::Aal3));
    }
}
