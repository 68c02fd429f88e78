use super::*;
use crate::explain::suite;

fn config(identity: &str) -> Config {
    let text = format!(
        r#"
[listen]
address = "127.0.0.1:0"
public_url = "http://app.example"
trusted_proxies = ["10.0.0.1"]
[upstream]
url = "http://127.0.0.1:9"
[sessions]
secret_key = "0000000000000000000000000000000000000000000000000000000000000000"
absolute_timeout = "12h"
{identity}
[[rule]]
name = "admin"
path = "/admin/**"
require = "aal2"
max_age = "10m"
[[rule]]
name = "vault"
path = "/vault/**"
require = "aal3"
[[rule]]
name = "finance"
path = "/finance/**"
require = "aal1"
groups = ["finance"]
[default]
require = "aal1"
"#
    );
    crate::config::parse(&text, std::path::Path::new("/tmp"), &Default::default()).expect("the test config")
}

fn builtin() -> Config {
    config("[identity]\nsource = \"builtin\"\nusers_file = \"/nonexistent/users.toml\"")
}

fn one(case: &str) -> Result<Case, CaseFileError> {
    let text = format!("[[case]]\n{case}\n");
    parse("cases.toml", &text, &builtin()).map(|mut c| c.remove(0))
}

fn error(case: &str) -> String {
    one(case).expect_err("the case should be refused").to_string()
}

#[test]
fn defaults_are_fixed_and_a_user_signs_in_with_a_password_at_at() {
    let c = one("name = \"a\"\nurl = \"/\"\nuser = \"alice\"\nexpect = \"forward\"").unwrap();
    assert_eq!(c.question.method, http::Method::GET);
    assert_eq!(c.question.at, DEFAULT_AT);
    assert_eq!(c.question.ip, DEFAULT_IP);
    assert_eq!(c.question.device, DeviceStatus::Known);
    assert_eq!(
        c.question.proofs,
        vec![Proof { level: Level::Aal1, method: AuthMethod::Password, auth_time: DEFAULT_AT }]
    );
}

#[test]
fn a_step_up_is_recorded_after_the_sign_in_both_proof_age_before_at() {
    let c = one("name = \"a\"\nurl = \"/\"\nuser = \"alice\"\nproof_method = \"totp\"\nproof_age = \"10m\"\nat = 1000000\nexpect = \"forward\"")
        .unwrap();
    let t = UnixTime(1_000_000 - 600);
    assert_eq!(
        c.question.proofs,
        vec![
            Proof { level: Level::Aal1, method: AuthMethod::Password, auth_time: t },
            Proof { level: Level::Aal2, method: AuthMethod::Totp, auth_time: t },
        ]
    );
    // The level alone picks the usual method; a TOML date-time is an `at` too.
    let c = one("name = \"a\"\nurl = \"/\"\nuser = \"alice\"\nlevel = \"aal3\"\nat = 2026-01-05T12:00:00Z\nexpect = \"forward\"")
        .unwrap();
    assert_eq!(c.question.at, DEFAULT_AT);
    assert_eq!(c.question.proofs[1].method, AuthMethod::Webauthn);
}

#[test]
fn unknown_keys_and_bad_values_name_the_file_the_case_and_the_key() {
    let e = error("name = \"admin ok\"\nurl = \"/\"\nexpect = \"forward\"\nproof_agee = \"5m\"");
    assert!(e.starts_with("cases.toml: case 'admin ok': unknown field `proof_agee`"), "{e}");
    let e = error("name = \"a\"\nurl = \"/\"\nexpect = \"allow\"");
    assert!(e.contains("case 'a': unknown variant `allow`"), "{e}");
    let e = error("name = \"a\"\nurl = \"/\"\nuser = \"u\"\nproof_age = \"5 minutes\"\nexpect = \"forward\"");
    assert!(e.contains("case 'a': proof_age: '5 minutes' is not a duration"), "{e}");
    let e = error("name = \"a\"\nurl = \"/\"\nip = \"localhost\"\nexpect = \"forward\"");
    assert!(e.contains("case 'a': ip: 'localhost' is not an IP address"), "{e}");
    let e = error("name = \"a\"\nurl = \"/\"\nat = \"yesterday\"\nexpect = \"forward\"");
    assert!(e.contains("case 'a': at: 'yesterday'"), "{e}");
    let e = error("name = \"a\"\nurl = \"/\"\ndevice = \"old\"\nexpect = \"forward\"");
    assert!(e.contains("case 'a': device: 'old'"), "{e}");
    let e = error("url = \"/\"\nexpect = \"forward\"");
    assert!(e.contains("case #1: missing field `name`"), "{e}");
}

#[test]
fn groups_are_a_list_for_a_signed_in_user() {
    let e = error("name = \"finance\"\nurl = \"/\"\nuser = \"u\"\ngroups = \"finance\"\nexpect = \"forward\"");
    assert!(e.contains("case 'finance': groups: a list of group names"), "{e}");
    let e = error("name = \"finance\"\nurl = \"/\"\ngroups = [\"finance\"]\nexpect = \"forward\"");
    assert!(e.contains("case 'finance': groups: groups need a signed-in user"), "{e}");
}

#[tokio::test]
async fn a_case_s_groups_meet_a_rule_s_groups() {
    let text = r#"
[[case]]
name = "in finance"
url = "/finance/report"
user = "alice"
groups = ["staff", "finance"]
expect = "forward"
[[case]]
name = "not in finance"
url = "/finance/report"
user = "bob"
groups = ["staff"]
expect = "deny"
[[case]]
name = "no groups"
url = "/finance/report"
user = "bob"
expect = "deny"
"#;
    let got: Vec<_> = verdicts(&builtin(), text).await.into_iter().map(|v| (v.decision, v.cause)).collect();
    assert_eq!(
        got,
        vec![
            ("forward", "proven".to_string()),
            ("deny", "not_in_group".to_string()),
            ("deny", "not_in_group".to_string()),
        ]
    );
}

#[test]
fn proofs_must_be_possible() {
    let e = error(
        "name = \"a\"\nurl = \"/\"\nuser = \"u\"\nlevel = \"aal3\"\nproof_method = \"totp\"\nexpect = \"forward\"",
    );
    assert!(e.contains("level: a totp proof is aal2, not aal3"), "{e}");
    let e = error("name = \"a\"\nurl = \"/\"\nlevel = \"aal2\"\nexpect = \"forward\"");
    assert!(e.contains("level: a proof needs a signed-in user"), "{e}");
    let e = error("name = \"a\"\nurl = \"/\"\nuser = \"u\"\nlevel = \"none\"\nexpect = \"forward\"");
    assert!(e.contains("level: \"none\" means nobody is signed in"), "{e}");
}

#[test]
fn the_file_holds_cases_with_distinct_names() {
    let cfg = builtin();
    let e = parse("c.toml", "", &cfg).unwrap_err().to_string();
    assert!(e.contains("c.toml: no [[case]] entries"), "{e}");
    let e = parse("c.toml", "at = 5\n[[case]]\nname = \"a\"\nurl = \"/\"\nexpect = \"forward\"", &cfg).unwrap_err();
    assert_eq!(e.to_string(), "c.toml: at: unknown key (the file holds only [[case]] entries)");
    let two = "[[case]]\nname = \"a\"\nurl = \"/\"\nexpect = \"signin\"\n";
    let e = parse("c.toml", &two.repeat(2), &cfg).unwrap_err().to_string();
    assert!(e.contains("case 'a': name: another case has this name"), "{e}");
    let e = parse("c.toml", "[[case]\n", &cfg).unwrap_err().to_string();
    assert!(e.starts_with("c.toml: TOML parse error at line 1"), "{e}");
}

async fn verdicts(cfg: &Config, text: &str) -> Vec<suite::Verdict> {
    let cases = parse("c.toml", text, cfg).unwrap();
    let live = std::sync::Arc::new(crate::state::Live::new(cfg.clone()).unwrap());
    let mut out = Vec::new();
    for c in &cases {
        out.push(suite::verdict(&live, c).await.unwrap());
    }
    out
}

#[tokio::test]
async fn proof_age_decides_freshness_and_the_absolute_timeout_still_ends_a_session() {
    let text = r#"
[[case]]
name = "fresh"
url = "/admin/x"
user = "alice"
level = "aal2"
proof_age = "9m"
expect = "forward"
[[case]]
name = "too old"
url = "/admin/x"
user = "alice"
level = "aal2"
proof_age = "11m"
expect = "challenge"
[[case]]
name = "signed in 13 hours ago"
url = "/account"
user = "alice"
proof_age = "13h"
expect = "signin"
[[case]]
name = "a passkey without user verification is not aal3"
url = "/vault"
user = "alice"
level = "aal2"
proof_method = "webauthn"
expect = "challenge"
"#;
    let got: Vec<_> = verdicts(&builtin(), text).await.into_iter().map(|v| (v.decision, v.cause)).collect();
    assert_eq!(
        got,
        vec![
            ("forward", "proven".to_string()),
            ("challenge", "proof_too_weak_or_old".to_string()),
            ("signin", "no_session".to_string()),
            ("challenge", "proof_too_weak_or_old".to_string()),
        ]
    );
}

#[tokio::test]
async fn with_a_trusted_header_the_user_is_signed_in_by_the_proxy() {
    let cfg = config("[identity]\nsource = \"header\"\nheader = \"X-Remote-User\"");
    let text = r#"
[[case]]
name = "page"
url = "/account"
user = "alice"
expect = "forward"
[[case]]
name = "admin with totp"
url = "/admin"
user = "alice"
proof_method = "totp"
proof_age = "1m"
expect = "forward"
"#;
    let cases = parse("c.toml", text, &cfg).unwrap();
    assert_eq!(cases[0].question.proofs[0].method, AuthMethod::Header);
    let got: Vec<_> = verdicts(&cfg, text).await.into_iter().map(|v| (v.decision, v.rule)).collect();
    assert_eq!(got, vec![("forward", "default".to_string()), ("forward", "admin".to_string())]);
}
