//! Revoking factors from the account page: a passkey, or the authenticator app. Both need a
//! fresh step-up, and the last second factor cannot go while the policy needs one.

use super::challenge::who;
use super::enroll::needs_fresh_proof;
use super::pages::{html, redirect, MessagePage};
use super::{csrf, forms, WebResult};
use crate::audit::Kind;
use crate::body::Body;
use crate::pipeline::Ctx;
use crate::policy::level::Level;
use crate::policy::routes::{Action, RouteTable};
use crate::web::urls::{page_url, Need};
use http::{Request, StatusCode};

const ACCOUNT: &str = "/.stepgate/account";

/// Whether any route asks for a second factor (aal2 or more).
pub fn policy_needs_second_factor(routes: &RouteTable) -> bool {
    routes.rules.iter().chain(std::iter::once(&routes.default)).any(|r| match &r.action {
        Action::Require(need) => need.level >= Level::Aal2,
        Action::Deny => false,
    })
}

#[derive(Clone, Copy)]
enum Which {
    Passkey,
    Totp,
}

pub async fn delete_passkey(ctx: &Ctx, req: Request<Body>) -> WebResult {
    delete(ctx, req, Which::Passkey).await
}

pub async fn delete_totp(ctx: &Ctx, req: Request<Body>) -> WebResult {
    delete(ctx, req, Which::Totp).await
}

async fn delete(ctx: &Ctx, req: Request<Body>, which: Which) -> WebResult {
    let (parts, body) = req.into_parts();
    let form = forms::read(body).await?;
    csrf::verify(ctx, &parts.headers, form.get("csrf"))?;
    let Some(who) = who(ctx).await? else {
        return Ok(redirect(&page_url(Need::SignIn, ACCOUNT), &[]));
    };
    let store = &*ctx.state.store;
    let mut factors = store.get_factors(&who.user).await?;
    if needs_fresh_proof(ctx, &who, &factors).is_some() {
        return Ok(redirect(&page_url(Need::StepUp, ACCOUNT), &[]));
    }
    let present = match which {
        Which::Passkey => factors.webauthn.iter().any(|c| c.id == form.get("id")),
        Which::Totp => factors.totp.is_some(),
    };
    if !present {
        return Ok(redirect(ACCOUNT, &[]));
    }
    if factors.second_factor_count() == 1 && policy_needs_second_factor(&ctx.live.config.routes) {
        let page = MessagePage {
            title: "This is your last second factor",
            text: "Some pages need a second factor, so your last one cannot be removed. Add another one first.",
            link: ACCOUNT,
            link_text: "Back to your account",
        };
        return html(&page, StatusCode::CONFLICT, &[]);
    }
    let what = match which {
        Which::Passkey => {
            let id = form.get("id").to_string();
            factors.webauthn.retain(|c| c.id != id);
            store.put_factors(&who.user, &factors).await?;
            store.release_credential(&id).await?;
            "webauthn"
        }
        Which::Totp => {
            factors.totp = None;
            store.put_factors(&who.user, &factors).await?;
            "totp"
        }
    };
    super::audit_user(ctx, Kind::Revoke, &who.user, "success", what);
    Ok(redirect(ACCOUNT, &[]))
}
