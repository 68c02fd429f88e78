//! Sign-in and step-up end to end through the front proxies: the browser only ever talks to
//! nginx or Caddy; stepgate's pages and cookies live on the app's domain.

use crate::forward_auth::{stack, Stack};
use crate::support::flows::{enroll_totp, submit_totp};
use crate::support::front::Kind;
use crate::support::{totp, DEMO_RULES, PASSWORD, USER};
use http::StatusCode;

/// What the app last received for `path`, header `name`.
fn app_saw(s: &Stack, path: &str, name: &str) -> Vec<String> {
    let seen = s.app.seen();
    let last = seen.iter().rev().find(|r| r.target.split('?').next() == Some(path));
    let last = last.unwrap_or_else(|| panic!("the app never saw {path}: {seen:?}"));
    last.header_values(name).into_iter().map(str::to_string).collect()
}

#[tokio::test]
async fn nginx_sign_in_then_totp_step_up_reaches_the_transfer() {
    let s = stack(Kind::Nginx, DEMO_RULES).await;
    // Alice enrolls TOTP once, through nginx like everything else.
    let mut setup = s.front.client();
    setup.sign_in().await;
    let enrolled = enroll_totp(&s.h, &mut setup).await;
    s.app.clear();

    let mut c = s.front.client();
    let r = c.browse("/transfer").await;
    assert_eq!(r.status, StatusCode::FOUND, "{}\n{}", r.body, s.front.log());
    assert_eq!(r.location(), "/.stepgate/login?return=%2Ftransfer");
    let r = c.sign_in_returning(USER, PASSWORD, "/transfer").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/transfer");

    let r = c.browse("/transfer").await;
    assert_eq!(r.status, StatusCode::FOUND, "aal1 is not enough: {}", r.body);
    assert_eq!(r.location(), "/.stepgate/challenge?return=%2Ftransfer");
    assert!(s.app.seen().is_empty(), "the app saw the transfer before the step-up: {:?}", s.app.seen());

    let code = totp::code(&enrolled.secret, s.h.now());
    let r = submit_totp(&mut c, "/transfer", &code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/transfer");

    let r = c.browse("/transfer").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Transfer money") && r.body.contains("<td>alice</td>"), "{}", r.body);
    assert_eq!(app_saw(&s, "/transfer", "x-stepgate-user"), ["alice"]);
    assert_eq!(app_saw(&s, "/transfer", "x-stepgate-level"), ["aal2"]);
    // Unlike proxy mode, the front proxy passes stepgate's cookies on to the app (README).
    assert!(app_saw(&s, "/transfer", "cookie").iter().any(|c| c.contains("stepgate_session")));
}

#[tokio::test]
async fn caddy_sign_in_reaches_an_aal1_route() {
    let s = stack(Kind::Caddy, DEMO_RULES).await;
    let mut c = s.front.client();
    let r = c.browse("/account").await;
    assert_eq!(r.status, StatusCode::FOUND, "{}\n{}", r.body, s.front.log());
    assert_eq!(r.location(), "/.stepgate/login?return=%2Faccount");
    let r = c.sign_in_returning(USER, PASSWORD, "/account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/account");

    // A spoofed identity rides along: the app still hears only stepgate.
    let r = c
        .request(
            http::Method::GET,
            "/account",
            &[("accept", "text/html"), ("X-Stepgate-User", "admin")],
            crate::support::client::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("<td>alice</td>"), "{}", r.body);
    assert_eq!(app_saw(&s, "/account", "x-stepgate-user"), ["alice"]);
    assert_eq!(app_saw(&s, "/account", "x-stepgate-level"), ["aal1"]);

    let r = c.browse("/transfer").await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.body);
    assert_eq!(r.location(), "/.stepgate/challenge?return=%2Ftransfer");
}
