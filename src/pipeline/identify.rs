//! Who is making the request: a session cookie (built-in sign-in) or a trusted proxy's header.

use super::Ctx;
use crate::clock::UnixTime;
use crate::config::{Config, Identity as IdentitySource};
use crate::policy::conditions::Attributes;
use crate::policy::level::{AuthMethod, Level, Proof};
use crate::session::{cookies, Session, SessionId};
use crate::store::{Store, StoreError};
use http::HeaderMap;
use std::time::Duration;

/// How stale `last_seen` may get before a request writes it back (keeps the hot path read-only).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A signed-in user and the proofs that count for this request.
#[derive(Debug, Clone)]
pub struct Who {
    pub user: String,
    pub proofs: Vec<Proof>,
    /// The gateway session, when there is one.
    pub session: Option<(SessionId, Session)>,
    /// Groups, claims, scopes, workload: what rules' conditions are checked against.
    pub attrs: Attributes,
}

/// Reads the identity header if, and only if, the peer is a trusted proxy. Call before the
/// identity headers are stripped.
pub fn asserted_user(cfg: &Config, headers: &HeaderMap, peer_trusted: bool) -> Option<String> {
    let IdentitySource::Header { header, .. } = &cfg.identity else { return None };
    if !peer_trusted {
        return None;
    }
    let mut values = headers.get_all(header).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let user = first.to_str().ok()?.trim();
    crate::authn::password::valid_user_name(user).then(|| user.to_string())
}

/// The most groups a groups header may list; a longer list counts as none.
const MAX_ASSERTED_GROUPS: usize = 256;

/// Reads the groups header (`identity.groups_header`, comma-separated) if, and only if, the
/// peer is a trusted proxy. Fails closed to no groups: a header sent twice (a proxy that
/// appends to the client's instead of replacing it), too many groups, or a group with control
/// characters.
pub fn asserted_groups(cfg: &Config, headers: &HeaderMap, peer_trusted: bool) -> Vec<String> {
    let IdentitySource::Header { groups_header: Some(name), .. } = &cfg.identity else { return Vec::new() };
    if !peer_trusted {
        return Vec::new();
    }
    let mut values = headers.get_all(name).iter();
    let (Some(first), None) = (values.next(), values.next()) else { return Vec::new() };
    let Ok(text) = first.to_str() else { return Vec::new() };
    let groups: Vec<String> = text.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
    let sane = groups.len() <= MAX_ASSERTED_GROUPS
        && groups.iter().all(|g| g.len() <= 256 && !g.chars().any(char::is_control));
    if sane {
        groups
    } else {
        Vec::new()
    }
}

/// Whether reading a session counts as activity (refreshes `last_seen`, so the idle timeout
/// starts again). A request does; the watch over an open WebSocket does not, so a tunnel
/// alone cannot keep a session alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    Yes,
    No,
}

/// Loads the live session named by the cookie in `headers`, if any; refreshes `last_seen`
/// now and then.
pub async fn load_session(
    store: &dyn Store,
    cfg: &Config,
    headers: &HeaderMap,
    now: UnixTime,
) -> Result<Option<(SessionId, Session)>, StoreError> {
    let cookie = cookies::get(headers, cookies::SESSION, cfg.public.https);
    load_session_by(store, cfg, cookie.as_deref(), now, Touch::Yes).await
}

/// The live session a session cookie's value names, saying whether this read counts as activity.
pub async fn load_session_by(
    store: &dyn Store,
    cfg: &Config,
    cookie: Option<&str>,
    now: UnixTime,
    touch: Touch,
) -> Result<Option<(SessionId, Session)>, StoreError> {
    let Some(id) = cookie.and_then(SessionId::parse) else {
        return Ok(None);
    };
    let Some(mut session) = store.get_session(&id.key(), now).await? else { return Ok(None) };
    let (idle, absolute) = (cfg.sessions.idle_timeout, cfg.sessions.absolute_timeout);
    if !session.is_live(now, idle, absolute) {
        return Ok(None);
    }
    if touch == Touch::Yes && now.since(session.last_seen) >= TOUCH_EVERY {
        session.last_seen = now;
        store.put_session(&id.key(), &session, session.expires_at(idle, absolute)).await?;
    }
    Ok(Some((id, session)))
}

/// Who makes the request in `ctx`, for the configured identity source; `touch` says whether
/// reading the session counts as activity.
pub async fn identify(ctx: &Ctx, touch: Touch) -> Result<Option<Who>, StoreError> {
    let cfg = &ctx.live.config;
    let session = load_session_by(&*ctx.state.store, cfg, ctx.session_cookie.as_deref(), ctx.now, touch).await?;
    match &cfg.identity {
        IdentitySource::Builtin { .. } => Ok(session.map(|(id, s)| {
            let mut attrs = idp_attrs(&s);
            if let Some(users) = ctx.live.users.as_ref().and_then(|w| w.current()) {
                attrs.groups.extend(users.groups_of(&s.user));
            }
            Who { user: s.user.clone(), proofs: s.proofs.clone(), session: Some((id, s)), attrs }
        })),
        IdentitySource::Oidc(_) => Ok(session.map(|(id, s)| Who {
            user: s.user.clone(),
            proofs: s.proofs.clone(),
            attrs: idp_attrs(&s),
            session: Some((id, s)),
        })),
        IdentitySource::Header { .. } => {
            let Some(user) = ctx.asserted.clone() else { return Ok(None) };
            let mut proofs = vec![Proof { level: Level::Aal1, method: AuthMethod::Header, auth_time: ctx.now }];
            // Step-up proofs count only while the proxy still asserts the same user.
            let session = session.filter(|(_, s)| s.user == user);
            if let Some((_, s)) = &session {
                proofs.extend(s.proofs.iter().filter(|p| p.method != AuthMethod::Header).cloned());
            }
            let attrs = Attributes { groups: ctx.asserted_groups.clone(), ..Attributes::default() };
            Ok(Some(Who { user, proofs, session, attrs }))
        }
    }
}

/// What rules' conditions see of a session's identity-provider facts (an OIDC sign-in; the
/// groups `explain --groups` gives its sandbox session).
fn idp_attrs(s: &Session) -> Attributes {
    let Some(idp) = &s.idp else { return Attributes::default() };
    Attributes {
        groups: idp.groups.clone(),
        claims: serde_json::from_str(&idp.claims_json).unwrap_or_default(),
        ..Attributes::default()
    }
}

/// The identity a machine client presents instead of a session: a bearer token (when
/// `[bearer]` is configured), else a client certificate when no session cookie came. None: no
/// such credential. A credential that does not hold is the answer itself: `invalid_token` or
/// `invalid_certificate`, or 503 when the issuer's keys cannot be had (fail closed).
pub async fn machine_identity(ctx: &Ctx) -> Option<Result<Who, super::Outcome>> {
    use super::Outcome;
    use crate::policy::cause::Cause;
    if let (Some(b), Some(presented)) = (&ctx.live.config.bearer, &ctx.bearer) {
        return Some(match crate::bearer::check(b, presented, ctx.now).await {
            Ok(token) => Ok(Who { user: token.subject, proofs: vec![token.proof], session: None, attrs: token.attrs }),
            Err(e) => {
                tracing::info!(request_id = %ctx.request_id, error = %e, "bearer token refused");
                Err(match e {
                    crate::bearer::TokenError::KeysUnavailable => Outcome::Unavailable,
                    _ => Outcome::Deny { cause: Cause::InvalidToken },
                })
            }
        });
    }
    let cert = ctx.client_cert.as_ref().filter(|_| ctx.session_cookie.is_none())?;
    Some(match cert.identify() {
        Ok(w) => Ok(Who {
            user: w.id.clone(),
            proofs: vec![Proof { level: Level::Aal1, method: AuthMethod::Certificate, auth_time: ctx.now }],
            session: None,
            attrs: Attributes {
                workload: Some(w.id),
                credential_issued_at: Some(w.issued_at),
                ..Attributes::default()
            },
        }),
        Err(e) => {
            tracing::info!(request_id = %ctx.request_id, error = %e, "client certificate is no workload identity");
            Err(Outcome::Deny { cause: Cause::InvalidCertificate })
        }
    })
}
