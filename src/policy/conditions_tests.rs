use super::*;
use crate::policy::routes::RouteTable;

fn attrs() -> Attributes {
    Attributes {
        groups: vec!["staff".into(), "finance".into()],
        claims: [
            ("department".to_string(), serde_json::json!("payments")),
            ("roles".to_string(), serde_json::json!(["approver", "viewer"])),
            ("level".to_string(), serde_json::json!(3)),
        ]
        .into(),
        scopes: vec!["payments:read".into(), "payments:write".into()],
        workload: Some("spiffe://example.org/ns/prod/sa/billing".into()),
        client: Some("billing-cli".into()),
        credential_issued_at: Some(UnixTime(1_000)),
    }
}

fn conditions(toml_rule: &str) -> Result<Conditions, ConfigError> {
    let text = format!(
        "[[rule]]\nname = \"r\"\npath = \"/x\"\nrequire = \"aal1\"\n{toml_rule}\n[default]\nrequire = \"none\"\n"
    );
    #[derive(serde::Deserialize)]
    struct File {
        rule: Vec<crate::policy::raw::RawRule>,
        default: crate::policy::raw::RawDefaultRule,
    }
    let f: File = toml::from_str(&text).expect("toml");
    let table = RouteTable::build(&f.rule, &f.default, false)?;
    Ok(table.rules[0].conditions.clone())
}

#[test]
fn each_condition_admits_and_refuses_with_its_own_cause() {
    let now = UnixTime(1_100);
    let a = attrs();
    let ok = |c: &str| conditions(c).unwrap().check(&a, now);
    assert_eq!(ok("groups = [\"finance\", \"audit\"]"), Ok(()));
    assert_eq!(ok("groups = [\"audit\"]"), Err(Cause::NotInGroup));
    assert_eq!(ok("claims = { department = \"payments\" }"), Ok(()));
    assert_eq!(ok("claims = { department = \"sales\" }"), Err(Cause::ClaimMismatch));
    assert_eq!(ok("claims = { roles = \"approver\" }"), Ok(()), "a list claim contains the value");
    assert_eq!(ok("claims = { level = \"3\" }"), Ok(()));
    assert_eq!(ok("claims = { missing = \"x\" }"), Err(Cause::ClaimMismatch));
    assert_eq!(ok("scopes = [\"payments:write\"]"), Ok(()));
    assert_eq!(ok("scopes = [\"payments:write\", \"admin\"]"), Err(Cause::MissingScope));
    assert_eq!(ok("workload = \"spiffe://example.org/ns/prod/sa/*\""), Ok(()));
    assert_eq!(ok("workload = \"spiffe://example.org/ns/dev/sa/*\""), Err(Cause::WorkloadNotAllowed));
    assert_eq!(ok("workload = \"spiffe://example.org/*\""), Err(Cause::WorkloadNotAllowed), "* stays in one segment");
    assert_eq!(ok("workload = \"spiffe://example.org/**\""), Ok(()));
    assert_eq!(ok("client = \"billing-*\""), Ok(()));
    assert_eq!(ok("client = \"payroll-*\""), Err(Cause::ClientNotAllowed));
    assert_eq!(ok("max_credential_age = \"5m\""), Ok(()));
    assert_eq!(ok("max_credential_age = \"1m\""), Err(Cause::CredentialTooOld));
}

#[test]
fn a_token_client_is_never_a_workload_nor_a_workload_a_client() {
    let now = UnixTime(1_100);
    let spiffe = "spiffe://example.org/ns/prod/sa/billing";
    // A token whose issuer names its client like a SPIFFE ID: the CA proved nothing of it.
    let token = Attributes { client: Some(spiffe.into()), ..Attributes::default() };
    let workload_rule = conditions(&format!("workload = \"{spiffe}\"")).unwrap();
    assert_eq!(workload_rule.check(&token, now), Err(Cause::WorkloadNotAllowed));
    assert_eq!(conditions("workload = \"**\"").unwrap().check(&token, now), Err(Cause::WorkloadNotAllowed));
    // And a certificate's workload is no token client.
    let cert = Attributes { workload: Some(spiffe.into()), ..Attributes::default() };
    assert_eq!(conditions("client = \"**\"").unwrap().check(&cert, now), Err(Cause::ClientNotAllowed));
    assert_eq!(conditions(&format!("client = \"{spiffe}\"")).unwrap().check(&token, now), Ok(()));
}

#[test]
fn a_person_without_a_credential_time_or_workload_fails_closed() {
    let session = Attributes::default();
    let now = UnixTime(5_000);
    assert_eq!(conditions("max_credential_age = \"1h\"").unwrap().check(&session, now), Err(Cause::CredentialTooOld));
    assert_eq!(conditions("workload = \"**\"").unwrap().check(&session, now), Err(Cause::WorkloadNotAllowed));
    assert_eq!(conditions("").unwrap().check(&session, now), Ok(()));
}

#[test]
fn conditions_that_could_never_act_or_are_malformed_are_refused_naming_the_key() {
    let err = |extra: &str, require: &str| {
        let text =
            format!("[[rule]]\nname = \"r\"\npath = \"/x\"\n{require}\n{extra}\n[default]\nrequire = \"none\"\n");
        #[derive(serde::Deserialize)]
        struct File {
            rule: Vec<crate::policy::raw::RawRule>,
            default: crate::policy::raw::RawDefaultRule,
        }
        let f: File = toml::from_str(&text).expect("toml");
        RouteTable::build(&f.rule, &f.default, false).unwrap_err().to_string()
    };
    assert!(err("groups = [\"a\"]", "require = \"none\"").contains("rule 'r'.groups"));
    assert!(err("scopes = [\"a\"]", "action = \"deny\"").contains("rule 'r'.scopes"));
    assert!(err("groups = []", "require = \"aal1\"").contains("empty"));
    assert!(err("groups = [\"two words\"]", "require = \"aal1\"").contains("rule 'r'.groups"));
    assert!(err("max_credential_age = \"soon\"", "require = \"aal1\"").contains("rule 'r'.max_credential_age"));
    assert!(err("workload = \"\"", "require = \"aal1\"").contains("rule 'r'.workload"));
    assert!(err("client = \"a b\"", "require = \"aal1\"").contains("rule 'r'.client"));
    assert!(err("claims = {}", "require = \"aal1\"").contains("rule 'r'.claims"));
}

#[test]
fn globs() {
    assert!(glob_matches("spiffe://td/ns/*/sa/web", "spiffe://td/ns/prod/sa/web"));
    assert!(!glob_matches("spiffe://td/ns/*/sa/web", "spiffe://td/ns/a/b/sa/web"));
    assert!(glob_matches("spiffe://td/**", "spiffe://td/a/b"));
    assert!(!glob_matches("spiffe://td/a", "spiffe://td/ab"));
    assert!(glob_matches("CN=*", "CN=svc"));
}

#[test]
fn an_expiry_that_drops_a_condition_loosens_protection() {
    let text = r#"
[[rule]]
name = "finance-only"
path = "/pay/**"
require = "aal1"
groups = ["finance"]
expires = "2026-12-31"

[default]
require = "aal1"
"#;
    #[derive(serde::Deserialize)]
    struct File {
        rule: Vec<crate::policy::raw::RawRule>,
        default: crate::policy::raw::RawDefaultRule,
    }
    let f: File = toml::from_str(text).unwrap();
    let e = RouteTable::build(&f.rule, &f.default, false).unwrap_err().to_string();
    assert!(e.contains("finance-only") && e.contains("groups"), "{e}");
}
