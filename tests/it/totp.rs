//! TOTP: enrollment, step-up on an aal2 route, replay guard, lockout, recovery codes.

use crate::support::flows::{enroll_totp, signed_in, submit_recovery, submit_totp};
use crate::support::{html, totp, Harness, USER};
use http::StatusCode;
use std::time::Duration;

const TRANSFER: &[(&str, &str)] = &[("to", "bob"), ("amount", "10")];

#[tokio::test]
async fn enroll_then_step_up_reaches_the_protected_post() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let before = c.session().unwrap();
    let enrolled = enroll_totp(&h, &mut c).await;
    let mut unique = enrolled.recovery.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "ten different recovery codes");
    assert_ne!(c.session().unwrap(), before, "enrolling elevates under a new session id");

    // A new sign-in is aal1 only: the transfer asks for a step-up.
    let mut c = signed_in(&h).await;
    let r = c.browse("/transfer").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.location(), "/.stepgate/challenge?return=%2Ftransfer");
    let r = c.post_form("/transfer", TRANSFER).await;
    // A browser form is kept and sent to the challenge (not forwarded before the step-up).
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().contains("&kept="), "{}", r.location());
    assert!(!r.body.contains("Transferred"));

    let aal1 = c.session().unwrap();
    let code = totp::code(&enrolled.secret, h.now());
    let r = submit_totp(&mut c, "/transfer", &code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/transfer");
    let elevated = c.session().unwrap();
    assert_ne!(elevated, aal1, "the session id changes on elevation");

    let r = c.post_form("/transfer", TRANSFER).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Transferred 10 to bob"), "{}", r.body);
    let r = c.get("/echo").await.echoed_headers();
    assert_eq!(r["x-stepgate-level"], "aal2");
    assert_eq!(r["x-stepgate-methods"], "password,totp");

    // The aal1 session id that was replaced is gone.
    let mut old = c.clone();
    old.jar.insert("stepgate_session".into(), aal1);
    assert_eq!(old.get("/echo").await.status, StatusCode::UNAUTHORIZED);

    // The same code, from a new session, is refused: a time step is accepted once.
    let mut other = signed_in(&h).await;
    let r = submit_totp(&mut other, "/transfer", &code).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a replayed code must be refused: {}", r.body);
    assert!(r.body.contains("not valid"), "{}", r.body);
    let r = other.post_form("/transfer", TRANSFER).await;
    // A browser form is kept and sent to the challenge (not forwarded before the step-up).
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().contains("&kept="), "{}", r.location());

    // The next time step's code works.
    h.advance(Duration::from_secs(30));
    let r = submit_totp(&mut other, "/transfer", &totp::code(&enrolled.secret, h.now())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[tokio::test]
async fn five_wrong_codes_lock_step_up_even_for_a_right_code() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let enrolled = enroll_totp(&h, &mut c).await;
    let mut c = signed_in(&h).await;
    let wrong = totp::wrong_code(&enrolled.secret, h.now());
    for i in 1..=4 {
        let r = submit_totp(&mut c, "/transfer", &wrong).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "wrong code {i}: {}", r.body);
    }
    let r = submit_totp(&mut c, "/transfer", &wrong).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the fifth wrong code locks: {}", r.body);
    assert!(r.body.contains("Too many wrong codes"), "{}", r.body);

    let right = totp::code(&enrolled.secret, h.now());
    let session = c.session();
    let r = submit_totp(&mut c, "/transfer", &right).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "a right code is refused while locked: {}", r.body);
    assert!(r.body.contains("Too many wrong codes"));
    assert_eq!(c.session(), session, "no elevation while locked");
    let r = c.post_form("/transfer", TRANSFER).await;
    // A browser form is kept and sent to the challenge (not forwarded before the step-up).
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().contains("&kept="), "{}", r.location());
    // A recovery code is refused too: the lock is on step-up, not on one method.
    let r = submit_recovery(&mut c, "/transfer", &enrolled.recovery[0]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

    // Once the failure window (totp.failure_window = 5m) has passed, a right code works again.
    h.advance(Duration::from_secs(5 * 60 + 30));
    let r = submit_totp(&mut c, "/transfer", &totp::code(&enrolled.secret, h.now())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(c.post_form("/transfer", TRANSFER).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let enrolled = enroll_totp(&h, &mut c).await;

    let mut c = signed_in(&h).await;
    let before = c.session();
    let r = submit_recovery(&mut c, "/transfer", &enrolled.recovery[3]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/transfer");
    assert_ne!(c.session(), before);
    let r = c.post_form("/transfer", TRANSFER).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Transferred 10 to bob"));
    assert_eq!(c.get("/echo").await.echoed_headers()["x-stepgate-methods"], "password,recovery");

    let mut again = signed_in(&h).await;
    let r = submit_recovery(&mut again, "/transfer", &enrolled.recovery[3]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a used recovery code is refused: {}", r.body);
    let r = again.post_form("/transfer", TRANSFER).await;
    // A browser form is kept and sent to the challenge (not forwarded before the step-up).
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().contains("&kept="), "{}", r.location());
    // Another, unused, code still works.
    let r = submit_recovery(&mut again, "/transfer", &enrolled.recovery[4]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[tokio::test]
async fn replacing_the_authenticator_needs_a_fresh_step_up() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let enrolled = enroll_totp(&h, &mut c).await;
    // A password-only session may not swap the factor (an attacker with the password can't either).
    let mut c = signed_in(&h).await;
    let r = c.browse("/.stepgate/enroll/totp?return=%2F").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/.stepgate/challenge?return=%2F.stepgate%2Fenroll%2Ftotp");
    assert!(!r.body.contains("class=\"secret\""));
    let token = c.csrf_token().await;
    let r = c.post_form("/.stepgate/enroll/totp", &[("csrf", &token), ("code", "123456"), ("return", "/")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with("/.stepgate/challenge"));

    // After a step-up, the enrolment page shows a new key.
    let r = submit_totp(&mut c, "/.stepgate/enroll/totp", &totp::code(&enrolled.secret, h.now())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/.stepgate/enroll/totp");
    let page = c.browse("/.stepgate/enroll/totp?return=%2F").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let new_secret = crate::support::html::codes(&page.body, "secret");
    assert_eq!(new_secret.len(), 1);
    assert_ne!(new_secret[0], enrolled.secret, "a new key for the new authenticator");
}

#[tokio::test]
async fn refreshing_the_recovery_codes_page_never_changes_a_factor() {
    let h = Harness::start().await;
    let store = h.store.clone().unwrap();
    let mut c = signed_in(&h).await;
    let page = c.browse("/.stepgate/enroll/totp?return=%2Ftransfer").await;
    let secret = html::codes(&page.body, "secret").into_iter().next().expect("the page shows the key");
    let (csrf, code) = (page.csrf(), totp::code(&secret, h.now()));
    let form = [("csrf", csrf.as_str()), ("code", code.as_str()), ("return", "/transfer")];
    let done = c.post_form("/.stepgate/enroll/totp", &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "POST-redirect-GET: {}", done.body);
    assert_eq!(done.location(), "/.stepgate/recovery-codes");
    assert!(!done.body.contains("recovery-code"), "the POST's answer holds no codes");
    let shown = c.browse("/.stepgate/recovery-codes").await;
    assert_eq!(shown.status, StatusCode::OK);
    let codes = html::codes(&shown.body, "recovery-code");
    assert_eq!(codes.len(), 10, "{}", shown.body);
    assert!(shown.body.contains(r#"href="/transfer""#), "continues where the user was going: {}", shown.body);
    let enrolled = store.get_factors(USER).await.unwrap();

    // Refresh: the GET again says they were shown, and shows no codes (nor a new key).
    let again = c.browse("/.stepgate/recovery-codes").await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("already shown") && !again.body.contains("recovery-code"), "{}", again.body);
    assert!(!again.body.contains("class=\"secret\""), "{}", again.body);
    // The old form sent again (back, then "resend"): no factor changes either.
    let resent = c.post_form("/.stepgate/enroll/totp", &form).await;
    assert_ne!(resent.status, StatusCode::SEE_OTHER, "{}", resent.body);
    assert_eq!(store.get_factors(USER).await.unwrap(), enrolled, "the factor and the codes are unchanged");
    // Another browser of the same user, without the cookie, sees no codes.
    let mut other = signed_in(&h).await;
    assert!(!other.browse("/.stepgate/recovery-codes").await.body.contains("recovery-code"));

    // The codes written down still work, and so does the authenticator.
    h.advance(Duration::from_secs(30));
    let r = submit_recovery(&mut other, "/transfer", &codes[0]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "a code from the page works: {}", r.body);
    let mut third = signed_in(&h).await;
    let r = submit_totp(&mut third, "/transfer", &totp::code(&secret, h.now())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the enrolled key still works: {}", r.body);
}
