//! The account security page: who you are, your level, your factors, sign-out.

use super::challenge::who;
use super::pages::{html, redirect, AccountPage, PasskeyRow};
use super::{csrf, WebResult};
use crate::pipeline::Ctx;
use crate::policy::decide::effective_level;
use crate::web::urls::{page_url, Need};
use http::{HeaderMap, StatusCode};

pub async fn show(ctx: &Ctx, headers: &HeaderMap) -> WebResult {
    let Some(who) = who(ctx).await? else {
        return Ok(redirect(&page_url(Need::SignIn, "/.stepgate/account"), &[]));
    };
    let factors = ctx.state.store.get_factors(&who.user).await?;
    let level = who.proofs.iter().map(effective_level).max().map(|l| l.as_str()).unwrap_or("none");
    let methods: Vec<&str> = who.proofs.iter().map(|p| plain_name(p.method)).collect();
    let devices = match &ctx.live.config.risk.device {
        Some(_) => {
            let history = ctx.state.store.get_risk_history(&who.user).await?;
            Some(history.devices.iter().map(|d| (date(d.first_seen), date(d.last_seen))).collect())
        }
        None => None,
    };
    let (token, set) = csrf::token(ctx, headers);
    let page = AccountPage {
        csrf: &token,
        user: &who.user,
        level,
        methods: &methods.join(", "),
        totp: factors.totp.is_some(),
        recovery_left: factors.recovery_hashes.len(),
        passkeys: factors
            .webauthn
            .iter()
            .map(|c| PasskeyRow {
                id: c.id.clone(),
                name: c.name.clone(),
                created: date(c.created_at),
                last_used: c.last_used.map_or_else(|| "never".to_string(), date),
            })
            .collect(),
        webauthn_enabled: ctx.live.webauthn.is_some(),
        devices,
    };
    let mut resp = html(&page, StatusCode::OK, set.as_slice())?;
    // The sign-out form's answer may be a redirect to the IdP's end-session endpoint, which
    // browsers check against form-action.
    let idp_origin = ctx.live.oidc.as_ref().and_then(|o| o.current()).and_then(|d| d.end_session_endpoint.clone());
    if let Some(csp) = idp_origin.as_deref().and_then(crate::respond::csp_with_form_action) {
        resp.headers_mut().insert(http::header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok(resp)
}

/// A date for people, in UTC.
fn date(t: crate::clock::UnixTime) -> String {
    chrono::DateTime::from_timestamp(t.0 as i64, 0)
        .map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// A proof method in the words users know.
fn plain_name(m: crate::policy::level::AuthMethod) -> &'static str {
    use crate::policy::level::AuthMethod as M;
    match m {
        M::Password => "password",
        M::Totp => "authenticator app",
        M::Recovery => "recovery code",
        M::Webauthn => "passkey",
        other => other.as_str(),
    }
}
