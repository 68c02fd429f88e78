//! TOTP enrollment: a QR code (inline SVG), the key and the otpauth:// URI, confirmed by a
//! valid code; then a 303 to the ten recovery codes, shown once (see `new_codes`), so a refresh
//! never posts the enrollment again. Replacing a factor needs a fresh step-up.

use super::challenge::{requirement_for, who};
use super::pages::{html, redirect, EnrollTotpPage};
use super::{csrf, forms, new_codes, return_to, sessions, WebError, WebResult};
use crate::audit::Kind;
use crate::authn::{recovery, totp};
use crate::body::Body;
use crate::pipeline::identify::Who;
use crate::pipeline::Ctx;
use crate::policy::decide::{decide, Decision};
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::policy::routes::Action;
use crate::store::{Factors, TotpFactor};
use crate::web::urls::{page_url, Need};
use http::{HeaderMap, Request, StatusCode};
use std::time::Duration;

pub const PAGE: &str = "/.stepgate/enroll/totp";
const PENDING_TTL: Duration = Duration::from_secs(600);

fn pending_key(user: &str) -> String {
    format!("enroll-totp:{user}")
}

/// None when the user may change factors now; otherwise where to send them first.
pub fn needs_fresh_proof(ctx: &Ctx, who: &Who, factors: &Factors) -> Option<String> {
    if !factors.has_second_factor() {
        return None; // the first factor may be enrolled right after sign-in
    }
    let need = requirement_for(ctx, &http::Method::GET, PAGE);
    match decide(&Action::Require(need), Some(&who.proofs), ctx.now) {
        Decision::Forward { .. } => None,
        _ => Some(page_url(Need::StepUp, PAGE)),
    }
}

pub async fn show(ctx: &Ctx, headers: &HeaderMap) -> WebResult {
    let return_to = return_to::sanitize(&super::login::query_param(ctx, "return").unwrap_or_default());
    render(ctx, headers, &return_to, None).await
}

async fn render(ctx: &Ctx, headers: &HeaderMap, return_to: &str, error: Option<&str>) -> WebResult {
    let Some(who) = who(ctx).await? else {
        return Ok(redirect(&page_url(Need::SignIn, PAGE), &[]));
    };
    let store = &*ctx.state.store;
    let factors = store.get_factors(&who.user).await?;
    if let Some(url) = needs_fresh_proof(ctx, &who, &factors) {
        return Ok(redirect(&url, &[]));
    }
    let key = pending_key(&who.user);
    let secret = match store
        .get_ephemeral(&key, ctx.now)
        .await?
        .and_then(|s| ctx.live.secretbox.open(&String::from_utf8_lossy(&s)))
    {
        Some(secret) => secret,
        None => {
            let secret = totp::new_secret();
            let sealed = ctx.live.secretbox.seal(&secret);
            store.put_ephemeral(&key, sealed.as_bytes(), ctx.now.plus(PENDING_TTL)).await?;
            secret
        }
    };
    let uri = totp::otpauth_uri(&secret, &ctx.live.config.totp.issuer, &who.user);
    let svg = totp::qr_svg(&uri).map_err(|e| WebError::Internal(e.to_string()))?;
    let (token, set) = csrf::token(ctx, headers);
    let page = EnrollTotpPage {
        csrf: &token,
        return_to,
        qr_svg: &svg,
        secret: &totp::secret_base32(&secret),
        uri: &uri,
        error,
        replacing: factors.totp.is_some(),
    };
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    html(&page, status, set.as_slice())
}

pub async fn submit(ctx: &Ctx, req: Request<Body>) -> WebResult {
    let (parts, body) = req.into_parts();
    let form = forms::read(body).await?;
    csrf::verify(ctx, &parts.headers, form.get("csrf"))?;
    let return_to = return_to::sanitize(form.get("return"));
    let Some(who) = who(ctx).await? else {
        return Ok(redirect(&page_url(Need::SignIn, PAGE), &[]));
    };
    let store = &*ctx.state.store;
    let mut factors = store.get_factors(&who.user).await?;
    if let Some(url) = needs_fresh_proof(ctx, &who, &factors) {
        return Ok(redirect(&url, &[]));
    }
    let key = pending_key(&who.user);
    let Some(sealed) = store.get_ephemeral(&key, ctx.now).await? else {
        return render(ctx, &parts.headers, &return_to, Some("The setup expired. Scan the new code and try again."))
            .await;
    };
    let sealed = String::from_utf8_lossy(&sealed).into_owned();
    let secret =
        ctx.live.secretbox.open(&sealed).ok_or_else(|| WebError::Internal("pending secret unreadable".into()))?;
    let Some(step) = totp::check_code(&secret, form.get("code"), ctx.now) else {
        enroll_audit(ctx, &who.user, "fail", "wrong confirmation code");
        return render(
            ctx,
            &parts.headers,
            &return_to,
            Some("That code is not valid. Check the time on your device and try again."),
        )
        .await;
    };
    // The confirming code is used up too: it cannot step up again.
    if !store.raise_high_water(&format!("totp:{}", who.user), step).await? {
        return render(ctx, &parts.headers, &return_to, Some("That code was already used; wait for the next one."))
            .await;
    }
    let codes = recovery::generate();
    factors.totp = Some(TotpFactor { sealed_secret: sealed, enrolled_at: ctx.now });
    factors.recovery_hashes = codes.iter().map(|c| recovery::hash(&ctx.live.secretbox, c)).collect();
    store.put_factors(&who.user, &factors).await?;
    store.take_ephemeral(&key, ctx.now).await?;
    enroll_audit(ctx, &who.user, "success", "totp");
    let proof = Proof { level: Level::Aal2, method: AuthMethod::Totp, auth_time: ctx.now };
    let mut cookies = sessions::elevate(ctx, &who.user, proof, who.session).await?;
    cookies.push(new_codes::keep(ctx, &who.user, &codes, &return_to).await?);
    Ok(redirect(new_codes::PAGE, &cookies))
}

fn enroll_audit(ctx: &Ctx, user: &str, decision: &'static str, reason: &'static str) {
    super::audit_user(ctx, Kind::Enroll, user, decision, reason);
}
