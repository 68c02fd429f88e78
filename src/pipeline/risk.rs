//! The risk phase of the request path: gather the facts for the scorer (store, cookies, GeoIP),
//! score, and remember what a passed request or a new proof teaches about the user.
//!
//! `evaluate` calls `score` for every way in (proxy, forward-auth, the challenge page, explain),
//! so the page asks for exactly what the gateway will then accept.

use super::identify::Who;
use super::Ctx;
use crate::clock::UnixTime;
use crate::policy::level::{Level, Proof};
use crate::policy::routes::Rule;
use crate::risk::geo::GeoFacts;
use crate::risk::history::RiskHistory;
use crate::risk::RiskVerdict;
use crate::risk::{self, device, user_agent_hash, Assessment, Counts, Facts, ProofContext};
use crate::session::cookies;
use crate::store::StoreError;
use http::HeaderValue;
use std::time::Duration;

/// The counter of failed step-up attempts: read by the scorer, written by the challenge page.
pub fn failures_key(user: &str) -> String {
    format!("stepup-fail:{user}")
}

/// A request's score and what it means for the matched rule.
#[derive(Debug, Clone, Default)]
pub struct Scored {
    pub assessment: Assessment,
    pub verdict: RiskVerdict,
    pub geo: GeoFacts,
    /// The user's history as read for scoring (None when nobody is signed in or risk is off).
    pub history: Option<RiskHistory>,
}

/// Whether the request is counted in the behaviour signal's window (the gateway counts each
/// protected request once; the challenge page only looks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    ThisRequest,
    LookOnly,
}

pub fn geo_of(ctx: &Ctx) -> GeoFacts {
    ctx.live.config.risk.location.as_ref().map(|l| l.geo.lookup(ctx.client_ip)).unwrap_or_default()
}

/// Scores a request for `rule`. Nothing is scored when `[risk]` is absent and the rule has no
/// time window (the hot path then pays nothing).
pub async fn score(ctx: &Ctx, rule: &Rule, who: Option<&Who>, count: Count) -> Result<Scored, StoreError> {
    let cfg = &ctx.live.config.risk;
    if !cfg.enabled && rule.risk.window.is_none() {
        return Ok(Scored::default());
    }
    let store = &*ctx.state.store;
    let geo = geo_of(ctx);
    let history = match who {
        Some(w) if cfg.device.is_some() || cfg.location.is_some() => Some(store.get_risk_history(&w.user).await?),
        _ => None,
    };
    let empty = RiskHistory::default();
    let device = match (&cfg.device, who) {
        (Some(_), Some(w)) => {
            let cookie = device::decode(&ctx.live.secretbox, ctx.risk_ctx.device_cookie.as_deref(), &w.user);
            Some(device::status(&cookie, history.as_ref().unwrap_or(&empty)))
        }
        _ => None,
    };
    let counts = match (&cfg.behaviour, who) {
        (Some(b), Some(w)) => Counts {
            recent_requests: recent_requests(ctx, w, b.window, count).await?,
            failed_challenges: store.read_counter(&failures_key(&w.user), ctx.now).await?,
        },
        _ => Counts::default(),
    };
    let facts = Facts {
        now: ctx.now,
        ip: ctx.client_ip,
        user_agent: &ctx.risk_ctx.user_agent,
        geo: &geo,
        device,
        history: history.as_ref().unwrap_or(&empty),
        counts,
        proof_context: who.and_then(|w| w.session.as_ref()).and_then(|(_, s)| s.context.as_ref()),
    };
    let assessment = risk::assess(cfg, rule.risk.window.as_ref(), &facts);
    let verdict = risk::verdict(cfg, &rule.risk, &assessment);
    Ok(Scored { assessment, verdict, geo, history })
}

/// Protected requests of the session in a sliding window: this window's count plus the share of
/// the previous window's count that still falls inside it.
async fn recent_requests(ctx: &Ctx, who: &Who, window: Duration, count: Count) -> Result<u64, StoreError> {
    let store = &*ctx.state.store;
    let id = match &who.session {
        Some((id, _)) => id.key(),
        None => format!("user:{}", who.user),
    };
    let w = window.as_secs().max(1);
    let bucket = ctx.now.0 / w;
    let key = |b: u64| format!("risk-rate:{id}:{b}");
    let current = match count {
        Count::ThisRequest => store.hit_counter(&key(bucket), window * 2, UnixTime(bucket * w)).await?,
        Count::LookOnly => store.read_counter(&key(bucket), ctx.now).await?,
    };
    let previous = store.read_counter(&key(bucket.saturating_sub(1)), ctx.now).await?;
    let into = (ctx.now.0 % w) as f64 / w as f64;
    Ok(current + (previous as f64 * (1.0 - into)).round() as u64)
}

/// After a request is forwarded: a device seen again and the user's place are written back,
/// when they changed enough to be worth a write.
pub async fn remember_request(ctx: &Ctx, who: &Who, scored: Scored) -> Result<(), StoreError> {
    let Some(mut history) = scored.history else { return Ok(()) };
    let mut changed = history.remember_place(scored.geo.coords, scored.geo.country.as_deref(), ctx.now);
    if ctx.live.config.risk.device.is_some() {
        if let device::DeviceCookie::Mine { id } =
            device::decode(&ctx.live.secretbox, ctx.risk_ctx.device_cookie.as_deref(), &who.user)
        {
            if history.knows_device(&id) {
                changed |= history.remember_device(&id, ctx.now);
            }
        }
    }
    if changed {
        ctx.state.store.put_risk_history(&who.user, &history).await?;
    }
    Ok(())
}

/// Where a proof was made becomes the user's place, with one exception: a password alone must
/// not launder an attacker's location. A sign-in does not add a country (unless the user has
/// none yet) and does not move the sighting where the move itself is impossible travel; the
/// request after it is then scored from where the user really was.
fn remember_proof_place(
    cfg: &crate::risk::config::RiskConfig,
    history: &mut RiskHistory,
    geo: &GeoFacts,
    proof: &Proof,
    now: UnixTime,
) -> bool {
    if proof.level >= Level::Aal2 || history.countries.is_empty() {
        return history.remember_place(geo.coords, geo.country.as_deref(), now);
    }
    let impossible = match (&cfg.location, &history.last_sighting, geo.coords) {
        (Some(rules), Some(last), Some(here)) => {
            crate::risk::location::impossible_travel(rules, last, here, now).is_some()
        }
        _ => false,
    };
    let known_country = geo.country.as_deref().filter(|c| history.knows_country(c));
    if impossible || (geo.country.is_some() && known_country.is_none()) {
        return false;
    }
    history.remember_place(geo.coords, known_country, now)
}

/// After a proof (sign-in or step-up): the context it was made in, for the session; the place,
/// for the history; and, for a second factor, the device becomes known. Returns the device
/// cookie to set, if any.
pub async fn remember_proof(
    ctx: &Ctx,
    user: &str,
    proof: &Proof,
) -> Result<(Option<ProofContext>, Option<HeaderValue>), StoreError> {
    let cfg = &ctx.live.config;
    if !cfg.risk.enabled {
        return Ok((None, None));
    }
    let geo = geo_of(ctx);
    let context = ProofContext {
        ip: ctx.client_ip,
        user_agent: user_agent_hash(&ctx.risk_ctx.user_agent),
        country: geo.country.clone(),
    };
    if cfg.risk.device.is_none() && cfg.risk.location.is_none() {
        return Ok((Some(context), None));
    }
    let store = &*ctx.state.store;
    let mut history = store.get_risk_history(user).await?;
    let mut changed = remember_proof_place(&cfg.risk, &mut history, &geo, proof, ctx.now);
    let mut set_cookie = None;
    if let (Some(rules), true) = (&cfg.risk.device, proof.level >= Level::Aal2) {
        let id = match device::decode(&ctx.live.secretbox, ctx.risk_ctx.device_cookie.as_deref(), user) {
            device::DeviceCookie::Mine { id } => id,
            _ => device::new_device_id(),
        };
        changed |= history.remember_device(&id, ctx.now);
        let value = device::encode(&ctx.live.secretbox, &id, user);
        let max_age = rules.cookie_lifetime.as_secs().min(i64::MAX as u64) as i64;
        set_cookie = Some(cookies::set(cookies::DEVICE, &value, cfg.public.https, Some(max_age)));
    }
    if changed {
        store.put_risk_history(user, &history).await?;
    }
    Ok((Some(context), set_cookie))
}
