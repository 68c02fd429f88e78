//! What the gateway remembers of a user between requests: known devices, the last place and
//! time they were seen, the countries they came from. Kept through the Store trait, so every
//! gateway instance sees the same history.

use crate::clock::UnixTime;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How many devices and countries are kept per user (the least recently seen go first).
const MAX_DEVICES: usize = 20;
const MAX_COUNTRIES: usize = 30;
/// How stale a device's `last_seen` or the sighting may get before a request writes it back.
const REFRESH_EVERY: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RiskHistory {
    #[serde(default)]
    pub devices: Vec<KnownDevice>,
    #[serde(default)]
    pub last_sighting: Option<Sighting>,
    #[serde(default)]
    pub countries: Vec<String>,
}

/// A device on which the user has proven a second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDevice {
    pub id: String,
    pub first_seen: UnixTime,
    pub last_seen: UnixTime,
}

/// Where and when the user was last seen (from a located address).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    pub at: UnixTime,
    pub lat: f64,
    pub lon: f64,
    pub country: Option<String>,
}

impl RiskHistory {
    pub fn knows_device(&self, id: &str) -> bool {
        self.devices.iter().any(|d| d.id == id)
    }

    pub fn knows_country(&self, country: &str) -> bool {
        self.countries.iter().any(|c| c == country)
    }

    /// Records a device as known (or refreshes it). True if anything changed worth writing.
    pub fn remember_device(&mut self, id: &str, now: UnixTime) -> bool {
        if let Some(d) = self.devices.iter_mut().find(|d| d.id == id) {
            if now.since(d.last_seen) < REFRESH_EVERY {
                return false;
            }
            d.last_seen = now;
            return true;
        }
        self.devices.push(KnownDevice { id: id.to_string(), first_seen: now, last_seen: now });
        if self.devices.len() > MAX_DEVICES {
            self.devices.sort_by_key(|d| std::cmp::Reverse(d.last_seen));
            self.devices.truncate(MAX_DEVICES);
        }
        true
    }

    /// Records where the user is now. True if anything changed worth writing.
    pub fn remember_place(&mut self, coords: Option<(f64, f64)>, country: Option<&str>, now: UnixTime) -> bool {
        let mut changed = false;
        if let Some(c) = country {
            if !self.knows_country(c) {
                self.countries.push(c.to_string());
                if self.countries.len() > MAX_COUNTRIES {
                    self.countries.remove(0);
                }
                changed = true;
            }
        }
        if let Some((lat, lon)) = coords {
            let same_place = self.last_sighting.as_ref().is_some_and(|s| s.lat == lat && s.lon == lon);
            let fresh = self.last_sighting.as_ref().is_some_and(|s| now.since(s.at) < REFRESH_EVERY);
            if !(same_place && fresh) {
                self.last_sighting = Some(Sighting { at: now, lat, lon, country: country.map(str::to_string) });
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_capped_and_refreshed_only_when_stale() {
        let mut h = RiskHistory::default();
        for i in 0..25 {
            assert!(h.remember_device(&format!("d{i}"), UnixTime(1000 + i)));
        }
        assert_eq!(h.devices.len(), MAX_DEVICES);
        assert!(!h.knows_device("d0") && h.knows_device("d24"));
        assert!(!h.remember_device("d24", UnixTime(1100)), "fresh: no write");
        assert!(h.remember_device("d24", UnixTime(2000)), "stale: written back");
    }

    #[test]
    fn places_add_countries_and_move_the_sighting() {
        let mut h = RiskHistory::default();
        assert!(h.remember_place(Some((51.5, -0.1)), Some("GB"), UnixTime(0)));
        assert!(!h.remember_place(Some((51.5, -0.1)), Some("GB"), UnixTime(10)));
        assert!(h.remember_place(Some((47.2, -122.3)), Some("US"), UnixTime(20)));
        assert_eq!(h.countries, vec!["GB".to_string(), "US".to_string()]);
        assert_eq!(h.last_sighting.as_ref().map(|s| s.at), Some(UnixTime(20)));
    }
}
