//! Risk-adaptive decisions end to end: GeoIP test databases behind a trusted proxy's
//! X-Forwarded-For, the device cookie, time of day under the manual clock, behaviour.

use crate::support::flows::{enroll_totp, submit_totp};
use crate::support::{totp, Client, Harness, Options, T0};
use http::StatusCode;
use std::time::Duration;
use stepgate::clock::UnixTime;

const LONDON: &str = "81.2.69.142";
const MILTON: &str = "216.160.83.56";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) stepgate-test";

fn geoip(file: &str) -> String {
    format!("{}/tests/data/geoip/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// The demo rules behind a trusted proxy (the test client itself, 127.0.0.1), with `risk`.
fn behind_proxy(risk: &str) -> Options {
    Options {
        listen_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        extra: risk.to_string(),
        ..Options::default()
    }
}

/// A browser at `ip` (as the trusted proxy says), signed in as the test user.
async fn browser_at(h: &Harness, ip: &str) -> Client {
    let mut c = h.client();
    c.always_send("x-forwarded-for", ip);
    c.always_send("user-agent", BROWSER);
    c.sign_in().await;
    c
}

fn risk_of(r: &crate::support::Resp) -> String {
    r.echoed_headers().get("x-stepgate-risk").and_then(|v| v.as_str()).unwrap_or("absent").to_string()
}

#[tokio::test]
async fn a_sign_in_from_london_then_a_request_from_milton_minutes_later_is_impossible_travel() {
    let risk = format!("[risk]\n[risk.location]\ncity_db = \"{}\"\n", geoip("GeoLite2-City-Test.mmdb"));
    let h = Harness::with(behind_proxy(&risk)).await;
    let mut c = browser_at(&h, LONDON).await;
    let enrolled = enroll_totp(&h, &mut c).await;
    h.advance(Duration::from_secs(20 * 60)); // the enrolment's proof is now older than step_up_max_age
    let r = c.get("/echo").await;
    assert_eq!(risk_of(&r), "0", "at home in London");

    h.advance(Duration::from_secs(5 * 60));
    c.always_send("x-forwarded-for", MILTON);
    let r = c.get("/echo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "London to Milton in 5 minutes: {}", r.body);
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("acr_values=\"aal2\"") && challenge.contains("max_age=300"), "{challenge}");
    let r = c.browse("/echo").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.location(), "/.stepgate/challenge?return=%2Fecho");

    // The user proves themselves from Milton: that is where they are now.
    let r = submit_totp(&mut c, "/echo", &totp::code(&enrolled.secret, h.now())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = c.get("/echo").await;
    assert_eq!(risk_of(&r), "0", "Milton is known now: {}", r.body);

    // A stranger signing in from London right after: impossible travel for this user again.
    let mut other = browser_at(&h, LONDON).await;
    let r = other.get("/echo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "Milton to London in seconds: {}", r.body);
}

#[tokio::test]
async fn a_new_device_is_challenged_on_an_aal1_route_that_the_known_device_passes() {
    let h = Harness::with(behind_proxy("[risk]\n[risk.device]\n")).await;
    let mut known = browser_at(&h, "198.51.100.7").await;
    let r = known.get("/echo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the first device is unknown too: {}", r.body);
    assert!(r.header("www-authenticate").unwrap_or_default().contains("acr_values=\"aal2\""));
    enroll_totp(&h, &mut known).await; // a second factor proven on this device
    assert!(known.cookie("stepgate_device").is_some(), "the device cookie is set: {:?}", known.jar);
    let account = known.browse("/.stepgate/account").await;
    assert_eq!(account.body.matches("first seen").count(), 1, "one recognised device: {}", account.body);
    h.advance(Duration::from_secs(20 * 60)); // the proof is old now: it is the device that counts
    let r = known.get("/echo").await;
    assert_eq!(risk_of(&r), "0");
    assert!(!r.echoed_headers().get("cookie").and_then(|v| v.as_str()).unwrap_or("").contains("stepgate_device"));

    // The same browser signs in again later: a new session on a known device.
    let mut again = Client::new(h.addr);
    again.always = known.always.clone();
    again.jar.insert("stepgate_device".into(), known.cookie("stepgate_device").unwrap().to_string());
    again.sign_in().await;
    assert_eq!(again.get("/echo").await.status, StatusCode::OK, "a known device passes aal1 with a password");

    // Another browser: same user, same password, same network, no device cookie.
    let mut new_device = browser_at(&h, "198.51.100.7").await;
    let r = new_device.get("/echo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a new device is challenged: {}", r.body);
    // A forged device cookie is no better.
    new_device.jar.insert("stepgate_device".into(), "AAAA.YWxpY2U.AAAAAAAAAAAAAAAAAAAAAA".into());
    assert_eq!(new_device.get("/echo").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hours_and_days_follow_the_injected_clock_in_the_rules_time_zone() {
    // No [risk] section: a rule's hours work on their own.
    let rules = r#"
[[rule]]
name = "transfer"
path = "/transfer"
require = "aal2"
max_age = "1h"
hours = "09:00-12:30"
days = ["mon", "tue", "wed", "thu", "fri"]
time_zone = "Europe/London"
outside_hours = "deny"

[[rule]]
name = "echo"
path = "/echo/**"
require = "aal1"
hours = "07:15-17:00"
time_zone = "America/New_York"

[default]
require = "aal1"
"#;
    let h = Harness::with(Options { rules: rules.into(), ..Options::default() }).await;
    let mut c = h.client();
    c.sign_in().await;
    enroll_totp(&h, &mut c).await;
    // T0 is Monday 12:00 UTC. At 12:10Z it is 12:10 in London (inside 09:00-12:30) and
    // 07:10 in New York (outside 07:15-17:00: 30 points raise aal1 to aal2 within 5 minutes).
    h.clock.set(UnixTime(T0 + 10 * 60));
    assert_eq!(c.get("/transfer").await.status, StatusCode::OK, "Monday 12:10 in London");
    let r = c.get("/echo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "07:10 in New York: {}", r.body);
    assert!(r.header("www-authenticate").unwrap_or_default().contains("acr_values=\"aal2\""));

    h.clock.set(UnixTime(T0 + 20 * 60)); // 07:20 in New York
    let r = c.get("/echo").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    h.clock.set(UnixTime(T0 + 31 * 60)); // 12:31 in London
    let r = c.get("/transfer").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "after hours, the rule denies: {}", r.body);

    h.clock.set(UnixTime(T0 + 5 * 86_400)); // Saturday noon
    let mut c = h.client();
    c.sign_in().await;
    assert_eq!(c.get("/transfer").await.status, StatusCode::FORBIDDEN, "the weekend");
    h.clock.set(UnixTime(T0 + 7 * 86_400)); // Monday noon again
    assert_eq!(c.get("/transfer").await.status, StatusCode::UNAUTHORIZED, "inside hours: step up as usual");
}

#[tokio::test]
async fn another_browser_does_not_inherit_the_elevation_and_bursts_count() {
    let risk = "[risk]\n[risk.behaviour]\nwindow = \"1m\"\nmax_requests = 5\nburst = 30\n";
    let h = Harness::with(behind_proxy(risk)).await;
    let mut c = browser_at(&h, "198.51.100.7").await;
    enroll_totp(&h, &mut c).await;
    assert_eq!(c.get("/transfer").await.status, StatusCode::OK, "fresh TOTP proof");

    let mut stolen = c.clone();
    stolen.always_send("user-agent", "curl/8.5");
    let r = stolen.get("/transfer").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the session cookie in another browser: {}", r.body);
    let r = stolen.get("/echo").await;
    assert_eq!(risk_of(&r), "20", "signed in still counts; the change scores");

    // Ten minutes on, in a fresh window: five protected requests a minute pass, the sixth is a burst.
    h.advance(Duration::from_secs(10 * 60));
    for n in 1..=5 {
        let r = c.get("/echo").await;
        assert_eq!(r.status, StatusCode::OK, "request {n} of the window");
    }
    let r = c.get("/echo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the sixth in a minute scores a burst: {}", r.body);
}

#[tokio::test]
async fn anonymizers_are_denied_deny_listed_networks_are_refused_everywhere_and_headers_are_stripped() {
    let risk = format!(
        "[risk]\n[risk.location]\ncity_db = \"{}\"\nanonymous_db = \"{}\"\ndeny_networks = [\"192.0.2.0/24\"]\n",
        geoip("GeoLite2-City-Test.mmdb"),
        geoip("GeoIP2-Anonymous-IP-Test.mmdb")
    );
    let h = Harness::with(behind_proxy(&risk)).await;
    // 81.2.69.142: a Tor exit, VPN and hosting provider in the test database: 95 points.
    let mut tor = browser_at(&h, LONDON).await;
    let r = tor.get("/echo").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    let mut denied = h.client();
    denied.always_send("x-forwarded-for", "192.0.2.10");
    assert_eq!(denied.get("/public/x").await.status, StatusCode::FORBIDDEN, "public routes too");
    assert_eq!(denied.browse("/.stepgate/login").await.status, StatusCode::FORBIDDEN, "and the sign-in page");

    let mut plain = h.client();
    plain.always_send("x-forwarded-for", MILTON);
    let r = plain.get_with("/echo/public/x", &[("x-stepgate-risk", "0")]).await;
    assert_eq!(r.echoed_headers().get("x-stepgate-risk"), None, "a client's own risk header never reaches the app");
}
