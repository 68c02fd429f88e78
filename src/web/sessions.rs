//! Making and ending sessions. Every sign-in and every elevation gets a new session id.

use super::WebError;
use crate::pipeline::Ctx;
use crate::policy::level::Proof;
use crate::session::{cookies, IdpFacts, Session, SessionId};
use http::HeaderValue;

/// Records `proof` for `user` under a NEW session id, carrying over the proofs of `previous`
/// when it belongs to the same user, and deletes `previous`. Returns the Set-Cookie headers
/// (the session, and the device cookie when the risk scorer now knows this device).
pub async fn elevate(
    ctx: &Ctx,
    user: &str,
    proof: Proof,
    previous: Option<(SessionId, Session)>,
) -> Result<Vec<HeaderValue>, WebError> {
    Ok(elevate_keyed(ctx, user, proof, previous, None).await?.0)
}

/// `elevate`, also recording what an identity provider said (`idp`: replaces the old facts).
pub async fn elevate_with(
    ctx: &Ctx,
    user: &str,
    proof: Proof,
    previous: Option<(SessionId, Session)>,
    idp: Option<IdpFacts>,
) -> Result<Vec<HeaderValue>, WebError> {
    Ok(elevate_keyed(ctx, user, proof, previous, idp).await?.0)
}

/// `elevate`, also returning the new session's store key (a kept request moves to it).
pub async fn elevate_keyed(
    ctx: &Ctx,
    user: &str,
    proof: Proof,
    previous: Option<(SessionId, Session)>,
    idp: Option<IdpFacts>,
) -> Result<(Vec<HeaderValue>, String), WebError> {
    let cfg = &ctx.live.config;
    let store = &*ctx.state.store;
    let (context, device_cookie) = crate::pipeline::risk::remember_proof(ctx, user, &proof).await?;
    let mut session = Session::new(user, proof.clone());
    if let Some((old_id, old)) = previous {
        if old.user == user {
            session = Session { last_seen: ctx.now, ..old };
            session.record(proof);
        }
        store.delete_session(&old_id.key()).await?;
    }
    session.context = context;
    if idp.is_some() {
        session.idp = idp;
    }
    let id = SessionId::generate();
    let (idle, absolute) = (cfg.sessions.idle_timeout, cfg.sessions.absolute_timeout);
    // Filed under the IdP's session and subject first, so a back-channel logout finds it.
    if let (Some(idp), Some(oidc)) = (&session.idp, &ctx.live.oidc) {
        for index in crate::oidc::logout::indexes(&oidc.cfg.issuer, idp) {
            store.index_idp_session(&index, &id.key(), session.created_at.plus(absolute)).await?;
        }
    }
    store.put_session(&id.key(), &session, session.expires_at(idle, absolute)).await?;
    let mut set = vec![cookies::set(cookies::SESSION, id.as_cookie_value(), cfg.public.https, None)];
    set.extend(device_cookie);
    Ok((set, id.key()))
}
