//! RFC 9470 step-up challenges for API clients; redirects for browser navigations.

use crate::support::flows::signed_in;
use crate::support::{client::full, Harness, ORIGIN};
use http::{Method, StatusCode};

#[tokio::test]
async fn api_client_gets_401_with_the_rfc_9470_challenge() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let r = c
        .request(
            Method::POST,
            "/transfer",
            &[("accept", "application/json"), ("content-type", "application/x-www-form-urlencoded")],
            full("to=bob&amount=10"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            r#"Bearer error="insufficient_user_authentication", error_description="a stronger or more recent proof is required", acr_values="aal2", max_age=300"#
        )
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["error"], "insufficient_user_authentication");
    assert_eq!(v["required_level"], "aal2");
    assert_eq!(v["max_age"], 300);
    // The POST is kept: the challenge is for it, and the client retries with its id.
    let id = v["challenge_id"].as_str().expect("a challenge_id for the kept request");
    assert_eq!(v["challenge_url"], format!("{ORIGIN}/.stepgate/challenge?return=%2Ftransfer&method=POST&kept={id}"));
}

#[tokio::test]
async fn browser_navigation_is_redirected_to_the_challenge_page() {
    let h = Harness::start().await;
    let mut c = signed_in(&h).await;
    let r = c.get_with("/transfer", &[("accept", "text/html")]).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.location(), "/.stepgate/challenge?return=%2Ftransfer");
    assert!(!r.body.contains("Transfer money"));

    // Anonymous: to the login page; API: 401 pointing at it.
    let mut anon = h.client();
    let r = anon.get_with("/transfer?x=1", &[("accept", "text/html")]).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.location(), "/.stepgate/login?return=%2Ftransfer%3Fx%3D1");
    let r = anon.get_with("/account", &[("accept", "application/json")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="http://stepgate.test""#));
    assert_eq!(r.json()["challenge_url"], format!("{ORIGIN}/.stepgate/login?return=%2Faccount"));
}

/// A rule for one method only: the challenge page must work out the requirement of the
/// request that was challenged (a POST), not of a GET to the same path.
#[tokio::test]
async fn the_challenge_page_uses_the_method_that_was_challenged() {
    let rules = "[[rule]]\nname = \"wire\"\npath = \"/echo/wire\"\nmethods = [\"POST\", \"DELETE\"]\nrequire = \"aal3\"\nmax_age = \"5m\"\n\n[default]\nrequire = \"aal1\"\n";
    let h = Harness::with(crate::support::Options { rules: rules.into(), ..Default::default() }).await;
    let mut c = signed_in(&h).await;
    for method in [Method::POST, Method::DELETE] {
        let r = c.request(method.clone(), "/echo/wire", &[("accept", "application/json")], full("x=1")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method}: {}", r.body);
        let url = r.json()["challenge_url"].as_str().unwrap().to_string();
        assert!(url.contains(&format!("&method={method}&kept=")), "the kept {method}: {url}");
        let page = c.browse(url.strip_prefix(ORIGIN).unwrap()).await;
        assert_eq!(page.status, StatusCode::OK, "{method}: the challenge page for the {method}: {}", page.body);
        assert!(page.body.contains("data-level=\"aal3\""), "{method}: {}", page.body);
    }
    // The same page for a GET (which the rule does not cover) asks only the floor of a challenge.
    let page = c.browse("/.stepgate/challenge?return=%2Fecho%2Fwire").await;
    assert!(page.body.contains("data-level=\"aal2\""), "{}", page.body);
    // An unknown method parameter counts as GET, never as something stronger or weaker.
    let page = c.browse("/.stepgate/challenge?return=%2Fecho%2Fwire&method=PSOT").await;
    assert!(page.body.contains("data-level=\"aal2\""), "{}", page.body);
}
