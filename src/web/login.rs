//! Sign-in (built-in users file) and sign-out, with attempts limited per user and per IP.

use super::pages::{html, redirect, LoginPage, MessagePage};
use super::{csrf, forms, return_to, sessions, WebError, WebResult};
use crate::audit::{self, Kind};
use crate::body::Body;
use crate::metrics::labels::SignInResult;
use crate::pipeline::identify::load_session;
use crate::pipeline::Ctx;
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::session::cookies;
use http::{HeaderMap, Request, StatusCode};

/// The value of one query parameter of the current request.
pub fn query_param(ctx: &Ctx, name: &str) -> Option<String> {
    let q = ctx.query.as_deref()?;
    form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

pub async fn show(ctx: &Ctx, headers: &HeaderMap, error: Option<(&str, StatusCode, &str)>) -> WebResult {
    if ctx.live.oidc.is_some() {
        let return_to = return_to::sanitize(&query_param(ctx, "return").unwrap_or_default());
        return crate::web::oidc_flow::start(ctx, &return_to, None).await;
    }
    if !ctx.live.config.identity_is_builtin() {
        return Err(WebError::BadForm("sign-in happens at the identity proxy in front of this gateway"));
    }
    let return_to = return_to::sanitize(&query_param(ctx, "return").unwrap_or_default());
    let (token, set) = csrf::token(ctx, headers);
    let (error, status, username) = match error {
        Some((e, s, u)) => (Some(e), s, u),
        None => (None, StatusCode::OK, ""),
    };
    let page = LoginPage { csrf: &token, return_to: &return_to, error, username };
    html(&page, status, set.as_slice())
}

/// The audit record and the sign-in metric of one attempt.
fn signin_audit(ctx: &Ctx, user: &str, result: SignInResult, reason: &'static str) {
    ctx.state.metrics.sign_in(result);
    super::audit_user(ctx, Kind::SignIn, user, result.as_str(), reason);
}

/// The counter of failed sign-ins of one user name (case-insensitive), which locks it out.
pub fn signin_failures_key(user: &str) -> String {
    format!("signin:user:{}", user.to_ascii_lowercase())
}

pub async fn submit(ctx: &Ctx, req: Request<Body>) -> WebResult {
    let (parts, body) = req.into_parts();
    let form = forms::read(body).await?;
    csrf::verify(ctx, &parts.headers, form.get("csrf"))?;
    let Some(users) =
        ctx.live.users.as_ref().filter(|_| ctx.live.config.identity_is_builtin()).and_then(|w| w.current())
    else {
        return Err(WebError::BadForm("built-in sign-in is not configured"));
    };
    let user = form.get("username").trim();
    let return_to = return_to::sanitize(form.get("return"));
    let cfg = &ctx.live.config;
    let store = &*ctx.state.store;
    let user_key = signin_failures_key(user);
    let ip_key = format!("signin:ip:{}", ctx.client_ip);
    let (by_user, by_ip) = (store.read_counter(&user_key, ctx.now).await?, store.read_counter(&ip_key, ctx.now).await?);
    if by_user >= cfg.signin.max_failures_per_user || by_ip >= cfg.signin.max_failures_per_ip {
        signin_audit(ctx, user, SignInResult::Locked, "too many failed sign-ins");
        let msg = "Too many failed sign-ins. Wait a few minutes and try again.";
        return show_with_return(ctx, &parts.headers, &return_to, msg, StatusCode::TOO_MANY_REQUESTS, user).await;
    }
    if user.is_empty() || !users.verify(user, form.get("password")) {
        store.hit_counter(&user_key, cfg.signin.window, ctx.now).await?;
        store.hit_counter(&ip_key, cfg.signin.window, ctx.now).await?;
        signin_audit(ctx, user, SignInResult::Fail, "wrong user name or password");
        let msg = "Wrong user name or password.";
        return show_with_return(ctx, &parts.headers, &return_to, msg, StatusCode::UNAUTHORIZED, user).await;
    }
    store.reset_counter(&user_key).await?;
    // A fresh session: no proof of an earlier session (or another user) carries over.
    let previous = load_session(store, cfg, &parts.headers, ctx.now).await?;
    if let Some((id, _)) = previous {
        store.delete_session(&id.key()).await?;
    }
    let proof = Proof { level: Level::Aal1, method: AuthMethod::Password, auth_time: ctx.now };
    let cookies = sessions::elevate(ctx, user, proof, None).await?;
    signin_audit(ctx, user, SignInResult::Success, "password");
    Ok(redirect(&return_to, &cookies))
}

async fn show_with_return(
    ctx: &Ctx,
    headers: &HeaderMap,
    return_to: &str,
    msg: &str,
    status: StatusCode,
    user: &str,
) -> WebResult {
    let (token, set) = csrf::token(ctx, headers);
    let page = LoginPage { csrf: &token, return_to, error: Some(msg), username: user };
    html(&page, status, set.as_slice())
}

pub async fn logout(ctx: &Ctx, req: Request<Body>) -> WebResult {
    let (parts, body) = req.into_parts();
    let form = forms::read(body).await?;
    csrf::verify(ctx, &parts.headers, form.get("csrf"))?;
    let cfg = &ctx.live.config;
    let mut at_idp = None;
    if let Some((id, s)) = load_session(&*ctx.state.store, cfg, &parts.headers, ctx.now).await? {
        ctx.state.store.delete_session(&id.key()).await?;
        at_idp = super::oidc_logout::continue_at_idp(ctx, &s).await;
        audit::emit(&audit::Record {
            workload: None,
            client: None,
            kind: Kind::SignOut,
            request_id: &ctx.request_id,
            user: Some(&s.user),
            client_ip: ctx.client_ip,
            rule: None,
            decision: "success",
            reason: "sign-out",
            risk: None,
            request: None,
            expired_rule: None,
        });
    }
    let clear = cookies::clear(cookies::SESSION, cfg.public.https);
    if let Some(url) = at_idp {
        // RP-initiated logout: signed out here; the IdP ends its session and sends the browser
        // back to /.stepgate/oidc/signed-out.
        return Ok(redirect(&url, &[clear]));
    }
    let page = MessagePage {
        title: "Signed out",
        text: "You are signed out of this gateway.",
        link: "/.stepgate/login",
        link_text: "Sign in again",
    };
    html(&page, StatusCode::OK, &[clear])
}
