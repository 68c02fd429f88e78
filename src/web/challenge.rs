//! The step-up challenge: a TOTP code or a recovery code, with a replay guard and a lockout.

use super::pages::{html, redirect, ChallengePage, Confirming};
use super::urls::{challenged_method, page_url, page_url_for, Need};
use super::{csrf, forms, login, return_to, sessions, WebError, WebResult};
use crate::audit::Kind;
use crate::authn::{recovery, totp};
use crate::body::Body;
use crate::pipeline::identify::{identify, Touch, Who};
use crate::pipeline::kept::{self, Kept};
use crate::pipeline::{evaluate, Ctx, Pass};
use crate::policy::decide::{decide_with_risk, raised, Decision};
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::policy::normalize::normalize_path;
use crate::policy::routes::{Action, Requirement};
use crate::risk::{Raise, RiskVerdict};
use crate::store::Factors;

pub use crate::pipeline::risk::failures_key;
use http::{HeaderMap, Method, Request, StatusCode};

/// The signed-in user for a gateway page, or None.
pub async fn who(ctx: &Ctx) -> Result<Option<Who>, WebError> {
    Ok(identify(ctx, Touch::Yes).await?)
}

/// The floor of every challenge: at least a second factor.
const AT_LEAST_AAL2: Requirement = Requirement { level: Level::Aal2, max_age: None, allow: None };

/// What the request the user was challenged on (`method` on `return_to`) asks for, without
/// risk: the gateway's own pages need a fresh second factor, anything else at least aal2.
pub fn requirement_for(ctx: &Ctx, method: &Method, return_to: &str) -> Requirement {
    let path = return_to.split('?').next().unwrap_or("/");
    let Ok(path) = normalize_path(path) else { return AT_LEAST_AAL2 };
    if crate::pipeline::is_gateway_path(path.as_str()) {
        // Changing factors needs a fresh step-up.
        return Requirement { level: Level::Aal2, max_age: Some(FACTOR_CHANGE_MAX_AGE), allow: None };
    }
    match &ctx.live.config.routes.classify_at(&ctx.host, &path, method, ctx.now).rule.action {
        Action::Require(r) if r.level >= Level::Aal2 => r.clone(),
        _ => AT_LEAST_AAL2,
    }
}

/// What the challenged request needs, evaluated through the one pipeline (as the gateway will
/// evaluate it when the user comes back, risk included, without counting it); and whether
/// proofs from another context count.
pub async fn requirement_with_risk(
    ctx: &Ctx,
    method: &Method,
    return_to: &str,
) -> Result<(Requirement, RiskVerdict), WebError> {
    let floor = requirement_for(ctx, method, return_to);
    let (path, query) = match return_to.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (return_to, None),
    };
    let Ok(path) = normalize_path(path) else { return Ok((floor, RiskVerdict::default())) };
    if crate::pipeline::is_gateway_path(path.as_str()) {
        return Ok((floor, RiskVerdict::default()));
    }
    let asked = ctx.for_request(method.clone(), path, query);
    let mut eval = evaluate(&asked, Pass::LookOnly).await;
    if let Some(e) = eval.store_error.take() {
        return Err(WebError::Store(e));
    }
    let verdict = eval.scored.verdict;
    let need = match (eval.need, verdict.raise) {
        (Some(need), _) if need.level >= Level::Aal2 => need,
        (_, Some(raise)) => raised(&floor, Raise { level: false, ..raise }),
        (_, None) => floor,
    };
    Ok((need, RiskVerdict { deny: false, raise: None, ..verdict }))
}

fn allowed(need: &Requirement, m: AuthMethod) -> bool {
    need.allow.as_ref().is_none_or(|a| a.contains(&m))
}

fn stepup_audit(ctx: &Ctx, kind: Kind, user: &str, decision: &'static str, reason: &'static str) {
    super::audit_user(ctx, kind, user, decision, reason);
}

/// How recent a proof must be to change factors.
pub const FACTOR_CHANGE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

const LOCKED: &str = "Too many wrong codes. For your safety, step-up is paused for a few minutes; try again later.";

pub async fn show(ctx: &Ctx, headers: &HeaderMap, error: Option<(&str, StatusCode)>) -> WebResult {
    let return_to = return_to::sanitize(&login::query_param(ctx, "return").unwrap_or_default());
    let method = challenged_method(&login::query_param(ctx, "method").unwrap_or_default());
    let kept = login::query_param(ctx, "kept").unwrap_or_default();
    render(ctx, headers, &Asked { method: &method, return_to: &return_to, kept: &kept }, error).await
}

/// The request the challenge is for: its method and URL, and the id of the kept request (empty: none).
struct Asked<'a> {
    method: &'a Method,
    return_to: &'a str,
    kept: &'a str,
}

/// The kept request `id`, if it is this user's and this session's (else the page ignores it).
pub async fn kept_of(ctx: &Ctx, who: &Who, id: &str) -> Result<Option<Kept>, WebError> {
    if id.is_empty() {
        return Ok(None);
    }
    let session = who.session.as_ref().map(|(sid, _)| sid.key());
    Ok(kept::peek(ctx, id).await?.filter(|k| k.user == who.user && Some(&k.session_key) == session.as_ref()))
}

/// Where the browser goes after the proof: the kept request's replay, or the page it asked for.
pub fn after_proof(return_to: &str, kept: Option<&str>) -> String {
    match kept {
        Some(id) => format!("{}?id={id}", kept::KEPT_PATH),
        None => return_to.to_string(),
    }
}

async fn render(ctx: &Ctx, headers: &HeaderMap, asked: &Asked<'_>, error: Option<(&str, StatusCode)>) -> WebResult {
    let (method, return_to) = (asked.method, asked.return_to);
    let Some(who) = who(ctx).await? else {
        let back = page_url_for(Need::StepUp, return_to, method);
        return Ok(redirect(&page_url(Need::SignIn, &back), &[]));
    };
    let (need, risk) = requirement_with_risk(ctx, method, return_to).await?;
    let kept = kept_of(ctx, &who, asked.kept).await?;
    // A bound transaction always needs its own proof, however fresh the session's is.
    if error.is_none()
        && !kept.as_ref().is_some_and(|k| k.bound)
        && matches!(
            decide_with_risk(&Action::Require(need.clone()), Some(&who.proofs), ctx.now, &risk),
            Decision::Forward { .. }
        )
    {
        return Ok(redirect(&after_proof(return_to, kept.as_ref().map(|_| asked.kept)), &[]));
    }
    let factors = ctx.state.store.get_factors(&who.user).await?;
    let locked =
        ctx.state.store.read_counter(&failures_key(&who.user), ctx.now).await? >= ctx.live.config.totp.max_failures;
    let (error, status) = match (error, locked) {
        (Some((e, s)), _) => (Some(e), s),
        (None, true) => (Some(LOCKED), StatusCode::TOO_MANY_REQUESTS),
        (None, false) => (None, StatusCode::OK),
    };
    let second_factor_ok = need.level <= Level::Aal2;
    let passkeys_ok = ctx.live.webauthn.is_some() && allowed(&need, AuthMethod::Webauthn);
    let offer_webauthn = passkeys_ok && !factors.webauthn.is_empty();
    let offer_idp = ctx.live.oidc.is_some() && allowed(&need, AuthMethod::Idp);
    let (token, set) = csrf::token(ctx, headers);
    ctx.state.metrics.challenge_shown();
    let page = ChallengePage {
        csrf: &token,
        return_to,
        method: method.as_str(),
        user: &who.user,
        level: need.level.as_str(),
        offer_totp: second_factor_ok && factors.totp.is_some() && allowed(&need, AuthMethod::Totp),
        offer_recovery: second_factor_ok && !factors.recovery_hashes.is_empty() && allowed(&need, AuthMethod::Recovery),
        no_factor: second_factor_ok && !offer_idp && !factors.has_second_factor(),
        needs_webauthn: !offer_webauthn
            && !offer_idp
            && (!second_factor_ok || !(allowed(&need, AuthMethod::Totp) || allowed(&need, AuthMethod::Recovery))),
        offer_webauthn,
        offer_idp,
        error,
        kept: if kept.is_some() { asked.kept } else { "" },
        confirming: kept.as_ref().map(|k| Confirming { text: k.confirmation.as_deref(), fields: &k.fields }),
        purpose: purpose(kept.as_ref(), method),
    };
    html(&page, status, set.as_slice())
}

/// What the proof is for, in plain words.
fn purpose(kept: Option<&Kept>, method: &Method) -> &'static str {
    match (kept, method) {
        (Some(k), _) if k.confirmation.is_some() => "to approve this",
        (Some(_), _) => "to send the form you filled in",
        (None, &Method::GET) => "to open this page",
        (None, _) => "to do this",
    }
}

/// Which code the user typed.
#[derive(Clone, Copy)]
enum CodeKind {
    Totp,
    Recovery,
}

pub async fn submit_totp(ctx: &Ctx, req: Request<Body>) -> WebResult {
    submit(ctx, req, CodeKind::Totp).await
}

pub async fn submit_recovery(ctx: &Ctx, req: Request<Body>) -> WebResult {
    submit(ctx, req, CodeKind::Recovery).await
}

async fn submit(ctx: &Ctx, req: Request<Body>, kind: CodeKind) -> WebResult {
    let (parts, body) = req.into_parts();
    let form = forms::read(body).await?;
    csrf::verify(ctx, &parts.headers, form.get("csrf"))?;
    let return_to = return_to::sanitize(form.get("return"));
    let challenged = challenged_method(form.get("method"));
    let kept_id = form.get("kept").to_string();
    let asked = Asked { method: &challenged, return_to: &return_to, kept: &kept_id };
    let Some(who) = who(ctx).await? else {
        return Ok(redirect(&page_url(Need::SignIn, &return_to), &[]));
    };
    let store = &*ctx.state.store;
    let cfg = &ctx.live.config;
    let fail_key = failures_key(&who.user);
    if store.read_counter(&fail_key, ctx.now).await? >= cfg.totp.max_failures {
        stepup_audit(ctx, Kind::Lockout, &who.user, "locked", "step-up locked after repeated failures");
        ctx.state.metrics.lockout();
        return render(ctx, &parts.headers, &asked, Some((LOCKED, StatusCode::TOO_MANY_REQUESTS))).await;
    }
    let (need, _) = requirement_with_risk(ctx, &challenged, &return_to).await?;
    let factors = store.get_factors(&who.user).await?;
    let method = match kind {
        CodeKind::Totp => AuthMethod::Totp,
        CodeKind::Recovery => AuthMethod::Recovery,
    };
    // The method must be allowed before a code is checked: a recovery code is used up by checking it.
    let verdict = if !allowed(&need, method) {
        Err("method not allowed for this route")
    } else {
        match kind {
            CodeKind::Totp => check_totp(ctx, &who.user, &factors, form.get("code")).await?,
            CodeKind::Recovery => check_recovery(ctx, &who.user, form.get("code")).await?,
        }
    };
    if let Err(reason) = verdict {
        let count = store.hit_counter(&fail_key, cfg.totp.failure_window, ctx.now).await?;
        stepup_audit(ctx, Kind::StepUp, &who.user, "fail", reason);
        ctx.state.metrics.step_up(method, crate::metrics::labels::StepUpResult::Fail);
        if count >= cfg.totp.max_failures {
            stepup_audit(ctx, Kind::Lockout, &who.user, "locked", "step-up locked after repeated failures");
            ctx.state.metrics.lockout();
            return render(ctx, &parts.headers, &asked, Some((LOCKED, StatusCode::TOO_MANY_REQUESTS))).await;
        }
        let msg = "That code is not valid. Check your app and try again.";
        return render(ctx, &parts.headers, &asked, Some((msg, StatusCode::UNAUTHORIZED))).await;
    }
    store.reset_counter(&fail_key).await?;
    let kept = kept_of(ctx, &who, &kept_id).await?;
    let proof = Proof { level: Level::Aal2, method, auth_time: ctx.now };
    let (cookies, new_key) = sessions::elevate_keyed(ctx, &who.user, proof.clone(), who.session, None).await?;
    stepup_audit(ctx, Kind::StepUp, &who.user, "success", method.as_str());
    ctx.state.metrics.step_up(method, crate::metrics::labels::StepUpResult::Success);
    let confirmed = confirm_kept(ctx, kept.as_ref(), &kept_id, &who.user, &new_key, &proof).await?;
    Ok(redirect(&after_proof(&return_to, confirmed.then_some(kept_id.as_str())), &cookies))
}

/// After a proof made on a page for a kept request: the request is confirmed by it and moves
/// to the new session. True if there was one. A proof confirms a kept request only if it
/// satisfies what the kept request itself needs (its method and path, not the page's `return`
/// and `method` fields, which the form sends): a TOTP code must not confirm a transfer whose
/// rule asks for a passkey.
pub async fn confirm_kept(
    ctx: &Ctx,
    kept: Option<&Kept>,
    id: &str,
    user: &str,
    new_session_key: &str,
    proof: &Proof,
) -> Result<bool, WebError> {
    let Some(k) = kept else { return Ok(false) };
    let method = Method::from_bytes(k.method.as_bytes()).unwrap_or(Method::POST);
    let (need, _) = requirement_with_risk(ctx, &method, &k.path_and_query).await?;
    if !crate::policy::decide::satisfies(proof, &need, ctx.now) {
        tracing::info!(request_id = %ctx.request_id, "a proof that does not satisfy the kept request's rule does not confirm it");
        return Ok(false);
    }
    if !kept::confirm(ctx, id, user, new_session_key).await? {
        return Ok(false);
    }
    if k.bound {
        crate::audit::emit_transaction(&crate::audit::Transaction {
            request_id: &ctx.request_id,
            user,
            client_ip: ctx.client_ip,
            rule: "-",
            decision: "confirmed",
            reason: "proof_for_transaction",
            method: &k.method,
            host: &k.host,
            path: &k.path_and_query,
            digest: &k.digest,
            confirmation: k.confirmation.as_deref(),
        });
    }
    Ok(true)
}

/// Checks a TOTP code and claims its time step: a step is accepted once, never an older one.
pub async fn check_totp(
    ctx: &Ctx,
    user: &str,
    factors: &Factors,
    code: &str,
) -> Result<Result<(), &'static str>, WebError> {
    let Some(t) = &factors.totp else { return Ok(Err("no authenticator app enrolled")) };
    let secret = ctx
        .live
        .secretbox
        .open(&t.sealed_secret)
        .ok_or_else(|| WebError::Internal("a TOTP secret cannot be opened: was the secret key changed?".into()))?;
    let Some(step) = totp::check_code(&secret, code, ctx.now) else { return Ok(Err("wrong totp code")) };
    if !ctx.state.store.raise_high_water(&format!("totp:{user}"), step).await? {
        return Ok(Err("totp code already used"));
    }
    Ok(Ok(()))
}

async fn check_recovery(ctx: &Ctx, user: &str, code: &str) -> Result<Result<(), &'static str>, WebError> {
    let normalized = recovery::normalize(code);
    if normalized.is_empty() {
        return Ok(Err("empty recovery code"));
    }
    let hash = recovery::hash(&ctx.live.secretbox, &normalized);
    if ctx.state.store.take_recovery_code(user, &hash).await? {
        Ok(Ok(()))
    } else {
        Ok(Err("unknown or used recovery code"))
    }
}

/// "Continue at your identity provider" (a link, GET: the page's CSP `form-action 'self'`
/// would stop a form's redirect to the IdP; the `state` cookie binds the round trip): a step-up at the IdP for what the challenged request
/// needs (`acr_values` from its level, `max_age` from its rule). The proof counts only if what
/// comes back reaches it (see `oidc::flow::callback`).
pub async fn submit_idp(ctx: &Ctx, headers: &HeaderMap) -> WebResult {
    let return_to = return_to::sanitize(&login::query_param(ctx, "return").unwrap_or_default());
    let challenged = challenged_method(&login::query_param(ctx, "method").unwrap_or_default());
    let Some(who) = who(ctx).await? else {
        return Ok(redirect(&page_url(Need::SignIn, &return_to), &[]));
    };
    let (need, _) = requirement_with_risk(ctx, &challenged, &return_to).await?;
    if !allowed(&need, AuthMethod::Idp) {
        stepup_audit(ctx, Kind::StepUp, &who.user, "fail", "method not allowed for this route");
        let msg = "This action cannot be confirmed at your identity provider.";
        let asked = Asked { method: &challenged, return_to: &return_to, kept: "" };
        return render(ctx, headers, &asked, Some((msg, StatusCode::FORBIDDEN))).await;
    }
    let step_up = crate::web::oidc_flow::StepUpNeed { user: &who.user, level: need.level, max_age: need.max_age };
    crate::web::oidc_flow::start(ctx, &return_to, Some(step_up)).await
}
