//! `[risk]` as operators write it, and validated. No `[risk]` section: nothing is scored, and
//! rules with `hours`/`days` still count (time needs no other section).
//!
//! Each signal has its own sub-table; a signal whose table is absent is off.

use super::geo::GeoDb;
use crate::parse::{parse_cidr, parse_duration, ConfigError};
use ipnet::IpNet;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRisk {
    pub step_up_at: Option<i64>,
    pub deny_at: Option<i64>,
    pub step_up_max_age: Option<String>,
    /// "level" (default): the level rises one step; "max_age": only max_age shortens.
    pub step_up: Option<String>,
    pub device: Option<RawDevice>,
    pub location: Option<RawLocation>,
    pub time: Option<RawTime>,
    pub behaviour: Option<RawBehaviour>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    pub unknown: Option<i64>,
    pub other_user: Option<i64>,
    pub tampered: Option<i64>,
    pub cookie_lifetime: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub city_db: Option<String>,
    pub asn_db: Option<String>,
    pub anonymous_db: Option<String>,
    pub new_country: Option<i64>,
    pub impossible_travel: Option<i64>,
    pub max_speed_kmh: Option<f64>,
    pub anonymous: Option<i64>,
    pub tor: Option<i64>,
    pub hosting: Option<i64>,
    #[serde(default)]
    pub trusted_networks: Vec<String>,
    pub trusted_network: Option<i64>,
    #[serde(default)]
    pub deny_networks: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTime {
    pub time_zone: Option<String>,
    pub outside_hours: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBehaviour {
    pub window: Option<String>,
    pub max_requests: Option<u64>,
    pub burst: Option<i64>,
    pub failed_challenge: Option<i64>,
    pub ip_changed: Option<i64>,
    pub user_agent_changed: Option<i64>,
    pub bind_elevation: Option<bool>,
}

/// The validated risk settings.
#[derive(Debug, Clone)]
pub struct RiskConfig {
    /// Whether a `[risk]` section is present (device, location, behaviour need it).
    pub enabled: bool,
    pub step_up_at: u8,
    pub deny_at: u8,
    pub step_up_max_age: Duration,
    /// At `step_up_at` the level rises one step (true) or only `max_age` shortens (false).
    pub raise_level: bool,
    pub device: Option<DeviceRules>,
    pub location: Option<LocationRules>,
    pub time: TimeRules,
    pub behaviour: Option<BehaviourRules>,
}

#[derive(Debug, Clone)]
pub struct DeviceRules {
    pub unknown: i32,
    pub other_user: i32,
    pub tampered: i32,
    pub cookie_lifetime: Duration,
}

#[derive(Debug, Clone)]
pub struct LocationRules {
    pub geo: Arc<GeoDb>,
    pub new_country: i32,
    pub impossible_travel: i32,
    pub max_speed_kmh: f64,
    pub anonymous: i32,
    pub tor: i32,
    pub hosting: i32,
    pub trusted_networks: Vec<IpNet>,
    pub trusted_network: i32,
    pub deny_networks: Vec<IpNet>,
}

#[derive(Debug, Clone)]
pub struct TimeRules {
    pub time_zone: chrono_tz::Tz,
    pub outside_hours: i32,
}

#[derive(Debug, Clone)]
pub struct BehaviourRules {
    pub window: Duration,
    pub max_requests: u64,
    pub burst: i32,
    pub failed_challenge: i32,
    pub ip_changed: i32,
    pub user_agent_changed: i32,
    pub bind_elevation: bool,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            enabled: false,
            step_up_at: 30,
            deny_at: 80,
            step_up_max_age: Duration::from_secs(300),
            raise_level: true,
            device: None,
            location: None,
            time: TimeRules { time_zone: chrono_tz::UTC, outside_hours: 30 },
            behaviour: None,
        }
    }
}

impl RiskConfig {
    /// One line for `stepgate check-config`.
    pub fn describe(&self) -> String {
        if !self.enabled {
            return "risk: off (no [risk] section; rule hours still apply)".into();
        }
        let mut signals = vec!["time"];
        if self.device.is_some() {
            signals.push("device");
        }
        if let Some(l) = &self.location {
            signals.push(if l.geo.is_empty() {
                "location (networks only: no GeoIP database loaded)"
            } else {
                "location"
            });
        }
        if self.behaviour.is_some() {
            signals.push("behaviour");
        }
        let raise = if self.raise_level { "level +1" } else { "max_age only" };
        format!(
            "risk: step_up_at {} ({raise}, max_age {}), deny_at {}; signals: {}",
            self.step_up_at,
            humantime::format_duration(self.step_up_max_age),
            self.deny_at,
            signals.join(", ")
        )
    }
}

fn points(key: &str, v: Option<i64>, default: i32) -> Result<i32, ConfigError> {
    match v {
        None => Ok(default),
        Some(p) if (-100..=100).contains(&p) => Ok(p as i32),
        Some(p) => Err(ConfigError::new(key, format!("{p} is out of range; points lie between -100 and 100"))),
    }
}

fn threshold(key: &str, v: Option<i64>, default: u8) -> Result<u8, ConfigError> {
    match v {
        None => Ok(default),
        Some(p) if (1..=100).contains(&p) => Ok(p as u8),
        Some(p) => Err(ConfigError::new(key, format!("{p} is out of range; a threshold lies between 1 and 100"))),
    }
}

/// A score threshold as a rule may override it.
pub fn rule_threshold(key: &str, v: Option<i64>) -> Result<Option<u8>, ConfigError> {
    v.map(|p| threshold(key, Some(p), 0)).transpose()
}

pub fn parse_time_zone(key: &str, name: &str) -> Result<chrono_tz::Tz, ConfigError> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        ConfigError::new(key, format!("'{name}' is not an IANA time zone (e.g. \"Europe/London\", \"UTC\")"))
    })
}

pub fn parse(raw: Option<&RawRisk>, base: &Path) -> Result<RiskConfig, ConfigError> {
    let mut cfg = RiskConfig::default();
    let Some(raw) = raw else { return Ok(cfg) };
    cfg.enabled = true;
    cfg.step_up_at = threshold("risk.step_up_at", raw.step_up_at, cfg.step_up_at)?;
    cfg.deny_at = threshold("risk.deny_at", raw.deny_at, cfg.deny_at)?;
    if cfg.deny_at <= cfg.step_up_at {
        return Err(ConfigError::new("risk.deny_at", "must be above risk.step_up_at"));
    }
    if let Some(d) = &raw.step_up_max_age {
        cfg.step_up_max_age = parse_duration("risk.step_up_max_age", d)?;
    }
    cfg.raise_level = match raw.step_up.as_deref() {
        None | Some("level") => true,
        Some("max_age") => false,
        Some(other) => {
            return Err(ConfigError::new("risk.step_up", format!("'{other}': expected \"level\" or \"max_age\"")))
        }
    };
    if let Some(d) = &raw.device {
        cfg.device = Some(DeviceRules {
            unknown: points("risk.device.unknown", d.unknown, 30)?,
            other_user: points("risk.device.other_user", d.other_user, 40)?,
            tampered: points("risk.device.tampered", d.tampered, 40)?,
            cookie_lifetime: match &d.cookie_lifetime {
                Some(s) => parse_duration("risk.device.cookie_lifetime", s)?,
                None => Duration::from_secs(400 * 86_400),
            },
        });
    }
    if let Some(l) = &raw.location {
        cfg.location = Some(location(l, base)?);
    }
    if let Some(t) = &raw.time {
        if let Some(z) = &t.time_zone {
            cfg.time.time_zone = parse_time_zone("risk.time.time_zone", z)?;
        }
        cfg.time.outside_hours = points("risk.time.outside_hours", t.outside_hours, cfg.time.outside_hours)?;
    }
    if let Some(b) = &raw.behaviour {
        cfg.behaviour = Some(BehaviourRules {
            window: match &b.window {
                Some(s) => parse_duration("risk.behaviour.window", s)?,
                None => Duration::from_secs(60),
            },
            max_requests: match b.max_requests {
                Some(0) => return Err(ConfigError::new("risk.behaviour.max_requests", "must be at least 1")),
                Some(n) => n,
                None => 120,
            },
            burst: points("risk.behaviour.burst", b.burst, 20)?,
            failed_challenge: points("risk.behaviour.failed_challenge", b.failed_challenge, 10)?,
            ip_changed: points("risk.behaviour.ip_changed", b.ip_changed, 10)?,
            user_agent_changed: points("risk.behaviour.user_agent_changed", b.user_agent_changed, 20)?,
            bind_elevation: b.bind_elevation.unwrap_or(true),
        });
    }
    Ok(cfg)
}

fn location(l: &RawLocation, base: &Path) -> Result<LocationRules, ConfigError> {
    let path = |p: &Option<String>| p.as_ref().map(|p| base.join(p));
    let geo = GeoDb::open(path(&l.city_db).as_deref(), path(&l.asn_db).as_deref(), path(&l.anonymous_db).as_deref())?;
    let nets = |key: &str, list: &[String]| -> Result<Vec<IpNet>, ConfigError> {
        list.iter().enumerate().map(|(i, s)| parse_cidr(&format!("{key}[{i}]"), s)).collect()
    };
    let max_speed_kmh = l.max_speed_kmh.unwrap_or(900.0);
    if !(max_speed_kmh.is_finite() && max_speed_kmh > 0.0) {
        return Err(ConfigError::new("risk.location.max_speed_kmh", "must be a positive number of km/h"));
    }
    Ok(LocationRules {
        geo: Arc::new(geo),
        new_country: points("risk.location.new_country", l.new_country, 20)?,
        impossible_travel: points("risk.location.impossible_travel", l.impossible_travel, 50)?,
        max_speed_kmh,
        anonymous: points("risk.location.anonymous", l.anonymous, 30)?,
        tor: points("risk.location.tor", l.tor, 50)?,
        hosting: points("risk.location.hosting", l.hosting, 15)?,
        trusted_networks: nets("risk.location.trusted_networks", &l.trusted_networks)?,
        trusted_network: points("risk.location.trusted_network", l.trusted_network, -20)?,
        deny_networks: nets("risk.location.deny_networks", &l.deny_networks)?,
    })
}
