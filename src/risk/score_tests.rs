//! The scorer as a table: facts in, score and reason codes out.

use super::config::{BehaviourRules, DeviceRules, LocationRules, RiskConfig};
use super::geo::{GeoDb, GeoFacts};
use super::history::{RiskHistory, Sighting};
use super::time::parse_window;
use super::*;
use std::sync::Arc;
use std::time::Duration;

const NOW: UnixTime = UnixTime(1_795_435_200); // Monday 2026-11-23 12:00Z
const UA: &str = "Mozilla/5.0 test";

fn full_config() -> RiskConfig {
    RiskConfig {
        enabled: true,
        device: Some(DeviceRules {
            unknown: 30,
            other_user: 40,
            tampered: 40,
            cookie_lifetime: Duration::from_secs(86_400),
        }),
        location: Some(LocationRules {
            geo: Arc::new(GeoDb::default()),
            new_country: 20,
            impossible_travel: 50,
            max_speed_kmh: 900.0,
            anonymous: 30,
            tor: 50,
            hosting: 15,
            trusted_networks: vec!["10.0.0.0/8".parse().unwrap()],
            trusted_network: -20,
            deny_networks: vec!["203.0.113.0/24".parse().unwrap()],
        }),
        behaviour: Some(BehaviourRules {
            window: Duration::from_secs(60),
            max_requests: 100,
            burst: 20,
            failed_challenge: 10,
            ip_changed: 10,
            user_agent_changed: 20,
            bind_elevation: true,
        }),
        ..RiskConfig::default()
    }
}

fn london() -> GeoFacts {
    GeoFacts { country: Some("GB".into()), coords: Some((51.5142, -0.0931)), ..GeoFacts::default() }
}
fn milton() -> GeoFacts {
    GeoFacts { country: Some("US".into()), coords: Some((47.2513, -122.3149)), ..GeoFacts::default() }
}
fn seen_in_london(secs_ago: u64) -> RiskHistory {
    RiskHistory {
        devices: vec![],
        last_sighting: Some(Sighting {
            at: UnixTime(NOW.0 - secs_ago),
            lat: 51.5142,
            lon: -0.0931,
            country: Some("GB".into()),
        }),
        countries: vec!["GB".into()],
    }
}

struct Case {
    name: &'static str,
    ip: &'static str,
    geo: GeoFacts,
    device: Option<DeviceStatus>,
    history: RiskHistory,
    counts: Counts,
    proof: Option<ProofContext>,
    hours: Option<(&'static str, Option<&'static str>)>,
    score: u8,
    codes: &'static [&'static str],
    blocked: Option<&'static str>,
    distrust: bool,
}

fn base(name: &'static str) -> Case {
    Case {
        name,
        ip: "198.51.100.7",
        geo: london(),
        device: Some(DeviceStatus::Known),
        history: seen_in_london(3600),
        counts: Counts { recent_requests: 1, failed_challenges: 0 },
        proof: Some(ProofContext {
            ip: "198.51.100.7".parse().unwrap(),
            user_agent: user_agent_hash(UA),
            country: Some("GB".into()),
        }),
        hours: None,
        score: 0,
        codes: &[],
        blocked: None,
        distrust: false,
    }
}

fn cases() -> Vec<Case> {
    vec![
        base("a known device at home scores nothing"),
        Case {
            device: Some(DeviceStatus::Unknown),
            score: 30,
            codes: &["DEVICE_UNKNOWN"],
            ..base("an unknown device")
        },
        Case {
            device: Some(DeviceStatus::OtherUser),
            score: 40,
            codes: &["DEVICE_OTHER_USER"],
            ..base("another user's device cookie")
        },
        Case {
            device: Some(DeviceStatus::Tampered),
            score: 40,
            codes: &["DEVICE_TAMPERED"],
            ..base("a forged device cookie")
        },
        Case {
            geo: milton(),
            history: seen_in_london(300),
            proof: None,
            score: 70,
            codes: &["GEO_NEW_COUNTRY", "GEO_IMPOSSIBLE_TRAVEL"],
            ..base("London then Milton five minutes later")
        },
        Case {
            geo: milton(),
            history: RiskHistory { countries: vec!["GB".into(), "US".into()], ..seen_in_london(86_400) },
            proof: None,
            score: 0,
            ..base("London then Milton a day later, a country seen before")
        },
        Case {
            geo: GeoFacts { tor: true, anonymous: true, hosting: true, ..london() },
            score: 95,
            codes: &["GEO_TOR", "GEO_ANONYMOUS", "GEO_HOSTING"],
            ..base("a Tor exit in a hosting network")
        },
        Case {
            ip: "10.1.2.3",
            proof: None,
            score: 0,
            codes: &["NET_TRUSTED"],
            ..base("the corporate network lowers the score, never below 0")
        },
        Case {
            ip: "10.1.2.3",
            proof: None,
            device: Some(DeviceStatus::Unknown),
            score: 10,
            codes: &["NET_TRUSTED", "DEVICE_UNKNOWN"],
            ..base("an unknown device on the corporate network")
        },
        Case {
            ip: "203.0.113.9",
            proof: None,
            score: 100,
            codes: &["NET_DENIED"],
            blocked: Some("NET_DENIED"),
            ..base("a denied network")
        },
        Case {
            counts: Counts { recent_requests: 101, failed_challenges: 0 },
            score: 20,
            codes: &["BEHAVIOUR_BURST"],
            ..base("a burst of requests")
        },
        Case {
            counts: Counts { recent_requests: 1, failed_challenges: 7 },
            score: 30,
            codes: &["BEHAVIOUR_FAILED_CHALLENGES"],
            ..base("failed challenges count up to three")
        },
        Case {
            proof: Some(ProofContext {
                ip: "198.51.100.99".parse().unwrap(),
                user_agent: user_agent_hash(UA),
                country: Some("GB".into()),
            }),
            score: 10,
            codes: &["CONTEXT_IP_CHANGED"],
            ..base("a new address, same browser: the elevation still counts")
        },
        Case {
            proof: Some(ProofContext {
                ip: "198.51.100.7".parse().unwrap(),
                user_agent: user_agent_hash("curl/8"),
                country: Some("GB".into()),
            }),
            score: 20,
            codes: &["CONTEXT_UA_CHANGED"],
            distrust: true,
            ..base("another browser: the elevation no longer counts")
        },
        Case {
            proof: Some(ProofContext {
                ip: "198.51.100.7".parse().unwrap(),
                user_agent: user_agent_hash(UA),
                country: Some("SE".into()),
            }),
            score: 10,
            codes: &["CONTEXT_COUNTRY_CHANGED"],
            distrust: true,
            ..base("another country than at the proof")
        },
        Case {
            hours: Some(("13:00-17:00", None)),
            score: 30,
            codes: &["TIME_OUTSIDE_HOURS"],
            ..base("before office hours")
        },
        Case {
            hours: Some(("13:00-17:00", Some("deny"))),
            score: 30,
            codes: &["TIME_OUTSIDE_HOURS"],
            blocked: Some("TIME_OUTSIDE_HOURS"),
            ..base("before office hours on a rule that denies")
        },
        Case { hours: Some(("11:00-17:00", Some("deny"))), ..base("inside office hours") },
        Case {
            device: Some(DeviceStatus::OtherUser),
            geo: GeoFacts { tor: true, ..milton() },
            history: seen_in_london(60),
            proof: None,
            score: 100,
            codes: &["GEO_TOR", "GEO_NEW_COUNTRY", "GEO_IMPOSSIBLE_TRAVEL", "DEVICE_OTHER_USER"],
            ..base("everything at once is clamped to 100")
        },
    ]
}

#[test]
fn the_scorer_table() {
    let cfg = full_config();
    for c in cases() {
        let window =
            c.hours.map(|(h, outside)| parse_window("rule 'r'.", Some(h), None, None, outside).unwrap().unwrap());
        let facts = Facts {
            now: NOW,
            ip: c.ip.parse().unwrap(),
            user_agent: UA,
            geo: &c.geo,
            device: c.device.clone(),
            history: &c.history,
            counts: c.counts,
            proof_context: c.proof.as_ref(),
        };
        let a = assess(&cfg, window.as_ref(), &facts);
        let codes: Vec<&str> = a.findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, c.codes, "{}: codes ({:?})", c.name, a.findings);
        assert_eq!(a.score, c.score, "{}: score ({:?})", c.name, a.findings);
        assert_eq!(a.blocked_by, c.blocked, "{}: blocked", c.name);
        assert_eq!(a.distrust_elevation, c.distrust, "{}: distrust", c.name);
    }
}

#[test]
fn signals_without_their_section_are_off() {
    let cfg = RiskConfig::default();
    let geo = GeoFacts { tor: true, ..milton() };
    let history = seen_in_london(60);
    let facts = Facts {
        now: NOW,
        ip: "203.0.113.9".parse().unwrap(),
        user_agent: UA,
        geo: &geo,
        device: Some(DeviceStatus::Unknown),
        history: &history,
        counts: Counts { recent_requests: 1000, failed_challenges: 9 },
        proof_context: None,
    };
    assert_eq!(assess(&cfg, None, &facts), Assessment::default());
}

#[test]
fn thresholds_come_from_the_rule_first() {
    let cfg = RiskConfig { step_up_at: 30, deny_at: 80, ..RiskConfig::default() };
    let scored = |score: u8| Assessment { score, ..Assessment::default() };
    let global = RuleRisk::default();
    assert_eq!(verdict(&cfg, &global, &scored(29)), RiskVerdict::default());
    let v = verdict(&cfg, &global, &scored(30));
    assert_eq!(v.raise, Some(Raise { level: true, max_age: Duration::from_secs(300) }));
    assert!(!v.deny);
    assert!(verdict(&cfg, &global, &scored(80)).deny);
    let strict = RuleRisk { step_up_at: Some(10), deny_at: Some(50), window: None };
    assert!(verdict(&cfg, &strict, &scored(10)).raise.is_some());
    assert!(verdict(&cfg, &strict, &scored(50)).deny);
    let blocked = Assessment { score: 0, blocked_by: Some("NET_DENIED"), ..Assessment::default() };
    assert!(verdict(&cfg, &global, &blocked).deny);
}
