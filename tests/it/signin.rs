//! Sign-in with the built-in users file: wrong and right passwords, fresh session ids, limits.

use crate::support::{Harness, Options, PASSWORD, USER};
use http::StatusCode;

#[tokio::test]
async fn wrong_password_is_refused_and_right_one_makes_a_session() {
    let h = Harness::start().await;
    let mut c = h.client();
    let r = c.sign_in_returning(USER, "not the password", "/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("Wrong user name or password"), "{}", r.body);
    assert!(c.session().is_none(), "no session after a wrong password");
    let r = c.sign_in_returning("nobody", PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(c.session().is_none());

    let r = c.sign_in_returning(USER, PASSWORD, "/account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/account");
    let cookie = r.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("stepgate_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let r = c.get("/echo").await;
    assert_eq!(r.echoed_headers()["x-stepgate-user"], USER);
}

#[tokio::test]
async fn every_sign_in_gets_a_new_session_id_and_the_old_one_dies() {
    let h = Harness::start().await;
    let mut c = h.client();
    c.sign_in().await;
    let first = c.session().unwrap();
    let old = c.clone();
    c.sign_in().await;
    let second = c.session().unwrap();
    assert_ne!(first, second, "the session id changes on each sign-in");
    assert_eq!(c.get("/echo").await.status, StatusCode::OK);
    let mut old = old;
    let r = old.get("/echo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the replaced session no longer works: {}", r.body);
}

#[tokio::test]
async fn after_too_many_failures_even_the_right_password_is_refused() {
    let h = Harness::with(Options {
        extra: "[signin]\nmax_failures_per_user = 3\nwindow = \"15m\"\n".into(),
        ..Options::default()
    })
    .await;
    let mut c = h.client();
    for i in 0..3 {
        let r = c.sign_in_returning(USER, "wrong password", "/").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = c.sign_in_returning(USER, PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("Too many failed sign-ins"), "{}", r.body);
    assert!(c.session().is_none(), "no session while locked");
    // The limit is per user: the name in another case is the same user.
    let r = c.sign_in_returning(&USER.to_uppercase(), PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

    // When the window has passed, the right password works again.
    h.advance(std::time::Duration::from_secs(16 * 60));
    let r = c.sign_in_returning(USER, PASSWORD, "/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}
