//! The time signal: a rule's allowed hours and days, in a named time zone. A request outside
//! them scores `risk.time.outside_hours` points, or is denied when the rule says
//! `outside_hours = "deny"`.

use super::config::{parse_time_zone, TimeRules};
use super::Finding;
use crate::clock::UnixTime;
use crate::parse::ConfigError;
use chrono::{Datelike, Timelike};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    Score,
    Deny,
}

/// When a rule's route may be used. `start_min..end_min` in minutes after local midnight; a
/// window with start after end runs over midnight (e.g. 22:00-06:00).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    pub start_min: u16,
    pub end_min: u16,
    /// Monday first.
    pub days: [bool; 7],
    /// None: `risk.time.time_zone`.
    pub time_zone: Option<chrono_tz::Tz>,
    pub outside: Outside,
    /// As configured, for messages.
    pub text: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Parses a rule's `hours`, `days`, `time_zone` and `outside_hours`; None when none is set.
pub fn parse_window(
    prefix: &str,
    hours: Option<&str>,
    days: Option<&[String]>,
    time_zone: Option<&str>,
    outside: Option<&str>,
) -> Result<Option<TimeWindow>, ConfigError> {
    if hours.is_none() && days.is_none() {
        if time_zone.is_some() || outside.is_some() {
            let key = if time_zone.is_some() { "time_zone" } else { "outside_hours" };
            return Err(ConfigError::new(format!("{prefix}{key}"), "has no effect without `hours` or `days`"));
        }
        return Ok(None);
    }
    let (start_min, end_min) = match hours {
        None => (0, 24 * 60),
        Some(h) => {
            let bad =
                || ConfigError::new(format!("{prefix}hours"), format!("'{h}' is not a span like \"08:00-18:00\""));
            let (a, b) = h.split_once('-').ok_or_else(bad)?;
            let (a, b) = (parse_hhmm(a).ok_or_else(bad)?, parse_hhmm(b).ok_or_else(bad)?);
            if a == b {
                return Err(ConfigError::new(format!("{prefix}hours"), "start and end are the same: an empty span"));
            }
            (a, b)
        }
    };
    let days = match days {
        None => [true; 7],
        Some([]) => {
            return Err(ConfigError::new(
                format!("{prefix}days"),
                "empty: list at least one day, e.g. [\"mon\", \"tue\"]",
            ))
        }
        Some(list) => {
            let mut set = [false; 7];
            for d in list {
                let lower = d.trim().to_ascii_lowercase();
                let idx = DAY_NAMES.iter().position(|n| lower.starts_with(n) && lower.len() >= 3).ok_or_else(|| {
                    ConfigError::new(format!("{prefix}days"), format!("'{d}' is not a day; write mon, tue, ... sun"))
                })?;
                set[idx] = true;
            }
            set
        }
    };
    let time_zone = time_zone.map(|z| parse_time_zone(&format!("{prefix}time_zone"), z)).transpose()?;
    let outside = match outside {
        None | Some("score") => Outside::Score,
        Some("deny") => Outside::Deny,
        Some(other) => {
            return Err(ConfigError::new(
                format!("{prefix}outside_hours"),
                format!("'{other}': expected \"score\" or \"deny\""),
            ))
        }
    };
    let text = format!(
        "{} {}",
        hours.unwrap_or("00:00-24:00"),
        days.iter().zip(DAY_NAMES).filter(|(on, _)| **on).map(|(_, n)| n).collect::<Vec<_>>().join(",")
    );
    Ok(Some(TimeWindow { start_min, end_min, days, time_zone, outside, text }))
}

impl TimeWindow {
    /// Whether `now` falls inside the window, in the window's zone (or `default_tz`).
    pub fn contains(&self, now: UnixTime, default_tz: chrono_tz::Tz) -> bool {
        let tz = self.time_zone.unwrap_or(default_tz);
        let Some(utc) = chrono::DateTime::from_timestamp(now.0 as i64, 0) else { return false };
        let local = utc.with_timezone(&tz);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let day = local.weekday().num_days_from_monday() as usize;
        if self.start_min < self.end_min {
            self.days[day] && (self.start_min..self.end_min).contains(&minute)
        } else if minute >= self.start_min {
            // Before midnight: the day the window opened.
            self.days[day]
        } else if minute < self.end_min {
            // After midnight: the window opened the day before.
            self.days[(day + 6) % 7]
        } else {
            false
        }
    }
}

/// Adds the time finding; returns true when the rule denies requests outside its hours.
pub fn assess(rules: &TimeRules, window: Option<&TimeWindow>, now: UnixTime, out: &mut Vec<Finding>) -> bool {
    let Some(w) = window else { return false };
    if w.contains(now, rules.time_zone) {
        return false;
    }
    let zone = w.time_zone.unwrap_or(rules.time_zone);
    out.push(Finding::new("TIME_OUTSIDE_HOURS", rules.outside_hours, format!("outside {} ({zone})", w.text)));
    w.outside == Outside::Deny
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day_offset: u64, hh: u64, mm: u64) -> UnixTime {
        // 2026-11-23T00:00:00Z is a Monday.
        UnixTime(1_795_392_000 + day_offset * 86_400 + hh * 3600 + mm * 60)
    }

    fn window(hours: &str, days: Option<&[&str]>, tz: Option<&str>) -> TimeWindow {
        let days: Option<Vec<String>> = days.map(|d| d.iter().map(|s| s.to_string()).collect());
        parse_window("rule 'r'.", Some(hours), days.as_deref(), tz, None).unwrap().unwrap()
    }

    #[test]
    fn the_reference_monday_is_a_monday() {
        let d = chrono::DateTime::from_timestamp(at(0, 0, 0).0 as i64, 0).unwrap();
        assert_eq!(d.weekday(), chrono::Weekday::Mon);
    }

    #[test]
    fn office_hours_in_a_named_zone() {
        let w = window("08:00-18:00", Some(&["mon", "tue", "wed", "thu", "fri"]), Some("America/New_York"));
        let utc = chrono_tz::UTC;
        // 12:00Z Monday is 07:00 in New York (EST): outside; 14:00Z is 09:00: inside.
        assert!(!w.contains(at(0, 12, 0), utc));
        assert!(w.contains(at(0, 14, 0), utc));
        // Saturday 14:00Z: a weekend day.
        assert!(!w.contains(at(5, 14, 0), utc));
        // 23:30Z Friday is 18:30 in New York: after hours.
        assert!(!w.contains(at(4, 23, 30), utc));
    }

    #[test]
    fn a_window_over_midnight_belongs_to_the_day_it_opened() {
        let w = window("22:00-06:00", Some(&["fri"]), None);
        let utc = chrono_tz::UTC;
        assert!(w.contains(at(4, 23, 0), utc), "Friday 23:00");
        assert!(w.contains(at(5, 5, 59), utc), "Saturday 05:59, opened Friday");
        assert!(!w.contains(at(5, 6, 0), utc), "Saturday 06:00");
        assert!(!w.contains(at(5, 23, 0), utc), "Saturday 23:00: Saturday is not listed");
        assert!(!w.contains(at(4, 5, 0), utc), "Friday 05:00 opened on Thursday");
    }

    #[test]
    fn bad_windows_name_the_key() {
        let e = parse_window("rule 'r'.", Some("8-18"), None, None, None).unwrap_err();
        assert_eq!(e.key, "rule 'r'.hours");
        let e = parse_window("rule 'r'.", None, Some(&["funday".to_string()]), None, None).unwrap_err();
        assert_eq!(e.key, "rule 'r'.days");
        let e = parse_window("rule 'r'.", Some("08:00-18:00"), None, Some("Mars/Olympus"), None).unwrap_err();
        assert_eq!(e.key, "rule 'r'.time_zone");
        let e = parse_window("rule 'r'.", Some("08:00-18:00"), None, None, Some("block")).unwrap_err();
        assert_eq!(e.key, "rule 'r'.outside_hours");
        let e = parse_window("rule 'r'.", None, None, Some("UTC"), None).unwrap_err();
        assert!(e.reason.contains("no effect"), "{e}");
    }
}
