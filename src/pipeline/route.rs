//! The first phases of `evaluate`, in one order for every way in: method refused? client
//! network denied? a gateway page? else the route's rule.

use crate::clock::UnixTime;
use crate::config::Config;
use crate::policy::normalize::NormalizedPath;
use crate::policy::routes::Classified;
use http::Method;
use ipnet::IpNet;
use std::net::IpAddr;

/// Where a normalized request goes before identity and risk are looked at.
#[must_use]
#[derive(Debug)]
pub enum Routed<'a> {
    /// `CONNECT`: the gateway opens no tunnels (405).
    MethodRefused,
    /// The client address is in `risk.location.deny_networks`: refused on every route (403).
    DeniedNetwork(IpNet),
    /// Under `/.stepgate/`: served by the gateway, never forwarded.
    GatewayPage,
    /// The rule that decides (the first enforced, unexpired match, or `[default]`), with the
    /// shadow rules and the expired rule met on the way.
    Rule(Classified<'a>),
}

/// Whether the method is refused before anything else (its target may not even be a path).
pub fn method_refused(method: &Method) -> bool {
    method == Method::CONNECT
}

pub fn route<'a>(
    cfg: &'a Config,
    host: &str,
    path: &NormalizedPath,
    method: &Method,
    client_ip: IpAddr,
    now: UnixTime,
) -> Routed<'a> {
    if method_refused(method) {
        return Routed::MethodRefused;
    }
    if let Some(net) = cfg.risk.location.as_ref().and_then(|l| crate::risk::location::denied_network(l, client_ip)) {
        return Routed::DeniedNetwork(*net);
    }
    if super::is_gateway_path(path.as_str()) {
        return Routed::GatewayPage;
    }
    Routed::Rule(cfg.routes.classify_at(host, path, method, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::normalize::normalize_path;

    fn config() -> Config {
        let text = r#"
[listen]
address = "127.0.0.1:0"
public_url = "http://app.example"
[upstream]
url = "http://127.0.0.1:9"
[sessions]
secret_key = "0000000000000000000000000000000000000000000000000000000000000000"
[risk.location]
deny_networks = ["203.0.113.0/24"]
[[rule]]
name = "admin"
path = "/admin/**"
require = "aal2"
[default]
require = "none"
"#;
        crate::config::parse(text, std::path::Path::new("/tmp"), &Default::default()).expect("the test config")
    }

    #[test]
    fn the_order_is_method_network_gateway_page_rule() {
        let cfg = config();
        let (bad, good): (IpAddr, IpAddr) = ("203.0.113.7".parse().unwrap(), "198.51.100.7".parse().unwrap());
        let page = normalize_path("/.stepgate/login").unwrap();
        let admin = normalize_path("/admin/x").unwrap();
        let now = crate::clock::UnixTime(1_795_435_200);
        assert!(matches!(route(&cfg, "app.example", &admin, &Method::CONNECT, good, now), Routed::MethodRefused));
        // A denied network is refused before the gateway's own pages, as on every route.
        assert!(matches!(route(&cfg, "app.example", &page, &Method::GET, bad, now), Routed::DeniedNetwork(_)));
        assert!(matches!(route(&cfg, "app.example", &page, &Method::GET, good, now), Routed::GatewayPage));
        assert!(
            matches!(route(&cfg, "app.example", &admin, &Method::GET, good, now), Routed::Rule(c) if c.rule.name == "admin")
        );
    }

    #[tokio::test]
    async fn explain_follows_the_same_order() {
        let cfg = config();
        let history = crate::risk::history::RiskHistory::default();
        let q = |url: &str, ip: &str| crate::explain::Question {
            method: Method::GET,
            url: url.to_string(),
            user: None,
            ip: ip.parse().unwrap(),
            at: crate::clock::UnixTime(1_795_435_200),
            device: crate::risk::device::DeviceStatus::Known,
            proofs: Vec::new(),
            groups: Vec::new(),
            bearer_claims: None,
            workload: None,
        };
        let out = crate::explain::explain(&cfg, &q("http://app.example/.stepgate/login", "203.0.113.7"), &history)
            .await
            .unwrap();
        assert!(out.contains("deny (403)"), "{out}");
        let out = crate::explain::explain(&cfg, &q("http://app.example/.stepgate/login", "198.51.100.7"), &history)
            .await
            .unwrap();
        assert!(out.contains("a gateway page"), "{out}");
    }
}

#[cfg(test)]
mod shadow_tests {
    use crate::clock::UnixTime;
    use crate::explain::{explain, Question};
    use http::Method;

    const T0: u64 = 1_795_435_200; // 2026-11-23T12:00:00Z

    fn config(rules: &str) -> crate::config::Config {
        let text = format!(
            "[listen]\naddress = \"127.0.0.1:0\"\npublic_url = \"http://app.example\"\n[upstream]\nurl = \"http://127.0.0.1:9\"\n\
             [sessions]\nsecret_key = \"{}\"\n{rules}\n[default]\nrequire = \"aal1\"\n",
            "0".repeat(64)
        );
        crate::config::parse(&text, std::path::Path::new("/tmp"), &Default::default()).expect("the test config")
    }

    async fn ask(cfg: &crate::config::Config, url: &str, user: Option<&str>, at: u64) -> String {
        let q = Question {
            method: Method::GET,
            url: url.to_string(),
            user: user.map(str::to_string),
            ip: "198.51.100.7".parse().unwrap(),
            at: UnixTime(at),
            device: crate::risk::device::DeviceStatus::Known,
            proofs: Vec::new(),
            groups: Vec::new(),
            bearer_claims: None,
            workload: None,
        };
        explain(cfg, &q, &Default::default()).await.unwrap()
    }

    #[tokio::test]
    async fn a_shadow_rule_is_evaluated_and_the_request_is_decided_by_the_rules_after_it() {
        let cfg = config(
            "[[rule]]\nname = \"pay-aal2\"\npath = \"/pay\"\nrequire = \"aal2\"\nmode = \"shadow\"\n\
             [[rule]]\nname = \"pay-deny\"\npath = \"/pay\"\naction = \"deny\"\nmode = \"shadow\"\n",
        );
        let out = ask(&cfg, "http://app.example/pay", Some("ann"), T0).await;
        assert!(out.contains("shadow    rule pay-aal2 (require aal2) would decide: challenge"), "{out}");
        assert!(out.contains("shadow    rule pay-deny (deny) would decide: deny rule_denies"), "{out}");
        assert!(out.contains("rule      default") && out.contains("decision  forward"), "{out}");
        let out = ask(&cfg, "http://app.example/pay", None, T0).await;
        assert!(out.contains("pay-aal2 (require aal2) would decide: signin") && out.contains("sign in first"), "{out}");
    }

    #[tokio::test]
    async fn an_expired_rule_is_skipped_from_its_expiry_on() {
        let cfg = config(
            "[[rule]]\nname = \"open\"\npath = \"/r\"\nrequire = \"none\"\nexpires = \"2026-11-23T13:00:00Z\"\n",
        );
        let before = ask(&cfg, "http://app.example/r", None, T0 + 3599).await;
        assert!(before.contains("rule      open") && before.contains("decision  forward"), "{before}");
        for at in [T0 + 3600, T0 + 86_400] {
            let after = ask(&cfg, "http://app.example/r", None, at).await;
            assert!(after.contains("expired   rule open") && after.contains("rule      default"), "{after}");
            assert!(after.contains("sign in first"), "{after}");
        }
    }
}
