//! Criterion bench: the per-request policy work, through the gateway's own `pipeline::evaluate`
//! — route, identify (a session read), score every signal (history and counter reads, GeoIP
//! when configured), decide — against an in-memory store (`explain::sandbox`).
//!
//!   cargo bench --bench decide_risk
//!
//! The network and a store on disk or Redis are not included: bench/run.sh measures those.
//! `decide + score` is the pure part alone: route, GeoIP (cached per thread, as on a serving
//! thread), assess, verdict, decide; no store hop, no async.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::Path;
use stepgate::clock::UnixTime;
use stepgate::config::{self, Config, Overrides};
use stepgate::explain::{sandbox, Question};
use stepgate::pipeline::route::{route, Routed};
use stepgate::pipeline::{evaluate, Pass};
use stepgate::policy::decide::decide_with_risk;
use stepgate::policy::level::{AuthMethod, Level, Proof};
use stepgate::policy::normalize::normalize_path;
use stepgate::risk::device::DeviceStatus;
use stepgate::risk::history::{RiskHistory, Sighting};
use stepgate::risk::{assess, verdict, Counts, Facts};

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
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let question = Question {
        method: http::Method::GET,
        url: "https://app.example/account".into(),
        user: Some("alice".into()),
        ip: "81.2.69.142".parse().unwrap(),
        at: NOW,
        device: DeviceStatus::Known,
        proofs: Vec::new(),
        groups: Vec::new(),
        bearer_claims: None,
        workload: None,
    };
    for (name, with_geoip) in [
        ("evaluate (signed in, aal1 route), no GeoIP", false),
        ("evaluate (signed in, aal1 route), GeoIP (city, ASN, anonymous)", true),
    ] {
        let cfg = config(with_geoip);
        let mut ctx = rt.block_on(sandbox(&cfg, &question, &history)).expect("the sandbox");
        ctx.host = "app.example".into();
        ctx.path = normalize_path("/account").unwrap();
        ctx.risk_ctx.user_agent = UA.into();
        c.bench_function(name, |b| {
            b.iter(|| rt.block_on(async { black_box(evaluate(black_box(&ctx), Pass::LookOnly).await.outcome) }))
        });
    }
}

/// Route, GeoIP, score and decide for a signed-in request with an aal1 proof: what a request
/// costs before and after its store reads.
fn decide_and_score(c: &mut Criterion) {
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
    let proofs = [Proof { level: Level::Aal1, method: AuthMethod::Password, auth_time: UnixTime(NOW.0 - 60) }];
    let ip: std::net::IpAddr = "81.2.69.142".parse().unwrap();
    let path = normalize_path("/account").unwrap();
    let method = http::Method::GET;
    for (name, with_geoip) in
        [("decide + score, no GeoIP", false), ("decide + score, GeoIP (city, ASN, anonymous)", true)]
    {
        let cfg = config(with_geoip);
        c.bench_function(name, |b| {
            b.iter(|| {
                let Routed::Rule(routed) = route(&cfg, "app.example", &path, &method, black_box(ip), NOW) else {
                    panic!("a rule")
                };
                let rule = routed.rule;
                let geo = cfg.risk.location.as_ref().map(|l| l.geo.lookup(black_box(ip))).unwrap_or_default();
                let facts = Facts {
                    now: NOW,
                    ip,
                    user_agent: UA,
                    geo: &geo,
                    device: Some(DeviceStatus::Known),
                    history: &history,
                    counts: Counts { recent_requests: 3, failed_challenges: 0 },
                    proof_context: None,
                };
                let assessment = assess(&cfg.risk, rule.risk.window.as_ref(), &facts);
                let v = verdict(&cfg.risk, &rule.risk, &assessment);
                black_box(decide_with_risk(&rule.action, Some(&proofs), NOW, &v))
            })
        });
    }
}

criterion_group!(benches, decide_and_score, per_request);
criterion_main!(benches);
