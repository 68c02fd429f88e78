//! Client IP → country, coordinates, ASN and anonymizer flags, from MaxMind-format databases
//! (GeoLite2, GeoIP2, DB-IP). A database that is configured but missing is skipped with a
//! warning (its signals are off); one that cannot be read as a MaxMind DB is a config error.

use crate::parse::ConfigError;
use maxminddb::Reader;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

/// What the databases say about one address. Empty when nothing is known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoFacts {
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub city: Option<String>,
    /// (latitude, longitude) in degrees.
    pub coords: Option<(f64, f64)>,
    pub asn: Option<u32>,
    pub anonymous: bool,
    pub tor: bool,
    pub hosting: bool,
}

#[derive(Default)]
pub struct GeoDb {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
    anonymous: Option<Reader<Vec<u8>>>,
    /// Tells this set of databases from any other (a reload opens new ones) in the per-thread
    /// answer cache; 0 for an empty set, which has nothing to cache.
    id: u64,
}

/// Answers cached per serving thread, at most this many (then the cache starts again):
/// decoding a City record costs microseconds, a cached answer a clone.
const CACHE_ENTRIES: usize = 4096;

thread_local! {
    static CACHE: std::cell::RefCell<(u64, std::collections::HashMap<IpAddr, GeoFacts>)> =
        std::cell::RefCell::new((0, std::collections::HashMap::new()));
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("city", &self.city.is_some())
            .field("asn", &self.asn.is_some())
            .field("anonymous", &self.anonymous.is_some())
            .finish()
    }
}

// The parts of the records we read; the rest of each record is skipped.
#[derive(Deserialize)]
struct CityRecord {
    country: Option<Country>,
    city: Option<City>,
    location: Option<Location>,
}
#[derive(Deserialize)]
struct Country {
    iso_code: Option<String>,
}
#[derive(Deserialize)]
struct City {
    names: Option<std::collections::BTreeMap<String, String>>,
}
#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}
#[derive(Deserialize)]
struct AsnRecord {
    autonomous_system_number: Option<u32>,
}
#[derive(Deserialize)]
struct AnonymousRecord {
    #[serde(default)]
    is_anonymous: bool,
    #[serde(default)]
    is_anonymous_vpn: bool,
    #[serde(default)]
    is_public_proxy: bool,
    #[serde(default)]
    is_residential_proxy: bool,
    #[serde(default)]
    is_tor_exit_node: bool,
    #[serde(default)]
    is_hosting_provider: bool,
}

fn open_one(key: &str, path: Option<&Path>) -> Result<Option<Reader<Vec<u8>>>, ConfigError> {
    let Some(path) = path else { return Ok(None) };
    if !path.exists() {
        tracing::warn!(key, file = %path.display(), "GeoIP database not found: the signals that need it are off");
        return Ok(None);
    }
    Reader::open_readfile(path)
        .map(Some)
        .map_err(|e| ConfigError::new(key, format!("{} is not a readable MaxMind DB: {e}", path.display())))
}

impl GeoDb {
    pub fn open(city: Option<&Path>, asn: Option<&Path>, anonymous: Option<&Path>) -> Result<GeoDb, ConfigError> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(GeoDb {
            city: open_one("risk.location.city_db", city)?,
            asn: open_one("risk.location.asn_db", asn)?,
            anonymous: open_one("risk.location.anonymous_db", anonymous)?,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Whether any database is loaded.
    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.asn.is_none() && self.anonymous.is_none()
    }

    pub fn has_city(&self) -> bool {
        self.city.is_some()
    }

    /// Looks the address up in every loaded database; a lookup error counts as "not known".
    /// Answers are cached per thread (the databases do not change under an open `GeoDb`).
    pub fn lookup(&self, ip: IpAddr) -> GeoFacts {
        if self.is_empty() {
            return GeoFacts::default();
        }
        let cached = CACHE.with_borrow(|(id, map)| if *id == self.id { map.get(&ip).cloned() } else { None });
        if let Some(f) = cached {
            return f;
        }
        let f = self.lookup_uncached(ip);
        CACHE.with_borrow_mut(|(id, map)| {
            if *id != self.id || map.len() >= CACHE_ENTRIES {
                map.clear();
                *id = self.id;
            }
            map.insert(ip, f.clone());
        });
        f
    }

    fn lookup_uncached(&self, ip: IpAddr) -> GeoFacts {
        let mut f = GeoFacts::default();
        if let Some(c) = self.city.as_ref().and_then(|r| decode::<CityRecord>(r, ip)) {
            f.country = c.country.and_then(|c| c.iso_code);
            f.city = c.city.and_then(|c| c.names).and_then(|mut n| n.remove("en"));
            f.coords = c.location.and_then(|l| Some((l.latitude?, l.longitude?)));
        }
        if let Some(a) = self.asn.as_ref().and_then(|r| decode::<AsnRecord>(r, ip)) {
            f.asn = a.autonomous_system_number;
        }
        if let Some(a) = self.anonymous.as_ref().and_then(|r| decode::<AnonymousRecord>(r, ip)) {
            f.anonymous = a.is_anonymous || a.is_anonymous_vpn || a.is_public_proxy || a.is_residential_proxy;
            f.tor = a.is_tor_exit_node;
            f.hosting = a.is_hosting_provider;
        }
        f
    }
}

fn decode<T: for<'de> Deserialize<'de>>(reader: &Reader<Vec<u8>>, ip: IpAddr) -> Option<T> {
    reader.lookup(ip).ok()?.decode::<T>().ok()?
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/geoip").join(name)
    }

    fn test_db() -> GeoDb {
        GeoDb::open(
            Some(&data("GeoLite2-City-Test.mmdb")),
            Some(&data("GeoLite2-ASN-Test.mmdb")),
            Some(&data("GeoIP2-Anonymous-IP-Test.mmdb")),
        )
        .unwrap()
    }

    /// The per-thread cache answers as the databases do, and never with another set's answer.
    #[test]
    fn cached_answers_are_the_databases_answers() {
        let (all, asn_only) = (test_db(), GeoDb::open(None, Some(&data("GeoLite2-ASN-Test.mmdb")), None).unwrap());
        for ip in ["81.2.69.142", "216.160.83.56", "1.124.213.1", "1.128.0.1", "10.1.2.3", "81.2.69.142"] {
            let ip: IpAddr = ip.parse().unwrap();
            for _ in 0..2 {
                assert_eq!(all.lookup(ip), all.lookup_uncached(ip), "{ip}");
                assert_eq!(asn_only.lookup(ip), asn_only.lookup_uncached(ip), "{ip}");
            }
        }
        assert_eq!(asn_only.lookup("81.2.69.142".parse().unwrap()).city, None);
    }

    #[test]
    fn known_addresses_give_their_published_answers() {
        let db = test_db();
        let london = db.lookup("81.2.69.142".parse().unwrap());
        assert_eq!(london.country.as_deref(), Some("GB"));
        assert_eq!(london.city.as_deref(), Some("London"));
        let (lat, lon) = london.coords.unwrap();
        assert!((lat - 51.5142).abs() < 1e-3 && (lon + 0.0931).abs() < 1e-3, "{lat},{lon}");
        assert!(london.anonymous && london.tor && london.hosting, "{london:?}");
        let milton = db.lookup("216.160.83.56".parse().unwrap());
        assert_eq!(milton.country.as_deref(), Some("US"));
        assert!(!milton.tor && !milton.anonymous);
        assert!(db.lookup("1.124.213.1".parse().unwrap()).tor);
        assert_eq!(db.lookup("10.1.2.3".parse().unwrap()), GeoFacts::default());
        let km = distance_km(london.coords.unwrap(), milton.coords.unwrap());
        assert!((7600.0..7800.0).contains(&km), "{km}");
    }

    #[test]
    fn an_asn_database_answers_for_its_networks() {
        let db = test_db();
        // GeoLite2-ASN-Test lists 1.128.0.0/11 as AS1221 (Telstra).
        assert_eq!(db.lookup("1.128.0.1".parse().unwrap()).asn, Some(1221));
    }

    #[test]
    fn a_missing_database_is_skipped_and_a_corrupt_one_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = GeoDb::open(Some(&dir.path().join("absent.mmdb")), None, None).unwrap();
        assert!(db.is_empty());
        let bad = dir.path().join("bad.mmdb");
        std::fs::write(&bad, b"this is not a maxmind database").unwrap();
        let err = GeoDb::open(None, Some(&bad), None).unwrap_err();
        assert_eq!(err.key, "risk.location.asn_db");
        assert!(err.reason.contains("not a readable MaxMind DB"), "{err}");
    }
}
