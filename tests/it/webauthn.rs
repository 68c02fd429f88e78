//! WebAuthn with webauthn-authenticator-rs's SoftPasskey as the authenticator: registration,
//! step-up to aal3, a replayed assertion, a counter that goes backwards, a credential id that
//! another account already holds.

use crate::support::client::full;
use crate::support::{Client, Harness, Options, Resp};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url,
};

pub const PASSKEY_RULES: &str = r#"
[[rule]]
name = "admin"
path = "/admin/**"
require = "aal3"
max_age = "5m"
allow = ["webauthn"]

[[rule]]
name = "transfer"
path = "/transfer"
require = "aal2"
max_age = "5m"

[default]
require = "aal1"
"#;

/// Authenticators (and browsers) accept plain http only on localhost.
const PASSKEY_ORIGIN: &str = "http://localhost";

fn origin() -> Url {
    Url::parse(PASSKEY_ORIGIN).unwrap()
}

/// A POST of JSON with the page's CSRF token, as webauthn.js sends it.
async fn post_json(c: &mut Client, path: &str, csrf: &str, body: &Value) -> Resp {
    let headers = [("content-type", "application/json"), ("accept", "application/json"), ("x-csrf-token", csrf)];
    c.request(Method::POST, path, &headers, full(body.to_string())).await
}

async fn account_csrf(c: &mut Client) -> String {
    let page = c.browse("/.stepgate/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.csrf()
}

/// Registers a credential made by `key` for the client's user; returns what the key sent.
pub async fn register(c: &mut Client, key: &mut SoftPasskey, name: &str) -> RegisterPublicKeyCredential {
    let (done, credential) = try_register(c, key, name).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    credential
}

pub async fn try_register(c: &mut Client, key: &mut SoftPasskey, name: &str) -> (Resp, RegisterPublicKeyCredential) {
    let csrf = account_csrf(c).await;
    let start = post_json(c, "/.stepgate/webauthn/register/start", &csrf, &json!({})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.body);
    let start = start.json();
    let options: CreationChallengeResponse = serde_json::from_value(start["options"].clone()).unwrap();
    let credential = key.do_registration(origin(), options).expect("the soft passkey registers");
    let body = json!({"ceremony": start["ceremony"], "name": name, "credential": credential});
    (post_json(c, "/.stepgate/webauthn/register/finish", &csrf, &body).await, credential)
}

/// Starts an assertion for `return_to` and lets `key` answer it; returns the finish body.
async fn assertion(c: &mut Client, key: &mut SoftPasskey, return_to: &str) -> (String, Value) {
    let page = c.browse(&format!("/.stepgate/challenge?return={}", crate::support::client::enc(return_to))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"passkey-authenticate\""), "the page offers the passkey: {}", page.body);
    let csrf = data_csrf(&page.body);
    let start = post_json(c, "/.stepgate/webauthn/auth/start", &csrf, &json!({"return": return_to})).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.body);
    let start = start.json();
    let options: RequestChallengeResponse = serde_json::from_value(start["options"].clone()).unwrap();
    let credential: PublicKeyCredential = key.do_authentication(origin(), options).expect("the soft passkey signs");
    (csrf, json!({"ceremony": start["ceremony"], "return": return_to, "credential": credential}))
}

pub async fn step_up(c: &mut Client, key: &mut SoftPasskey, return_to: &str) -> Resp {
    let (csrf, body) = assertion(c, key, return_to).await;
    post_json(c, "/.stepgate/webauthn/auth/finish", &csrf, &body).await
}

async fn signed_in(h: &Harness) -> Client {
    let mut c = h.client();
    c.sign_in().await;
    c
}

fn passkey_rules() -> Options {
    Options { rules: PASSKEY_RULES.into(), public_url: Some(PASSKEY_ORIGIN.into()), ..Options::default() }
}

#[tokio::test]
async fn a_passkey_is_registered_and_steps_up_to_aal3() {
    let h = Harness::with(passkey_rules()).await;
    let mut c = signed_in(&h).await;
    let r = c.browse("/admin").await;
    assert_eq!(r.status, StatusCode::FOUND, "aal3 route, password only");
    let page = c.browse("/.stepgate/challenge?return=%2Fadmin").await;
    assert!(page.body.contains("needs a passkey"), "no passkey yet: {}", page.body);

    let mut key = SoftPasskey::new(true); // performs user verification
    let (done, _) = try_register(&mut c, &mut key, "laptop").await;
    assert_eq!(done.json()["redirect"], "/.stepgate/recovery-codes", "a first factor brings recovery codes");
    let codes = c.browse("/.stepgate/recovery-codes").await;
    assert_eq!(crate::support::html::codes(&codes.body, "recovery-code").len(), 10, "{}", codes.body);
    let again = c.browse("/.stepgate/recovery-codes").await;
    assert!(
        again.body.contains("already shown") && !again.body.contains("recovery-code"),
        "shown once: {}",
        again.body
    );
    let account = c.browse("/.stepgate/account").await;
    assert!(account.body.contains("<td>laptop</td>") && account.body.contains("never"), "{}", account.body);
    assert_eq!(c.browse("/admin").await.status, StatusCode::FOUND, "registering is not a proof");

    let done = step_up(&mut c, &mut key, "/admin").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.json()["level"], "aal3");
    assert_eq!(done.json()["redirect"], "/admin");
    let r = c.browse("/admin").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let echo = c.get("/echo").await.echoed_headers();
    assert_eq!(echo["x-stepgate-level"], "aal3");
    assert_eq!(echo["x-stepgate-methods"], "password,webauthn");
    let account = c.browse("/.stepgate/account").await;
    assert!(!account.body.contains("never"), "last used is shown: {}", account.body);
    // A passkey counts for aal2 routes as well.
    assert_eq!(c.browse("/transfer").await.status, StatusCode::OK);
}

#[tokio::test]
async fn user_verification_is_required_and_a_tampered_assertion_fails() {
    let h = Harness::with(passkey_rules()).await;
    let mut c = signed_in(&h).await;
    // The options ask for user verification: an authenticator that cannot do it refuses.
    let mut no_uv = SoftPasskey::new(false);
    let csrf = account_csrf(&mut c).await;
    let start = post_json(&mut c, "/.stepgate/webauthn/register/start", &csrf, &json!({})).await.json();
    assert_eq!(start["options"]["publicKey"]["authenticatorSelection"]["userVerification"], "required");
    let options: CreationChallengeResponse = serde_json::from_value(start["options"].clone()).unwrap();
    assert!(no_uv.do_registration(origin(), options).is_err());

    let mut key = SoftPasskey::new(true);
    register(&mut c, &mut key, "phone").await;
    let (csrf, mut body) = assertion(&mut c, &mut key, "/admin").await;
    // Clear the UV flag (bit 2) in authenticatorData: the signature then no longer matches.
    let auth_data = body["credential"]["response"]["authenticatorData"].as_str().unwrap().to_string();
    let mut bytes = base64_url(&auth_data);
    bytes[32] &= !0x04;
    body["credential"]["response"]["authenticatorData"] = json!(encode_url(&bytes));
    let r = post_json(&mut c, "/.stepgate/webauthn/auth/finish", &csrf, &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(c.browse("/admin").await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn a_finished_assertion_replayed_fails() {
    let h = Harness::with(passkey_rules()).await;
    let mut c = signed_in(&h).await;
    let mut key = SoftPasskey::new(true);
    register(&mut c, &mut key, "laptop").await;
    let (csrf, body) = assertion(&mut c, &mut key, "/admin").await;
    let first = post_json(&mut c, "/.stepgate/webauthn/auth/finish", &csrf, &body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    // An eavesdropper's copy, on another session of the same user.
    let mut other = signed_in(&h).await;
    let csrf2 = account_csrf(&mut other).await;
    let replay = post_json(&mut other, "/.stepgate/webauthn/auth/finish", &csrf2, &body).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.body);
    assert_eq!(other.browse("/admin").await.status, StatusCode::FOUND, "the replay elevated nothing");
    let again = post_json(&mut c, "/.stepgate/webauthn/auth/finish", &csrf, &body).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "the same session cannot reuse it either");
}

#[tokio::test]
async fn a_signature_counter_going_backwards_is_refused() {
    let h = Harness::with(passkey_rules()).await;
    let mut c = signed_in(&h).await;
    let mut key = SoftPasskey::new(true);
    register(&mut c, &mut key, "laptop").await;
    assert_eq!(step_up(&mut c, &mut key, "/admin").await.status, StatusCode::OK);
    // A clone of this authenticator has meanwhile been used 1000 times: the stored counter is
    // ahead of what the original now presents.
    let store = h.store.clone().unwrap();
    let mut factors = store.get_factors(crate::support::USER).await.unwrap();
    set_counters(&mut factors.webauthn[0].passkey, 1000);
    store.put_factors(crate::support::USER, &factors).await.unwrap();

    let mut c = signed_in(&h).await;
    let r = step_up(&mut c, &mut key, "/admin").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("cloned"), "{}", r.body);
    assert_eq!(c.browse("/admin").await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn a_credential_id_registered_to_another_user_is_refused() {
    let mut h = Harness::with(passkey_rules()).await;
    stepgate::authn::password::add_user(&h.dir.path().join("users.toml"), "mallory", "mallory's password").unwrap();
    h.restart().await;
    let mut alice = signed_in(&h).await;
    let mut key = SoftPasskey::new(true);
    let alices = register(&mut alice, &mut key, "laptop").await;

    // Mallory presents alice's credential (id and public key) in a "none" attestation, which
    // carries no signature: the ceremony itself verifies, the id is alice's.
    let mut mallory = h.client();
    let r = mallory.sign_in_returning("mallory", "mallory's password", "/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let csrf = account_csrf(&mut mallory).await;
    let start = post_json(&mut mallory, "/.stepgate/webauthn/register/start", &csrf, &json!({})).await.json();
    let challenge = start["options"]["publicKey"]["challenge"].as_str().unwrap().to_string();
    let mut forged = serde_json::to_value(&alices).unwrap();
    let client_data =
        json!({"type": "webauthn.create", "challenge": challenge, "origin": PASSKEY_ORIGIN, "crossOrigin": false});
    forged["response"]["clientDataJSON"] = json!(encode_url(client_data.to_string().as_bytes()));
    let att = forged["response"]["attestationObject"].as_str().unwrap().to_string();
    forged["response"]["attestationObject"] = json!(encode_url(&none_attestation(&base64_url(&att))));
    let body = json!({"ceremony": start["ceremony"], "name": "stolen", "credential": forged});
    let r = post_json(&mut mallory, "/.stepgate/webauthn/register/finish", &csrf, &body).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(h.store.as_ref().unwrap().get_factors("mallory").await.unwrap().webauthn.is_empty());
}

#[tokio::test]
async fn deleting_a_passkey_needs_a_fresh_proof_and_the_last_factor_stays() {
    let h = Harness::with(passkey_rules()).await;
    let mut c = signed_in(&h).await;
    let mut key = SoftPasskey::new(true);
    register(&mut c, &mut key, "laptop").await;
    let id = h.store.as_ref().unwrap().get_factors(crate::support::USER).await.unwrap().webauthn[0].id.clone();
    let csrf = account_csrf(&mut c).await;
    let r = c.post_form("/.stepgate/account/passkey/delete", &[("csrf", &csrf), ("id", &id)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/.stepgate/challenge"), "a fresh step-up first: {}", r.location());

    assert_eq!(step_up(&mut c, &mut key, "/.stepgate/account").await.status, StatusCode::OK);
    let csrf = account_csrf(&mut c).await;
    let r = c.post_form("/.stepgate/account/passkey/delete", &[("csrf", &csrf), ("id", &id)]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "the last second factor, while routes need one: {}", r.body);

    let mut second = SoftPasskey::new(true);
    register(&mut c, &mut second, "backup key").await;
    let csrf = account_csrf(&mut c).await;
    let r = c.post_form("/.stepgate/account/passkey/delete", &[("csrf", &csrf), ("id", &id)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/.stepgate/account");
    let left = h.store.as_ref().unwrap().get_factors(crate::support::USER).await.unwrap().webauthn;
    assert_eq!(left.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["backup key"]);
    // The removed key no longer passes.
    let mut c2 = signed_in(&h).await;
    let page = c2.browse("/.stepgate/challenge?return=%2Fadmin").await;
    let csrf = data_csrf(&page.body);
    let start = post_json(&mut c2, "/.stepgate/webauthn/auth/start", &csrf, &json!({"return": "/admin"})).await.json();
    let options: RequestChallengeResponse = serde_json::from_value(start["options"].clone()).unwrap();
    assert!(key.do_authentication(origin(), options).is_err(), "the removed key is not even asked");
}

/// The CSRF token the passkey button carries.
fn data_csrf(page: &str) -> String {
    let start = page.find("data-csrf=\"").expect("a data-csrf attribute") + "data-csrf=\"".len();
    page[start..].split('"').next().unwrap().to_string()
}

fn set_counters(v: &mut Value, to: u64) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "counter" {
                    *child = json!(to);
                } else {
                    set_counters(child, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| set_counters(i, to)),
        _ => {}
    }
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(s))
        .expect("base64")
}

fn encode_url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The same authenticator data in a "none" attestation statement.
fn none_attestation(packed: &[u8]) -> Vec<u8> {
    use serde_cbor_2::Value as Cbor;
    use std::collections::BTreeMap;
    let Cbor::Map(map) = serde_cbor_2::from_slice::<Cbor>(packed).expect("CBOR") else { panic!("not a map") };
    let auth_data = map.get(&Cbor::Text("authData".into())).cloned().expect("authData");
    let mut out = BTreeMap::new();
    out.insert(Cbor::Text("fmt".into()), Cbor::Text("none".into()));
    out.insert(Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new()));
    out.insert(Cbor::Text("authData".into()), auth_data);
    serde_cbor_2::to_vec(&Cbor::Map(out)).unwrap()
}

const BOUND_RULES: &str = r#"
[[rule]]
name = "pay"
path = "/echo/pay"
require = "aal2"
bind = "transaction"
confirm = "Transfer {amount} to {to}"

[default]
require = "aal1"
"#;

/// A JSON transfer kept by the gateway: its challenge id and the challenge page's path.
async fn kept_transfer(c: &mut Client, body: &str, extra: &[(&str, &str)]) -> (Resp, String, String) {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    let r = c.request(Method::POST, "/echo/pay", &headers, full(body.to_string())).await;
    if r.status != StatusCode::UNAUTHORIZED {
        return (r, String::new(), String::new());
    }
    let j = r.json();
    let id = j["challenge_id"].as_str().unwrap().to_string();
    let url = j["challenge_url"].as_str().unwrap().strip_prefix(PASSKEY_ORIGIN).unwrap().to_string();
    (r, id, url)
}

#[tokio::test]
async fn a_passkey_assertion_for_one_transaction_does_not_confirm_another() {
    let h = Harness::with(Options { rules: BOUND_RULES.into(), ..passkey_rules() }).await;
    let mut c = signed_in(&h).await;
    let mut key = SoftPasskey::new(true);
    register(&mut c, &mut key, "laptop").await;
    let (_, a, url_a) = kept_transfer(&mut c, r#"{"to":"bob","amount":10}"#, &[]).await;
    let (_, b, _) = kept_transfer(&mut c, r#"{"to":"eve","amount":1000}"#, &[]).await;

    // A ceremony started for transfer A, its assertion presented as confirming B: refused.
    let page = c.browse(&url_a).await;
    assert!(
        page.body.contains("Transfer 10 to bob") && page.body.contains(&format!("data-kept=\"{a}\"")),
        "{}",
        page.body
    );
    let csrf = data_csrf(&page.body);
    let start = |kept: &str| json!({"return": "/echo/pay", "kept": kept});
    let s = post_json(&mut c, "/.stepgate/webauthn/auth/start", &csrf, &start(&a)).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.body);
    let s = s.json();
    let options: RequestChallengeResponse = serde_json::from_value(s["options"].clone()).unwrap();
    let challenge_a = serde_json::to_value(&options.public_key.challenge).unwrap();
    let credential: PublicKeyCredential = key.do_authentication(origin(), options).unwrap();
    let body = json!({"ceremony": s["ceremony"], "return": "/echo/pay", "method": "POST", "kept": b, "credential": credential});
    let r = post_json(&mut c, "/.stepgate/webauthn/auth/finish", &csrf, &body).await;
    assert!(r.status.is_client_error(), "an assertion for A does not confirm B: {} {}", r.status, r.body);
    let (r, _, _) = kept_transfer(&mut c, r#"{"to":"eve","amount":1000}"#, &[("x-stepgate-confirmation", &b)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "B is not confirmed");

    // A fresh ceremony for A: a challenge of its own, bound to A, and it confirms A.
    let s = post_json(&mut c, "/.stepgate/webauthn/auth/start", &csrf, &start(&a)).await.json();
    let options: RequestChallengeResponse = serde_json::from_value(s["options"].clone()).unwrap();
    assert_ne!(serde_json::to_value(&options.public_key.challenge).unwrap(), challenge_a);
    let credential: PublicKeyCredential = key.do_authentication(origin(), options).unwrap();
    let body = json!({"ceremony": s["ceremony"], "return": "/echo/pay", "method": "POST", "kept": a, "credential": credential});
    let r = post_json(&mut c, "/.stepgate/webauthn/auth/finish", &csrf, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["redirect"], format!("/.stepgate/kept?id={a}"));
    let (r, _, _) = kept_transfer(&mut c, r#"{"to":"bob","amount":10}"#, &[("x-stepgate-confirmation", &a)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-stepgate-transaction"].as_str().unwrap_or("").len(), 64);
}
