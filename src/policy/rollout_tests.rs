use super::*;
use crate::policy::normalize::normalize_path;
use crate::policy::raw::RawDefaultRule;
use crate::policy::routes::RouteTable;
use http::Method;

fn rule(name: &str, path: &str, require: &str) -> RawRule {
    RawRule { name: name.into(), path: path.into(), require: Some(require.into()), ..RawRule::default() }
}

fn deny(name: &str, path: &str) -> RawRule {
    RawRule { name: name.into(), path: path.into(), action: Some("deny".into()), ..RawRule::default() }
}

fn expiring(mut r: RawRule, when: &str) -> RawRule {
    r.expires = Some(when.into());
    r
}

fn shadow(mut r: RawRule) -> RawRule {
    r.mode = Some("shadow".into());
    r
}

fn default(require: &str) -> RawDefaultRule {
    RawDefaultRule { require: Some(require.into()), max_age: None, allow: None, action: None }
}

fn build(rules: &[RawRule], d: &RawDefaultRule) -> Result<RouteTable, ConfigError> {
    RouteTable::build(rules, d, false)
}

fn at(t: &RouteTable, path: &str, now: UnixTime) -> (String, Vec<String>, Option<String>) {
    let p = normalize_path(path).unwrap();
    let c = t.classify_at("app.example", &p, &Method::GET, now);
    (c.rule.name.clone(), c.shadows.iter().map(|r| r.name.clone()).collect(), c.expired.map(|r| r.name.clone()))
}

/// 2027-03-31 is written as a date: the rule applies through that day, UTC.
const END_OF_MARCH_31: u64 = 1_806_537_600; // 2027-04-01T00:00:00Z

#[test]
fn a_date_means_through_the_end_of_that_day_utc_and_rfc3339_is_exact() {
    assert_eq!(parse_expiry("2027-03-31"), Some(UnixTime(END_OF_MARCH_31)));
    assert_eq!(parse_expiry("2027-03-31T18:00:00Z"), Some(UnixTime(END_OF_MARCH_31 - 6 * 3600)));
    assert_eq!(parse_expiry("2027-03-31T20:00:00+02:00"), Some(UnixTime(END_OF_MARCH_31 - 6 * 3600)));
    assert_eq!(parse_expiry("31/03/2027"), None);
    let e = build(&[expiring(rule("x", "/x", "aal2"), "next tuesday")], &default("aal2")).unwrap_err();
    assert_eq!(e.key, "rule 'x'.expires");
    assert!(e.reason.contains("end of that day UTC"), "{e}");
}

#[test]
fn an_expiring_rule_applies_before_its_expiry_and_is_skipped_at_and_after_it() {
    // An exception: aal1 on /admin/reports until the end of March, then the aal3 rule below.
    let t = build(
        &[
            expiring(rule("reports-exception", "/admin/reports", "aal1"), "2027-03-31"),
            rule("admin", "/admin/**", "aal3"),
        ],
        &default("none"),
    )
    .unwrap();
    let before = UnixTime(END_OF_MARCH_31 - 1);
    assert_eq!(at(&t, "/admin/reports", before), ("reports-exception".into(), vec![], None));
    for now in [UnixTime(END_OF_MARCH_31), UnixTime(END_OF_MARCH_31 + 86_400)] {
        assert_eq!(at(&t, "/admin/reports", now), ("admin".into(), vec![], Some("reports-exception".into())));
    }
    let e = t.rules[0].rollout.expiry.as_ref().unwrap();
    assert_eq!(e.seconds_left(before), 1);
    assert_eq!(e.seconds_left(UnixTime(END_OF_MARCH_31 + 10)), -10);
}

#[test]
fn an_expiry_that_would_loosen_protection_is_refused_unless_fall_through_is_written() {
    // A deny in front of a public default: after expiry the route would be open.
    let rules = [expiring(deny("block-export", "/export/**"), "2027-03-31")];
    let e = build(&rules, &default("none")).unwrap_err();
    assert_eq!(e.key, "rule 'block-export'.expires");
    assert!(e.reason.contains("loosen protection") && e.reason.contains("'default'"), "{e}");
    assert!(e.reason.contains("on_expiry = \"fall_through\""), "{e}");
    let mut meant = rules[0].clone();
    meant.on_expiry = Some("fall_through".into());
    assert!(build(&[meant], &default("none")).is_ok());
    // A rule below that covers it and is as strict keeps it safe, whatever the default; one
    // that lets requests through (at any level) does not.
    assert!(build(&[rules[0].clone(), deny("export", "/export/**")], &default("none")).is_ok());
    let e = build(&[rules[0].clone(), rule("export", "/export/**", "aal2")], &default("none")).unwrap_err();
    assert!(e.reason.contains("'export'") && e.reason.contains("it denies"), "{e}");
    // Weaker in each way: level, max_age, allowed methods; the error names the rule taking over.
    let mut fresh = expiring(rule("fresh", "/pay", "aal2"), "2027-03-31");
    fresh.max_age = Some("5m".into());
    let e = build(&[fresh.clone(), rule("pay", "/pay", "aal2")], &default("aal3")).unwrap_err();
    assert!(e.reason.contains("'pay'") && e.reason.contains("max_age"), "{e}");
    let mut passkey = expiring(rule("passkey", "/pay", "aal2"), "2027-03-31");
    passkey.allow = Some(vec!["webauthn".into()]);
    let e = build(&[passkey], &default("aal2")).unwrap_err();
    assert!(e.reason.contains("any method"), "{e}");
    let e =
        build(&[expiring(rule("strong", "/s/**", "aal3"), "2027-03-31"), rule("s", "/s/x", "aal1")], &default("aal3"))
            .unwrap_err();
    assert!(e.reason.contains("'s'") && e.reason.contains("lower level"), "{e}");
    // on_expiry without expires, or an unknown value, is an error naming the key.
    let mut stray = rule("x", "/x", "aal1");
    stray.on_expiry = Some("fall_through".into());
    assert_eq!(build(&[stray], &default("aal1")).unwrap_err().key, "rule 'x'.on_expiry");
    let mut odd = expiring(rule("x", "/x", "aal1"), "2027-03-31");
    odd.on_expiry = Some("deny".into());
    assert_eq!(build(&[odd], &default("aal1")).unwrap_err().key, "rule 'x'.on_expiry");
}

#[test]
fn shadow_rules_are_matched_on_the_way_and_never_decide() {
    let t =
        build(&[shadow(rule("admin-aal2", "/admin/**", "aal2")), rule("admin", "/admin/**", "aal1")], &default("none"))
            .unwrap();
    let now = UnixTime(1);
    assert_eq!(at(&t, "/admin/x", now), ("admin".into(), vec!["admin-aal2".into()], None));
    assert_eq!(at(&t, "/public", now), ("default".into(), vec![], None));
    // Where no shadow rule matches, nothing is allocated for them.
    let p = normalize_path("/public").unwrap();
    assert_eq!(t.classify_at("app.example", &p, &Method::GET, now).shadows.capacity(), 0);
}

#[test]
fn a_shadow_rule_hides_nothing_but_an_enforced_rule_cannot_hide_a_shadow_rule() {
    // The shadow rule covers the enforced one below it: not an error (it does not decide).
    assert!(build(&[shadow(rule("all", "/**", "aal2")), rule("admin", "/admin/**", "aal3")], &default("none")).is_ok());
    // An expiring rule hands its requests on: not shadowing either.
    assert!(build(
        &[expiring(rule("tmp", "/a/**", "aal1"), "2027-03-31"), rule("a", "/a/**", "aal2")],
        &default("aal2")
    )
    .is_ok());
    let e =
        build(&[rule("admin", "/admin/**", "aal1"), shadow(rule("admin-aal2", "/admin/x", "aal2"))], &default("none"))
            .unwrap_err();
    assert_eq!(e.key, "rule 'admin-aal2'");
    assert!(e.reason.contains("shadow rule never evaluated") && e.reason.contains("'admin'"), "{e}");
    let e = build(&[shadow(rule("x", "/x", "aal1"))], &default("none")).map(|t| t.rules[0].rollout.mode);
    assert_eq!(e.unwrap(), Mode::Shadow);
    let mut bad = rule("x", "/x", "aal1");
    bad.mode = Some("audit".into());
    assert_eq!(build(&[bad], &default("none")).unwrap_err().key, "rule 'x'.mode");
}

#[test]
fn check_config_warns_within_14_days_and_lists_expired_rules() {
    let mut owned = expiring(rule("soon", "/soon", "aal1"), "2027-03-31");
    owned.owner = Some("ann".into());
    owned.ticket = Some("SEC-42".into());
    let t = build(
        &[
            owned,
            expiring(rule("later", "/later", "aal1"), "2027-06-30"),
            expiring(rule("gone", "/gone", "aal1"), "2027-01-31"),
        ],
        &default("aal1"),
    )
    .unwrap();
    let now = UnixTime(END_OF_MARCH_31 - 3 * 86_400);
    let lines = t.expiry_warnings(now);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "warning: rule 'soon' expires in 3days (2027-03-31; owner ann, ticket SEC-42)");
    assert!(lines[1].starts_with("expired: rule 'gone' expired at 2027-01-31"), "{lines:?}");
    // Just outside the window: no warning.
    assert!(t.expiry_warnings(UnixTime(END_OF_MARCH_31 - 15 * 86_400)).iter().all(|l| !l.contains("'soon'")));
}
