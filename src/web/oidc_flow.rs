//! The authorization-code flow: `start` sends the browser to the IdP (PKCE, `state`, `nonce`;
//! for a step-up also `acr_values` and `max_age`), `callback` takes it back, exchanges the
//! code, verifies the ID token and makes (or elevates) the session.
//!
//! The pending request is kept server-side under a hash of `state` and taken once (a replayed
//! `state` finds nothing); a cookie holding `state` binds it to the browser that started it.

use crate::audit::Kind;
use crate::metrics::labels::{SignInResult, StepUpResult};
use crate::oidc::token::{self, Proven};
use crate::oidc::{Discovered, Oidc};
use crate::pipeline::Ctx;
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::respond::error_page;
use crate::session::{cookies, IdpFacts};
use crate::web::pages::redirect;
use crate::web::{sessions, WebError, WebResult};
use http::{HeaderMap, StatusCode};
use openidconnect::core::{CoreAuthPrompt, CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// How long a browser may take at the IdP.
const PENDING_FOR: Duration = Duration::from_secs(600);

/// What `start` asked for, kept until the browser comes back.
#[derive(Serialize, Deserialize)]
struct Pending {
    nonce: String,
    verifier: String,
    return_to: String,
    /// Some: a step-up for this signed-in user to this level.
    step_up: Option<StepUp>,
}

#[derive(Serialize, Deserialize)]
struct StepUp {
    user: String,
    level: Level,
    max_age_secs: Option<u64>,
}

fn pending_key(state: &str) -> String {
    format!("oidc:state:{}", hex::encode(Sha256::digest(state.as_bytes())))
}

fn oidc_of(ctx: &Ctx) -> Result<Arc<Oidc>, WebError> {
    ctx.live.oidc.clone().ok_or(WebError::BadForm("sign-in at an identity provider is not configured"))
}

fn unavailable(ctx: &Ctx, e: &crate::oidc::OidcError) -> WebResult {
    tracing::warn!(request_id = %ctx.request_id, error = %e, "OIDC sign-in unavailable");
    Ok(error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in unavailable",
        "The identity provider cannot be reached right now. Please try again shortly.",
        ctx.reply(),
    ))
}

fn client(
    oidc: &Oidc,
    d: &Discovered,
    ctx: &Ctx,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    WebError,
> {
    let redirect = format!("{}{}", ctx.live.config.public.origin, oidc.cfg.redirect_path);
    let redirect = RedirectUrl::new(redirect).map_err(|e| WebError::Internal(format!("redirect URL: {e}")))?;
    Ok(CoreClient::from_provider_metadata(
        d.metadata.clone(),
        ClientId::new(oidc.cfg.client_id.clone()),
        oidc.cfg.client_secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(redirect))
}

/// What a step-up at the IdP must prove.
pub struct StepUpNeed<'a> {
    pub user: &'a str,
    pub level: Level,
    pub max_age: Option<Duration>,
}

/// Sends the browser to the IdP's authorization endpoint.
pub async fn start(ctx: &Ctx, return_to: &str, step_up: Option<StepUpNeed<'_>>) -> WebResult {
    let oidc = oidc_of(ctx)?;
    let d = match oidc.discovered().await {
        Ok(d) => d,
        Err(e) => return unavailable(ctx, &e),
    };
    let client = client(&oidc, &d, ctx)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge);
    for s in oidc.cfg.scopes.iter().filter(|s| *s != "openid") {
        req = req.add_scope(Scope::new(s.clone()));
    }
    if let Some(need) = &step_up {
        // Only values the IdP says it knows (when it says): others would be noise it ignores.
        let supported: Option<Vec<String>> =
            d.metadata.acr_values_supported().map(|v| v.iter().map(|a| a.to_string()).collect());
        let acrs = oidc.cfg.assurance.acr_values_for(need.level);
        let acrs = acrs.into_iter().filter(|a| supported.as_ref().is_none_or(|s| s.iter().any(|x| x == a)));
        for acr in acrs {
            req = req.add_auth_context_value(AuthenticationContextClass::new(acr.to_string()));
        }
        if let Some(max_age) = need.max_age {
            req = req.set_max_age(max_age);
            if max_age.is_zero() {
                req = req.add_prompt(CoreAuthPrompt::Login);
            }
        }
    }
    let (url, state, nonce) = req.url();
    let pending = Pending {
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        return_to: return_to.to_string(),
        step_up: step_up.map(|n| StepUp {
            user: n.user.to_string(),
            level: n.level,
            max_age_secs: n.max_age.map(|d| d.as_secs()),
        }),
    };
    let bytes = serde_json::to_vec(&pending).map_err(|e| WebError::Internal(e.to_string()))?;
    ctx.state.store.put_ephemeral(&pending_key(state.secret()), &bytes, ctx.now.plus(PENDING_FOR)).await?;
    let https = ctx.live.config.public.https;
    let cookie = cookies::set(cookies::OIDC_STATE, state.secret(), https, Some(PENDING_FOR.as_secs() as i64));
    Ok(redirect(url.as_str(), &[cookie]))
}

/// Why a callback was refused (audit reason; the page says less).
fn refuse(ctx: &Ctx, user: &str, step_up: bool, reason: &'static str) -> WebResult {
    tracing::info!(request_id = %ctx.request_id, reason, "OIDC callback refused");
    if step_up {
        ctx.state.metrics.step_up(AuthMethod::Idp, StepUpResult::Fail);
        crate::web::audit_user(ctx, Kind::StepUp, user, "fail", reason);
    } else {
        ctx.state.metrics.sign_in(SignInResult::Fail);
        crate::web::audit_user(ctx, Kind::SignIn, user, "fail", reason);
    }
    let clear = cookies::clear(cookies::OIDC_STATE, ctx.live.config.public.https);
    let mut resp = error_page(
        StatusCode::FORBIDDEN,
        "Sign-in refused",
        "The identity provider's answer could not be accepted. Go back and try again.",
        ctx.reply(),
    );
    resp.headers_mut().append(http::header::SET_COOKIE, clear);
    Ok(resp)
}

fn param(ctx: &Ctx, name: &str) -> Option<String> {
    crate::web::login::query_param(ctx, name)
}

/// The IdP's redirect back: `?code=…&state=…` (or `?error=…`).
pub async fn callback(ctx: &Ctx, headers: &HeaderMap) -> WebResult {
    let oidc = oidc_of(ctx)?;
    let https = ctx.live.config.public.https;
    let Some(state) = param(ctx, "state") else { return refuse(ctx, "", false, "oidc callback without state") };
    let bound = cookies::get(headers, cookies::OIDC_STATE, https);
    let same_browser =
        bound.as_deref().is_some_and(|b| subtle::ConstantTimeEq::ct_eq(b.as_bytes(), state.as_bytes()).into());
    if !same_browser {
        return refuse(ctx, "", false, "oidc state not bound to this browser");
    }
    let Some(bytes) = ctx.state.store.take_ephemeral(&pending_key(&state), ctx.now).await? else {
        return refuse(ctx, "", false, "oidc state unknown, expired or already used");
    };
    let pending: Pending = serde_json::from_slice(&bytes).map_err(|e| WebError::Internal(e.to_string()))?;
    let stepping = pending.step_up.is_some();
    let who = pending.step_up.as_ref().map(|s| s.user.as_str()).unwrap_or("");
    if param(ctx, "error").is_some() {
        return refuse(ctx, who, stepping, "the identity provider answered with an error");
    }
    let Some(code) = param(ctx, "code") else { return refuse(ctx, who, stepping, "oidc callback without code") };
    let d = match oidc.discovered().await {
        Ok(d) => d,
        Err(e) => return unavailable(ctx, &e),
    };
    let client = client(&oidc, &d, ctx)?;
    let exchange = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| WebError::Internal(format!("token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()));
    let tokens = match exchange.request_async(oidc.http()).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id, error = %crate::oidc::error_chain(&e), "OIDC code exchange failed");
            return refuse(ctx, who, stepping, "the code exchange failed");
        }
    };
    let Some(id_token) = tokens.id_token() else { return refuse(ctx, who, stepping, "no id_token in the answer") };
    let nonce = Nonce::new(pending.nonce.clone());
    let verified = {
        let first = id_token.claims(&client.id_token_verifier(), &nonce).map(|_| ());
        match first {
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) if oidc.refresh().await => {
                // A key we did not know: the IdP may have rotated its keys. Fetched again, once.
                let d = oidc.discovered().await.map_err(|e| WebError::Internal(e.to_string()))?;
                let fresh = self::client(&oidc, &d, ctx)?;
                let again = id_token.claims(&fresh.id_token_verifier(), &nonce).map(|_| ());
                again
            }
            other => other,
        }
    };
    if let Err(e) = verified {
        tracing::warn!(request_id = %ctx.request_id, error = %e, "ID token refused");
        return refuse(ctx, who, stepping, id_token_reason(&e));
    }
    let Some(claims) = token::verified_payload(&id_token.to_string()) else {
        return refuse(ctx, who, stepping, "id_token payload unreadable");
    };
    let proven = match token::proven(&oidc.cfg, &claims) {
        Ok(p) => p,
        Err(reason) => return refuse(ctx, who, stepping, reason),
    };
    finish(ctx, headers, pending, proven, id_token.to_string()).await
}

fn id_token_reason(e: &openidconnect::ClaimsVerificationError) -> &'static str {
    use openidconnect::ClaimsVerificationError as E;
    match e {
        E::Expired(_) => "id_token expired",
        E::InvalidAudience(_) => "id_token audience is not this gateway",
        E::InvalidIssuer(_) => "id_token issuer mismatch",
        E::InvalidNonce(_) => "id_token nonce mismatch",
        E::SignatureVerification(_) => "id_token signature invalid",
        _ => "id_token invalid",
    }
}

async fn finish(ctx: &Ctx, headers: &HeaderMap, pending: Pending, p: Proven, id_token: String) -> WebResult {
    let store = &*ctx.state.store;
    let cfg = &ctx.live.config;
    let previous = crate::pipeline::identify::load_session(store, cfg, headers, ctx.now).await?;
    let facts = IdpFacts {
        sub: p.sub.clone(),
        sid: p.sid.clone(),
        groups: p.groups.clone(),
        claims_json: serde_json::to_string(&p.claims).unwrap_or_default(),
        id_token: Some(id_token),
    };
    let proof = Proof { level: p.level, method: AuthMethod::Idp, auth_time: p.auth_time };
    let mut set = match &pending.step_up {
        Some(s) => {
            let max_age = s.max_age_secs.map(Duration::from_secs);
            let same = previous.as_ref().is_some_and(|(_, old)| {
                old.user == s.user && p.user == s.user && old.idp.as_ref().is_none_or(|i| i.sub == p.sub)
            });
            if !same {
                return refuse(ctx, &s.user, true, "the identity provider signed in another user");
            }
            if let Err(reason) = token::reaches(&p, s.level, max_age, ctx.now) {
                return refuse(ctx, &s.user, true, reason);
            }
            let set = sessions::elevate_with(ctx, &p.user, proof, previous, Some(facts)).await?;
            ctx.state.metrics.step_up(AuthMethod::Idp, StepUpResult::Success);
            crate::web::audit_user(ctx, Kind::StepUp, &p.user, "success", "idp");
            set
        }
        None => {
            // A fresh session: nothing of an earlier one carries over.
            if let Some((id, _)) = previous {
                store.delete_session(&id.key()).await?;
            }
            let set = sessions::elevate_with(ctx, &p.user, proof, None, Some(facts)).await?;
            ctx.state.metrics.sign_in(SignInResult::Success);
            crate::web::audit_user(ctx, Kind::SignIn, &p.user, "success", "idp");
            set
        }
    };
    set.push(cookies::clear(cookies::OIDC_STATE, cfg.public.https));
    Ok(redirect(&pending.return_to, &set))
}
