//! The WebAuthn endpoints that `static/webauthn.js` calls: start and finish a registration,
//! start and finish a step-up assertion. JSON in and out; each POST carries the CSRF token in
//! `X-CSRF-Token` (and a foreign Origin is refused), like every form of the gateway.

use super::challenge::{failures_key, requirement_with_risk, who};
use super::enroll::needs_fresh_proof;
use super::{csrf, forms, new_codes, return_to, sessions, WebError, WebResult};
use crate::audit::Kind;
use crate::authn::webauthn::{self as wa, CeremonyError};
use crate::body::{self, Body};
use crate::pipeline::Ctx;
use crate::policy::level::{AuthMethod, Proof};
use crate::respond::{page_headers, refusal};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

const CSRF_HEADER: &str = "x-csrf-token";
const MAX_NAME: usize = 64;

fn reply(status: StatusCode, value: serde_json::Value, cookies: &[HeaderValue]) -> Response<Body> {
    let mut resp = Response::new(body::full(value.to_string()));
    *resp.status_mut() = status;
    page_headers(resp.headers_mut());
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for c in cookies {
        resp.headers_mut().append(http::header::SET_COOKIE, c.clone());
    }
    resp
}

/// A refusal in the one JSON shape (`error`, `error_description`, `request_id`), plus `extra`.
fn refusal_json(ctx: &Ctx, status: StatusCode, message: &str, extra: serde_json::Value) -> Response<Body> {
    let extra = match extra {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    refusal(status, message, message, crate::respond::Reply { json: true, ..ctx.reply() }, extra)
}

fn refuse(ctx: &Ctx, status: StatusCode, message: &str) -> WebResult {
    Ok(refusal_json(ctx, status, message, json!({})))
}

fn audit_event(ctx: &Ctx, kind: Kind, user: &str, decision: &'static str, reason: &'static str) {
    super::audit_user(ctx, kind, user, decision, reason);
}

/// The checks every endpoint starts with: WebAuthn on, the CSRF header, a signed-in user.
async fn begin<T: serde::de::DeserializeOwned>(
    ctx: &Ctx,
    req: Request<Body>,
) -> Result<Result<(HeaderMap, crate::pipeline::identify::Who, T), Response<Body>>, WebError> {
    if ctx.live.webauthn.is_none() {
        return Ok(Err(refusal_json(
            ctx,
            StatusCode::NOT_FOUND,
            "passkeys are not enabled on this gateway",
            json!({}),
        )));
    }
    let (parts, body) = req.into_parts();
    let token = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    csrf::verify(ctx, &parts.headers, token)?;
    let input: T = forms::read_json(body).await?;
    let Some(who) = who(ctx).await? else {
        return Ok(Err(refusal_json(ctx, StatusCode::UNAUTHORIZED, "sign in first", json!({}))));
    };
    Ok(Ok((parts.headers, who, input)))
}

fn ceremony_refusal(ctx: &Ctx, user: &str, e: CeremonyError) -> WebResult {
    match e {
        CeremonyError::Store(s) => Err(WebError::Store(s)),
        CeremonyError::Internal(msg) => Err(WebError::Internal(msg)),
        CeremonyError::CounterRegression => {
            audit_event(ctx, Kind::PossibleClone, user, "fail", "signature counter went backwards");
            refuse(ctx, StatusCode::FORBIDDEN, &e.to_string())
        }
        CeremonyError::CredentialTaken => {
            audit_event(ctx, Kind::Enroll, user, "fail", "credential id registered to another user");
            refuse(ctx, StatusCode::CONFLICT, &e.to_string())
        }
        CeremonyError::NoCeremony | CeremonyError::Rejected(_) => {
            tracing::info!(request_id = %ctx.request_id, user, error = %e, "webauthn ceremony refused");
            refuse(ctx, StatusCode::BAD_REQUEST, "the passkey could not be verified, or the attempt expired; try again")
        }
    }
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn register_start(ctx: &Ctx, req: Request<Body>) -> WebResult {
    let (_, who, Empty {}) = match begin(ctx, req).await? {
        Ok(v) => v,
        Err(resp) => return Ok(resp),
    };
    let store = &*ctx.state.store;
    let factors = store.get_factors(&who.user).await?;
    if let Some(url) = needs_fresh_proof(ctx, &who, &factors) {
        return Ok(refusal_json(ctx, StatusCode::FORBIDDEN, "confirm it's you first", json!({"redirect": url})));
    }
    let Some(webauthn) = ctx.live.webauthn.as_deref() else { return refuse(ctx, StatusCode::NOT_FOUND, "off") };
    match wa::start_registration(webauthn, store, &who.user, &factors.webauthn, ctx.now).await {
        Ok((ceremony, options)) => Ok(reply(StatusCode::OK, json!({"ceremony": ceremony, "options": options}), &[])),
        Err(e) => ceremony_refusal(ctx, &who.user, e),
    }
}

#[derive(Deserialize)]
pub struct RegisterFinish {
    ceremony: String,
    name: String,
    credential: RegisterPublicKeyCredential,
}

pub async fn register_finish(ctx: &Ctx, req: Request<Body>) -> WebResult {
    let (_, who, input): (_, _, RegisterFinish) = match begin(ctx, req).await? {
        Ok(v) => v,
        Err(resp) => return Ok(resp),
    };
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return refuse(ctx, StatusCode::BAD_REQUEST, "give the passkey a name of 1 to 64 characters");
    }
    let store = &*ctx.state.store;
    let mut factors = store.get_factors(&who.user).await?;
    if let Some(url) = needs_fresh_proof(ctx, &who, &factors) {
        return Ok(refusal_json(ctx, StatusCode::FORBIDDEN, "confirm it's you first", json!({"redirect": url})));
    }
    let Some(webauthn) = ctx.live.webauthn.as_deref() else { return refuse(ctx, StatusCode::NOT_FOUND, "off") };
    let cred =
        match wa::finish_registration(webauthn, store, &who.user, &input.ceremony, &input.credential, name, ctx.now)
            .await
        {
            Ok(c) => c,
            Err(e) => return ceremony_refusal(ctx, &who.user, e),
        };
    factors.webauthn.retain(|c| c.id != cred.id);
    factors.webauthn.push(cred);
    // A user without recovery codes gets them now, shown once on the next page (new_codes).
    let fresh_codes = factors.recovery_hashes.is_empty().then(crate::authn::recovery::generate);
    if let Some(codes) = &fresh_codes {
        factors.recovery_hashes = codes.iter().map(|c| crate::authn::recovery::hash(&ctx.live.secretbox, c)).collect();
    }
    store.put_factors(&who.user, &factors).await?;
    audit_event(ctx, Kind::Enroll, &who.user, "success", "webauthn");
    let (redirect, cookies) = match fresh_codes {
        Some(codes) => (new_codes::PAGE, vec![new_codes::keep(ctx, &who.user, &codes, "/.stepgate/account").await?]),
        None => ("/.stepgate/account", vec![]),
    };
    Ok(reply(StatusCode::OK, json!({"ok": true, "redirect": redirect}), &cookies))
}

#[derive(Deserialize)]
pub struct AuthStart {
    #[serde(rename = "return")]
    return_to: String,
    /// The kept request to confirm: the challenge is derived from its digest.
    #[serde(default)]
    kept: String,
}

pub async fn auth_start(ctx: &Ctx, req: Request<Body>) -> WebResult {
    let (_, who, input): (_, _, AuthStart) = match begin(ctx, req).await? {
        Ok(v) => v,
        Err(resp) => return Ok(resp),
    };
    let _ = return_to::sanitize(&input.return_to);
    let store = &*ctx.state.store;
    let factors = store.get_factors(&who.user).await?;
    let Some(webauthn) = ctx.live.webauthn.as_deref() else { return refuse(ctx, StatusCode::NOT_FOUND, "off") };
    let kept = crate::web::challenge::kept_of(ctx, &who, &input.kept).await?;
    let tx = kept.as_ref().map(|k| k.digest.as_str());
    match wa::start_authentication(webauthn, store, &who.user, &factors.webauthn, ctx.now, tx).await {
        Ok((ceremony, options)) => Ok(reply(StatusCode::OK, json!({"ceremony": ceremony, "options": options}), &[])),
        Err(e) => ceremony_refusal(ctx, &who.user, e),
    }
}

#[derive(Deserialize)]
pub struct AuthFinish {
    ceremony: String,
    credential: PublicKeyCredential,
    #[serde(rename = "return")]
    return_to: String,
    /// The method of the challenged request (see `challenge::requirement_for`); GET if absent.
    #[serde(default)]
    method: String,
    /// The kept request the proof is for (`pipeline::kept`); empty: none.
    #[serde(default)]
    kept: String,
}

pub async fn auth_finish(ctx: &Ctx, req: Request<Body>) -> WebResult {
    let (_, who, input): (_, _, AuthFinish) = match begin(ctx, req).await? {
        Ok(v) => v,
        Err(resp) => return Ok(resp),
    };
    let return_to = return_to::sanitize(&input.return_to);
    let store = &*ctx.state.store;
    let cfg = &ctx.live.config;
    let fail_key = failures_key(&who.user);
    if store.read_counter(&fail_key, ctx.now).await? >= cfg.totp.max_failures {
        audit_event(ctx, Kind::Lockout, &who.user, "locked", "step-up locked after repeated failures");
        ctx.state.metrics.lockout();
        return refuse(ctx, StatusCode::TOO_MANY_REQUESTS, "too many failed attempts; try again in a few minutes");
    }
    let method = crate::web::urls::challenged_method(&input.method);
    let (need, _) = requirement_with_risk(ctx, &method, &return_to).await?;
    if need.allow.as_ref().is_some_and(|a| !a.contains(&AuthMethod::Webauthn)) {
        return refuse(ctx, StatusCode::FORBIDDEN, "this page does not accept a passkey");
    }
    let mut factors = store.get_factors(&who.user).await?;
    let Some(webauthn) = ctx.live.webauthn.as_deref() else { return refuse(ctx, StatusCode::NOT_FOUND, "off") };
    let kept = crate::web::challenge::kept_of(ctx, &who, &input.kept).await?;
    let asserted = match wa::finish_authentication(
        webauthn,
        store,
        &who.user,
        wa::Presented {
            ceremony: &input.ceremony,
            response: &input.credential,
            transaction: kept.as_ref().map(|k| k.digest.as_str()),
        },
        &mut factors.webauthn,
        ctx.now,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            if !matches!(e, CeremonyError::Store(_) | CeremonyError::Internal(_)) {
                store.hit_counter(&fail_key, cfg.totp.failure_window, ctx.now).await?;
                audit_event(ctx, Kind::StepUp, &who.user, "fail", "webauthn assertion refused");
                ctx.state.metrics.step_up(AuthMethod::Webauthn, crate::metrics::labels::StepUpResult::Fail);
            }
            return ceremony_refusal(ctx, &who.user, e);
        }
    };
    store.put_factors(&who.user, &factors).await?;
    store.reset_counter(&fail_key).await?;
    let proof = Proof { level: asserted.level, method: AuthMethod::Webauthn, auth_time: ctx.now };
    let (cookies, new_key) = sessions::elevate_keyed(ctx, &who.user, proof.clone(), who.session, None).await?;
    let reason = if asserted.level >= crate::policy::level::Level::Aal3 { "webauthn aal3" } else { "webauthn aal2" };
    audit_event(ctx, Kind::StepUp, &who.user, "success", reason);
    ctx.state.metrics.step_up(AuthMethod::Webauthn, crate::metrics::labels::StepUpResult::Success);
    let confirmed =
        crate::web::challenge::confirm_kept(ctx, kept.as_ref(), &input.kept, &who.user, &new_key, &proof).await?;
    let redirect = crate::web::challenge::after_proof(&return_to, confirmed.then_some(input.kept.as_str()));
    Ok(reply(StatusCode::OK, json!({"ok": true, "level": asserted.level.as_str(), "redirect": redirect}), &cookies))
}
