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
