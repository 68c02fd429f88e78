//! A rule's `max_age`: a step-up counts for that long, then the gateway asks again.

use crate::support::flows::{enroll_totp, signed_in, submit_totp};
use crate::support::{totp, Harness};
use http::StatusCode;
use std::time::Duration;

#[tokio::test]
async fn elevation_expires_after_max_age() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let enrolled = enroll_totp(&h, &mut c).await;
    let mut c = signed_in(&h).await;
    let r = submit_totp(&mut c, "/transfer", &totp::code(&enrolled.secret, h.now())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    let r = c.browse("/transfer").await;
    assert_eq!(r.status, StatusCode::OK, "just elevated");
    assert!(r.body.contains("Transfer money"));

    h.advance(Duration::from_secs(4 * 60));
    let r = c.browse("/transfer").await;
    assert_eq!(r.status, StatusCode::OK, "4 minutes after elevation, within max_age = 5m: {}", r.body);
    assert!(r.body.contains("Transfer money"));

    h.advance(Duration::from_secs(2 * 60));
    let r = c.browse("/transfer").await;
    assert_eq!(r.status, StatusCode::FOUND, "6 minutes after elevation: challenged again");
    assert_eq!(r.location(), "/.stepgate/challenge?return=%2Ftransfer");
    // Still signed in, though: aal1 routes are forwarded.
    assert_eq!(c.get("/echo").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_elevation_gets_the_rfc_9470_challenge_again() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    enroll_totp(&h, &mut c).await; // elevates this session at the enrolment time
    let api = [("accept", "application/json")];
    let r = c.get_with("/transfer", &api).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    h.advance(Duration::from_secs(5 * 60));
    let r = c.get_with("/transfer", &api).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.header("www-authenticate").unwrap_or("").contains("max_age=300"));
    assert_eq!(r.json()["error"], "insufficient_user_authentication");
}

#[tokio::test]
async fn an_idle_session_ends_and_an_active_one_lives_on() {
    let h = Harness::start().await; // sessions.idle_timeout defaults to 30m
    let mut active = signed_in(&h).await;
    let mut idle = signed_in(&h).await;
    for _ in 0..3 {
        h.advance(Duration::from_secs(20 * 60));
        assert_eq!(active.get("/echo").await.status, StatusCode::OK, "each request keeps the session alive");
    }
    let r = idle.get("/echo").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "60 minutes idle: signed out: {}", r.body);
    h.advance(Duration::from_secs(31 * 60));
    assert_eq!(active.get("/echo").await.status, StatusCode::UNAUTHORIZED, "31 minutes idle: signed out");
}
