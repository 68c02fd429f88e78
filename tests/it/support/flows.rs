//! Multi-step flows shared by several tests: TOTP enrollment, step-up.

use super::{html, totp, Client, Harness, Resp};
use http::StatusCode;
use std::time::Duration;

/// What enrollment hands back.
pub struct Enrolled {
    pub secret: String,
    pub recovery: Vec<String>,
}

/// Enrolls TOTP for the signed-in `client` with a code from oathtool at the harness's time,
/// follows the 303 to the recovery codes page and asserts the ten codes, then moves the clock on by one TOTP step so the next code
/// is a fresh one (the enrolling code's step is used up).
pub async fn enroll_totp(h: &Harness, client: &mut Client) -> Enrolled {
    let page = client.browse("/.stepgate/enroll/totp?return=%2F").await;
    assert_eq!(page.status, StatusCode::OK, "enroll page: {}", page.body);
    let secret = html::codes(&page.body, "secret").into_iter().next().expect("the page shows the key");
    assert!(secret.len() >= 16 && secret.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    let code = totp::code(&secret, h.now());
    let csrf = page.csrf();
    let done = client.post_form("/.stepgate/enroll/totp", &[("csrf", &csrf), ("code", &code), ("return", "/")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "enrollment refused: {}", done.body);
    assert_eq!(done.location(), "/.stepgate/recovery-codes");
    let done = client.browse(done.location()).await;
    let recovery = html::codes(&done.body, "recovery-code");
    assert_eq!(recovery.len(), 10, "ten recovery codes: {}", done.body);
    h.advance(Duration::from_secs(30));
    Enrolled { secret, recovery }
}

/// The challenge page for `return_to`, then a TOTP code posted to it.
pub async fn submit_totp(client: &mut Client, return_to: &str, code: &str) -> Resp {
    submit(client, "/.stepgate/challenge/totp", return_to, code).await
}

pub async fn submit_recovery(client: &mut Client, return_to: &str, code: &str) -> Resp {
    submit(client, "/.stepgate/challenge/recovery", return_to, code).await
}

async fn submit(client: &mut Client, action: &str, return_to: &str, code: &str) -> Resp {
    let page = client.browse(&format!("/.stepgate/challenge?return={}", super::client::enc(return_to))).await;
    assert!(
        page.status == StatusCode::OK || page.status == StatusCode::TOO_MANY_REQUESTS,
        "challenge page: {} {}",
        page.status,
        page.body
    );
    let csrf = page.csrf();
    client.post_form(action, &[("csrf", &csrf), ("code", code), ("return", return_to)]).await
}

/// A fresh session (aal1 only) for the test user on `h`.
pub async fn signed_in(h: &Harness) -> Client {
    let mut c = h.client();
    c.sign_in().await;
    c
}
