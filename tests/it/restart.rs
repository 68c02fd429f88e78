//! Sessions and factors live in the store file and survive a restart.

use crate::support::flows::{enroll_totp, signed_in, submit_totp};
use crate::support::{totp, Harness, USER};
use http::StatusCode;

#[tokio::test]
async fn sessions_and_totp_survive_a_restart() {
    let mut h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let enrolled = enroll_totp(&h, &mut c).await;
    // A fresh sign-in, elevated with a code on the challenge page.
    let mut c = signed_in(&h).await;
    let r = submit_totp(&mut c, "/transfer", &totp::code(&enrolled.secret, h.now())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(c.browse("/transfer").await.status, StatusCode::OK);
    let mut plain = signed_in(&h).await;
    let old_addr = h.addr;

    h.restart().await;
    assert_ne!(h.addr, old_addr, "a new gateway on a new ephemeral port");
    let mut c = c.to(h.addr);
    let r = c.browse("/account").await;
    assert_eq!(r.status, StatusCode::OK, "the old session cookie still works: {}", r.body);
    assert!(r.body.contains(USER), "{}", r.body);
    let r = c.browse("/.stepgate/account").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Set up.") && r.body.contains("10 left"), "{}", r.body);
    assert_eq!(c.get("/echo").await.echoed_headers()["x-stepgate-level"], "aal2", "the elevation survived too");

    // A session without elevation: the challenge offers the code form, not enrollment.
    plain = plain.to(h.addr);
    let page = plain.browse("/.stepgate/challenge?return=%2Ftransfer").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("action=\"/.stepgate/challenge/totp\""), "{}", page.body);
    assert!(!page.body.contains("You have no second factor yet"), "{}", page.body);
    h.advance(std::time::Duration::from_secs(30));
    let r = submit_totp(&mut plain, "/transfer", &totp::code(&enrolled.secret, h.now())).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the TOTP secret still opens after a restart: {}", r.body);
}
