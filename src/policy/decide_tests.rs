use super::*;
use crate::policy::level::AuthMethod;
use std::time::Duration;

const NOW: UnixTime = UnixTime(1_000_000);

fn proof(level: Level, method: AuthMethod, secs_ago: u64) -> Proof {
    Proof { level, method, auth_time: UnixTime(NOW.0 - secs_ago) }
}

fn req(level: Level, max_age: Option<u64>, allow: Option<&[AuthMethod]>) -> Requirement {
    Requirement { level, max_age: max_age.map(Duration::from_secs), allow: allow.map(<[AuthMethod]>::to_vec) }
}

#[derive(Debug)]
enum Want {
    Forward(Option<usize>),
    SignIn,
    StepUp,
    Deny,
}

#[test]
fn decision_table() {
    use AuthMethod::*;
    use Level::{Aal1, Aal2, Aal3};
    let pw = proof(Aal1, Password, 10);
    let hdr = proof(Aal1, Header, 10);
    let totp_fresh = proof(Aal2, Totp, 60);
    let totp_300 = proof(Aal2, Totp, 300);
    let totp_301 = proof(Aal2, Totp, 301);
    let wa_old = proof(Aal3, Webauthn, 3600);
    let wa_new = proof(Aal3, Webauthn, 30);
    let wa_uv_less = proof(Aal2, Webauthn, 5);
    let rec = proof(Aal2, Recovery, 5);
    let future = Proof { level: Aal2, method: Totp, auth_time: UnixTime(NOW.0 + 100) };
    let inflated = proof(Aal3, Password, 1);
    let aal1 = Action::Require(req(Aal1, None, None));
    let aal2 = Action::Require(req(Aal2, None, None));
    let aal2_5m = Action::Require(req(Aal2, Some(300), None));
    let aal3 = Action::Require(req(Aal3, None, None));
    let aal3_5m = Action::Require(req(Aal3, Some(300), None));
    let aal2_totp = Action::Require(req(Aal2, None, Some(&[Totp])));
    let aal1_wa = Action::Require(req(Aal1, None, Some(&[Webauthn])));
    let none = Action::Require(req(Level::None, None, None));

    // (name, action, proofs, want: index into proofs of the forwarded proof)
    let rows: Vec<(&str, &Action, Option<Vec<Proof>>, Want)> = vec![
        ("deny, no session", &Action::Deny, None, Want::Deny),
        ("deny, strongest proof", &Action::Deny, Some(vec![wa_new.clone()]), Want::Deny),
        ("none, no session", &none, None, Want::Forward(None)),
        ("none, signed in", &none, Some(vec![pw.clone()]), Want::Forward(None)),
        ("aal1, no session", &aal1, None, Want::SignIn),
        ("aal2, no session", &aal2, None, Want::SignIn),
        ("aal1, empty session", &aal1, Some(vec![]), Want::StepUp),
        ("aal1, password", &aal1, Some(vec![pw.clone()]), Want::Forward(Some(0))),
        ("aal1, header", &aal1, Some(vec![hdr.clone()]), Want::Forward(Some(0))),
        ("aal2, only password: lower level", &aal2, Some(vec![pw.clone()]), Want::StepUp),
        ("aal2, totp", &aal2, Some(vec![pw.clone(), totp_fresh.clone()]), Want::Forward(Some(1))),
        ("aal2, recovery", &aal2, Some(vec![rec.clone()]), Want::Forward(Some(0))),
        ("aal1 satisfied by aal3 (higher level)", &aal1, Some(vec![wa_old.clone()]), Want::Forward(Some(0))),
        ("aal2 satisfied by aal3", &aal2, Some(vec![wa_old.clone()]), Want::Forward(Some(0))),
        ("aal3, only aal2", &aal3, Some(vec![pw.clone(), totp_fresh.clone()]), Want::StepUp),
        ("aal3, webauthn without UV (aal2)", &aal3, Some(vec![wa_uv_less.clone()]), Want::StepUp),
        ("max_age: exactly max_age old passes", &aal2_5m, Some(vec![totp_300.clone()]), Want::Forward(Some(0))),
        ("max_age: one second more fails", &aal2_5m, Some(vec![totp_301.clone()]), Want::StepUp),
        (
            "max_age: fresh one chosen over stale",
            &aal2_5m,
            Some(vec![totp_301.clone(), totp_fresh.clone()]),
            Want::Forward(Some(1)),
        ),
        ("max_age: stale aal3 does not count", &aal3_5m, Some(vec![wa_old.clone()]), Want::StepUp),
        ("max_age: future auth_time counts as fresh", &aal2_5m, Some(vec![future.clone()]), Want::Forward(Some(0))),
        ("allow: wrong method", &aal2_totp, Some(vec![wa_new.clone(), rec.clone()]), Want::StepUp),
        ("allow: right method", &aal2_totp, Some(vec![wa_new.clone(), totp_fresh.clone()]), Want::Forward(Some(1))),
        ("allow webauthn at aal1: password not enough", &aal1_wa, Some(vec![pw.clone()]), Want::StepUp),
        (
            "strongest: highest level wins",
            &aal1,
            Some(vec![pw.clone(), wa_old.clone(), totp_fresh.clone()]),
            Want::Forward(Some(1)),
        ),
        ("strongest: most recent on a tie", &aal3, Some(vec![wa_old.clone(), wa_new.clone()]), Want::Forward(Some(1))),
        (
            "strongest: most recent on a tie, other order",
            &aal3,
            Some(vec![wa_new.clone(), wa_old.clone()]),
            Want::Forward(Some(0)),
        ),
        ("password recorded as aal3 counts as aal1 only", &aal3, Some(vec![inflated.clone()]), Want::StepUp),
        ("password recorded as aal3 still satisfies aal1", &aal1, Some(vec![inflated.clone()]), Want::Forward(Some(0))),
    ];
    assert!(rows.len() >= 15);
    for (name, action, proofs, want) in rows {
        let got = decide(action, proofs.as_deref(), NOW);
        let need = || match action {
            Action::Require(r) => r.clone(),
            Action::Deny => unreachable!(),
        };
        let expected = match want {
            Want::Forward(i) => Decision::Forward { proof: i.map(|i| proofs.as_ref().unwrap()[i].clone()) },
            Want::SignIn => Decision::SignIn { need: need() },
            Want::StepUp => Decision::StepUp { need: need(), cause: Cause::ProofTooWeak },
            Want::Deny => Decision::Deny { cause: Cause::RuleDenies },
        };
        assert_eq!(got, expected, "row: {name}");
    }
}

#[test]
fn risk_raises_the_level_shortens_max_age_and_denies() {
    use AuthMethod::*;
    use Level::{Aal1, Aal2, Aal3};
    let five = Duration::from_secs(300);
    let raise = RiskVerdict { raise: Some(Raise { level: true, max_age: five }), ..RiskVerdict::default() };
    let only_age = RiskVerdict { raise: Some(Raise { level: false, max_age: five }), ..RiskVerdict::default() };
    let deny = RiskVerdict { deny: true, ..RiskVerdict::default() };
    let distrust = RiskVerdict { distrust_elevation: true, ..RiskVerdict::default() };
    let calm = RiskVerdict::default();
    let pw = proof(Aal1, Password, 10);
    let totp_fresh = proof(Aal2, Totp, 60);
    let totp_old = proof(Aal2, Totp, 600);
    let wa = proof(Aal3, Webauthn, 30);
    let public = Action::Require(req(Level::None, None, None));
    let aal1 = Action::Require(req(Aal1, None, None));
    let aal2 = Action::Require(req(Aal2, None, None));
    let aal2_totp_only = Action::Require(req(Aal2, Some(3600), Some(&[Totp])));
    type Row<'a> = (&'a str, &'a Action, &'a RiskVerdict, Vec<Proof>, Option<Requirement>);
    let rows: Vec<Row> = vec![
        ("calm: aal1 with a password", &aal1, &calm, vec![pw.clone()], None),
        ("raised: aal1 becomes aal2 within 5m", &aal1, &raise, vec![pw.clone()], Some(req(Aal2, Some(300), None))),
        ("raised: a fresh TOTP passes the raised aal1", &aal1, &raise, vec![pw.clone(), totp_fresh.clone()], None),
        (
            "raised: an old TOTP does not",
            &aal1,
            &raise,
            vec![pw.clone(), totp_old.clone()],
            Some(req(Aal2, Some(300), None)),
        ),
        (
            "raised: aal2 becomes aal3",
            &aal2,
            &raise,
            vec![pw.clone(), totp_fresh.clone()],
            Some(req(Aal3, Some(300), None)),
        ),
        ("raised: aal3 by WebAuthn passes", &aal2, &raise, vec![pw.clone(), wa.clone()], None),
        (
            "raised: TOTP-only routes keep their level, max_age shortens",
            &aal2_totp_only,
            &raise,
            vec![pw.clone(), totp_old.clone()],
            Some(req(Aal2, Some(300), Some(&[Totp]))),
        ),
        ("max_age only: aal1 keeps its level", &aal1, &only_age, vec![pw.clone()], None),
        ("public routes stay public", &public, &raise, vec![], None),
        (
            "distrust: a TOTP proof from another context does not count",
            &aal2,
            &distrust,
            vec![pw.clone(), totp_fresh.clone()],
            Some(req(Aal2, None, None)),
        ),
        ("distrust: the sign-in still counts", &aal1, &distrust, vec![pw.clone(), totp_fresh.clone()], None),
    ];
    for (name, action, risk, proofs, want_stepup) in rows {
        let got = decide_with_risk(action, Some(&proofs), NOW, risk);
        match want_stepup {
            Some(need) => assert_eq!(got, Decision::StepUp { need, cause: Cause::RiskRaised }, "row: {name}"),
            None => assert!(matches!(got, Decision::Forward { .. }), "row: {name}: {got:?}"),
        }
    }
    assert_eq!(
        decide_with_risk(&aal1, Some(std::slice::from_ref(&pw)), NOW, &deny),
        Decision::Deny { cause: Cause::RiskTooHigh }
    );
    assert_eq!(decide_with_risk(&public, None, NOW, &deny), Decision::Deny { cause: Cause::RiskTooHigh });
    assert_eq!(decide_with_risk(&aal1, None, NOW, &raise), Decision::SignIn { need: req(Aal2, Some(300), None) });
}
