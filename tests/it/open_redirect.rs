//! The `return` parameter never sends anyone off-site.

use crate::support::flows::{enroll_totp, signed_in, submit_totp};
use crate::support::{html, totp, Harness, PASSWORD, USER};
use http::StatusCode;
use std::time::Duration;

const EVIL: [&str; 8] = [
    "//evil.example",
    "/\\evil.example",
    "https://evil.example",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "javascript:alert(1)",
    "///evil.example",
    "\\\\evil.example",
];

#[tokio::test]
async fn sign_in_with_a_hostile_return_goes_home() {
    let h = Harness::start().await;
    for evil in EVIL {
        let mut c = h.client();
        let page = c.browse(&format!("/.stepgate/login?return={}", crate::support::client::enc(evil))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(html::input_value(&page.body, "return").as_deref(), Some("/"), "{evil:?} on the login page");
        // The form is posted with the hostile value, as an attacker's page would.
        let r = c.sign_in_returning(USER, PASSWORD, evil).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{evil:?}: {}", r.body);
        assert_eq!(r.location(), "/", "{evil:?} must not be followed");
    }
    // A local path is kept.
    let mut c = h.client();
    let r = c.sign_in_returning(USER, PASSWORD, "/transfer?x=1").await;
    assert_eq!(r.location(), "/transfer?x=1");
}

#[tokio::test]
async fn a_step_up_with_a_hostile_return_goes_home() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let enrolled = enroll_totp(&h, &mut c).await;
    for evil in ["//evil.example", "/\\evil.example", "https://evil.example", "/%2F%2Fevil.example"] {
        let mut c = signed_in(&h).await;
        let r = submit_totp(&mut c, evil, &totp::code(&enrolled.secret, h.now())).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{evil:?}: {}", r.body);
        assert_eq!(r.location(), "/", "{evil:?} must not be followed after a step-up");
        h.advance(Duration::from_secs(30)); // each code once
    }
}
