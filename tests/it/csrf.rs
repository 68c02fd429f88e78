//! CSRF: every state-changing form needs the token and, when sent, our Origin.

use crate::support::flows::{enroll_totp, signed_in};
use crate::support::{totp, Client, Harness, Resp, ORIGIN, PASSWORD, USER};
use http::StatusCode;

const EVIL_ORIGIN: (&str, &str) = ("origin", "http://evil.example");

/// The three ways a forged form arrives: no token, a wrong token, the right token from a foreign Origin.
async fn forged(c: &mut Client, action: &str, fields: &[(&str, &str)], token: &str) -> Vec<Resp> {
    let mut out = Vec::new();
    out.push(c.post_form(action, fields).await);
    let mut with_wrong = fields.to_vec();
    let wrong = "A".repeat(43);
    with_wrong.push(("csrf", &wrong));
    out.push(c.post_form(action, &with_wrong).await);
    let mut with_right = fields.to_vec();
    with_right.push(("csrf", token));
    out.push(c.post_form_with(action, &with_right, &[EVIL_ORIGIN]).await);
    out
}

fn assert_all_forbidden(what: &str, rs: &[Resp]) {
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what} forgery #{i}: {}", r.body);
        assert!(
            r.header("set-cookie").is_none_or(|c| !c.starts_with("stepgate_session=")),
            "{what} #{i} set a session"
        );
    }
}

#[tokio::test]
async fn forged_login_creates_no_session() {
    let h = Harness::start().await;
    let mut c = h.client();
    let token = c.csrf_token().await;
    let fields = [("username", USER), ("password", PASSWORD), ("return", "/")];
    assert_all_forbidden("login", &forged(&mut c, "/.stepgate/login", &fields, &token).await);
    assert!(c.session().is_none());
    // A token without the cookie it was made for is no good either.
    let mut stranger = h.client();
    let mut with_token = fields.to_vec();
    with_token.push(("csrf", &token));
    let r = stranger.post_form("/.stepgate/login", &with_token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(stranger.session().is_none());

    // The genuine form, with our own Origin, works.
    let r = c.post_form_with("/.stepgate/login", &with_token, &[("origin", ORIGIN)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(c.session().is_some());
}

#[tokio::test]
async fn forged_challenge_does_not_elevate_or_burn_the_code() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let enrolled = enroll_totp(&h, &mut c).await;
    let mut c = signed_in(&h).await;
    let session = c.session();
    let token = c.csrf_token().await;
    let code = totp::code(&enrolled.secret, h.now());
    let fields = [("code", code.as_str()), ("return", "/transfer")];
    assert_all_forbidden("challenge", &forged(&mut c, "/.stepgate/challenge/totp", &fields, &token).await);
    let recovery = [("code", enrolled.recovery[0].as_str()), ("return", "/transfer")];
    assert_all_forbidden("recovery", &forged(&mut c, "/.stepgate/challenge/recovery", &recovery, &token).await);
    assert_eq!(c.session(), session, "no elevation from a forged form");
    assert_eq!(c.browse("/transfer").await.status, StatusCode::FOUND, "still not elevated");

    // The refused forms used up nothing: the genuine form with the same code works.
    let mut genuine = fields.to_vec();
    genuine.push(("csrf", &token));
    let r = c.post_form("/.stepgate/challenge/totp", &genuine).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_ne!(c.session(), session);
}

#[tokio::test]
async fn forged_logout_keeps_the_session() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let token = c.csrf_token().await;
    assert_all_forbidden("logout", &forged(&mut c, "/.stepgate/logout", &[], &token).await);
    assert_eq!(c.get("/echo").await.status, StatusCode::OK, "still signed in");

    let mut old = c.clone();
    let r = c.post_form("/.stepgate/logout", &[("csrf", &token)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(c.session().is_none(), "the cookie is cleared");
    assert_eq!(old.get("/echo").await.status, StatusCode::UNAUTHORIZED, "the session is gone server-side too");
}
