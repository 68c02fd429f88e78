//! The location signal: operator network lists, anonymizers, a new country, impossible travel.

use super::config::LocationRules;
use super::geo::distance_km;
use super::history::Sighting;
use super::{Facts, Finding};
use crate::clock::UnixTime;
use ipnet::IpNet;
use std::net::IpAddr;

/// Distances below this are GeoIP imprecision, not travel.
const MIN_TRAVEL_KM: f64 = 100.0;
/// The shortest interval a speed is computed over (two requests in the same second are not
/// infinitely fast; they are as fast as this allows).
const MIN_INTERVAL_SECS: u64 = 60;

/// The deny-list network `ip` falls in, if any. The gateway refuses such addresses on every
/// route, public ones and its own pages included.
pub fn denied_network(rules: &LocationRules, ip: IpAddr) -> Option<&IpNet> {
    rules.deny_networks.iter().find(|n| n.contains(&ip))
}

/// The distance and speed from the last sighting to `here` at `now`, when no one could travel
/// that fast.
pub fn impossible_travel(
    rules: &LocationRules,
    last: &Sighting,
    here: (f64, f64),
    now: UnixTime,
) -> Option<(f64, f64)> {
    let km = distance_km((last.lat, last.lon), here);
    let secs = now.since(last.at).as_secs().max(MIN_INTERVAL_SECS);
    let kmh = km / (secs as f64 / 3600.0);
    (km >= MIN_TRAVEL_KM && kmh > rules.max_speed_kmh).then_some((km, kmh))
}

/// Adds the location findings; returns true when the address is on the deny list.
pub fn assess(rules: &LocationRules, facts: &Facts<'_>, out: &mut Vec<Finding>) -> bool {
    if let Some(net) = denied_network(rules, facts.ip) {
        out.push(Finding::new("NET_DENIED", 100, format!("{} is in the deny list ({net})", facts.ip)));
        return true;
    }
    if let Some(net) = rules.trusted_networks.iter().find(|n| n.contains(&facts.ip)) {
        out.push(Finding::new(
            "NET_TRUSTED",
            rules.trusted_network,
            format!("{} is in a trusted network ({net})", facts.ip),
        ));
    }
    let geo = facts.geo;
    if geo.tor {
        out.push(Finding::new("GEO_TOR", rules.tor, "a Tor exit node"));
    }
    if geo.anonymous {
        out.push(Finding::new("GEO_ANONYMOUS", rules.anonymous, "an anonymizing VPN or proxy"));
    }
    if geo.hosting {
        out.push(Finding::new("GEO_HOSTING", rules.hosting, "a hosting provider's network"));
    }
    let history = facts.history;
    if let Some(country) = &geo.country {
        if !history.countries.is_empty() && !history.knows_country(country) {
            out.push(Finding::new(
                "GEO_NEW_COUNTRY",
                rules.new_country,
                format!("{country}, not among {}", history.countries.join(",")),
            ));
        }
    }
    if let (Some(here), Some(last)) = (geo.coords, &history.last_sighting) {
        if let Some((km, kmh)) = impossible_travel(rules, last, here, facts.now) {
            out.push(Finding::new(
                "GEO_IMPOSSIBLE_TRAVEL",
                rules.impossible_travel,
                format!(
                    "{km:.0} km from {} in {} ({kmh:.0} km/h > {:.0} km/h)",
                    last.country.as_deref().unwrap_or("the last location"),
                    humantime::format_duration(facts.now.since(last.at)),
                    rules.max_speed_kmh
                ),
            ));
        }
    }
    false
}
