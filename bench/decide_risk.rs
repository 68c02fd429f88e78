//! Criterion bench: the per-request policy work — classify the route, look the client up in
//! GeoIP (when configured), score every signal, apply the thresholds, decide.
//!
//!   cargo bench --bench decide_risk
//!
//! Store reads (history, counters) are not included: they are I/O, measured by bench/run.sh.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::Path;
use stepgate::clock::UnixTime;
use stepgate::config::{self, Config, Overrides};
use stepgate::policy::decide::decide_with_risk;
use stepgate::policy::level::{AuthMethod, Level, Proof};
use stepgate::policy::normalize::normalize_path;
use stepgate::risk::device::DeviceStatus;
use stepgate::risk::geo::GeoFacts;
use stepgate::risk::history::{RiskHistory, Sighting};
use stepgate::risk::{self, user_agent_hash, Counts, Facts, ProofContext};

const NOW: UnixTime = UnixTime(1_795_435_200);
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36";

fn config(with_geoip: bool) -> Config {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/geoip");
    let dbs = if with_geoip {
        format!(
            "city_db = \"{0}/GeoLite2-City-Test.mmdb\"\nasn_db = \"{0}/GeoLite2-ASN-Test.mmdb\"\nanonymous_db = \"{0}/GeoIP2-Anonymous-IP-Test.mmdb\"\n",
            data.display()
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"
[listen]
address = "127.0.0.1:0"
public_url = "https://app.example"
[upstream]
url = "http://127.0.0.1:3000"
[sessions]
secret_key = "{key}"
[risk]
[risk.device]
[risk.location]
{dbs}trusted_networks = ["10.0.0.0/8"]
deny_networks = ["203.0.113.0/24"]
[risk.time]
time_zone = "Europe/London"
[risk.behaviour]
[[rule]]
name = "public"
path = "/static/**"
require = "none"
[[rule]]
name = "admin"
path = "/admin/**"
require = "aal3"
max_age = "5m"
[[rule]]
name = "transfer"
path = "/transfer"
methods = ["POST"]
require = "aal2"
max_age = "5m"
hours = "07:00-20:00"
days = ["mon", "tue", "wed", "thu", "fri"]
[default]
require = "aal1"
"#,
        key = "11".repeat(32)
    );
    config::parse(&text, Path::new("."), &Overrides::default()).expect("bench config")
}

fn per_request(c: &mut Criterion) {
    let history = RiskHistory {
        devices: vec![],
        last_sighting: Some(Sighting {
            at: UnixTime(NOW.0 - 3600),
            lat: 51.5142,
            lon: -0.0931,
            country: Some("GB".into()),
        }),
        countries: vec!["GB".into()],
    };
    let proofs = vec![
        Proof { level: Level::Aal1, method: AuthMethod::Password, auth_time: UnixTime(NOW.0 - 600) },
        Proof { level: Level::Aal2, method: AuthMethod::Totp, auth_time: UnixTime(NOW.0 - 60) },
    ];
    let ip = "81.2.69.142".parse().unwrap();
    let context = ProofContext { ip, user_agent: user_agent_hash(UA), country: Some("GB".into()) };
    let path = normalize_path("/transfer").unwrap();
    for (name, with_geoip) in [("decide+score, no GeoIP", false), ("decide+score, GeoIP (city, ASN, anonymous)", true)]
    {
        let cfg = config(with_geoip);
        c.bench_function(name, |b| {
            b.iter(|| {
                let rule = cfg.routes.classify("app.example", black_box(&path), &http::Method::POST);
                let geo = match &cfg.risk.location {
                    Some(l) => l.geo.lookup(black_box(ip)),
                    None => GeoFacts::default(),
                };
                let facts = Facts {
                    now: NOW,
                    ip,
                    user_agent: UA,
                    geo: &geo,
                    device: Some(DeviceStatus::Known),
                    history: &history,
                    counts: Counts { recent_requests: 3, failed_challenges: 0 },
                    proof_context: Some(&context),
                };
                let assessment = risk::assess(&cfg.risk, rule.risk.window.as_ref(), &facts);
                let verdict = risk::verdict(&cfg.risk, &rule.risk, &assessment);
                black_box(decide_with_risk(&rule.action, Some(&proofs), NOW, &verdict))
            })
        });
    }
}

criterion_group!(benches, per_request);
criterion_main!(benches);
