//! `stepgate test-policy` as CI runs it: the repository's example case file against its example
//! config, and the same file with one expectation changed, broken, or with groups not written as a list.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
}

/// Runs `stepgate --config CONFIG test-policy CASES`: (exit code, stdout, stderr).
fn test_policy(config: &Path, cases: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stepgate"))
        .arg("--config")
        .arg(config)
        .arg("test-policy")
        .arg(cases)
        .output()
        .expect("run the stepgate binary");
    (
        out.status.code().expect("an exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The example case file with `from` replaced by `to` (which must occur exactly once).
fn edited(dir: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo("policy-tests.toml")).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from:?} should occur once in policy-tests.toml");
    let path = dir.join("cases.toml");
    std::fs::write(&path, text.replace(from, to)).unwrap();
    path
}

#[test]
fn the_example_cases_pass_against_the_example_config() {
    let (code, out, err) = test_policy(&repo("config.toml"), &repo("policy-tests.toml"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains("ok    an encoded slash is refused: bad_request"), "{out}");
    assert!(
        out.contains("ok    admin with a TOTP code 11 minutes old is challenged: challenge (rule admin, cause proof_too_weak_or_old"),
        "{out}"
    );
    let last = out.lines().last().unwrap_or_default();
    assert!(last.ends_with("passed, 0 failed"), "{out}");
}

#[test]
fn a_wrong_expectation_fails_with_expected_actual_rule_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    // The 11-minute-old TOTP code is expected to pass: the policy says otherwise.
    let from = "proof_age = \"11m\"\nat = \"2026-01-05T12:00:00Z\"\nexpect = \"challenge\"";
    let cases = edited(dir.path(), from, &from.replace("\"challenge\"", "\"forward\""));
    let (code, out, err) = test_policy(&repo("config.toml"), &cases);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains(
            "FAIL  admin with a TOTP code 11 minutes old is challenged: expected forward by rule admin, \
             got challenge (rule admin, cause proof_too_weak_or_old, needs require aal2 max_age 10m allow totp)"
        ),
        "{out}"
    );
    assert_eq!(out.matches("FAIL").count(), 1, "{out}");
    assert!(out.contains("passed, 1 failed"), "{out}");

    // Right decision, wrong rule: a failure too.
    let cases = edited(dir.path(), "expect_rule = \"health\"", "expect_rule = \"static\"");
    let (code, out, _) = test_policy(&repo("config.toml"), &cases);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "FAIL  health check is public: expected forward by rule static, got forward (rule health, cause public)"
        ),
        "{out}"
    );
}

#[test]
fn a_broken_case_file_exits_2_naming_the_file_case_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = edited(dir.path(), "expect_rule = \"health\"", "expect_rule = \"health\"\nproof_agee = \"5m\"");
    let (code, out, err) = test_policy(&repo("config.toml"), &cases);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(out.is_empty(), "no case runs from a broken file: {out}");
    let want = format!("stepgate: {}: case 'health check is public': unknown field `proof_agee`", cases.display());
    assert!(err.contains(&want), "{err}");

    let cases = edited(
        dir.path(),
        "user = \"alice\"\nexpect = \"forward\"\nexpect_rule = \"default\"\n\n# Payments",
        "user = \"alice\"\ngroups = \"staff\"\nexpect = \"forward\"\n\n# Payments",
    );
    let (code, _, err) = test_policy(&repo("config.toml"), &cases);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("case 'a signed-in user reads a page': groups: a list of group names"), "{err}");

    // A config that does not load is the same kind of failure: nothing was tested.
    let config = dir.path().join("config.toml");
    let text = std::fs::read_to_string(repo("config.toml")).unwrap();
    std::fs::write(&config, text.replace("case_sensitive = false", "case_sensitive = false\nbogus = 1")).unwrap();
    let (code, _, err) = test_policy(&config, &repo("policy-tests.toml"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("stepgate: {}: ", config.display())), "{err}");
    assert!(err.contains("unknown field `bogus`"), "{err}");
}
