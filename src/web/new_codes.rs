//! New recovery codes, shown once, with POST-redirect-GET.
//!
//! The POST that stores a factor and its codes keeps the codes (sealed) in the store under a
//! random id for ten minutes, sets a cookie with that id, and redirects (303) to
//! `/.stepgate/recovery-codes`. That GET takes the record (so a refresh, or the back button,
//! never re-posts the enrollment and never changes a factor) and shows the codes; a second GET
//! says they were already shown.

use super::challenge::who;
use super::pages::{html, redirect, MessagePage, RecoveryCodesPage};
use super::{WebError, WebResult};
use crate::pipeline::Ctx;
use crate::session::cookies;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderValue, StatusCode};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const PAGE: &str = "/.stepgate/recovery-codes";
const TTL: Duration = Duration::from_secs(600);
const ACCOUNT: &str = "/.stepgate/account";

#[derive(Serialize, Deserialize)]
struct Record {
    user: String,
    codes: Vec<String>,
    return_to: String,
}

fn key(id: &str) -> String {
    format!("recovery-show:{id}")
}

/// Keeps `codes` for one showing to `user`; returns the Set-Cookie that names them.
pub async fn keep(ctx: &Ctx, user: &str, codes: &[String], return_to: &str) -> Result<HeaderValue, WebError> {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let id = URL_SAFE_NO_PAD.encode(b);
    let record = Record { user: user.to_string(), codes: codes.to_vec(), return_to: return_to.to_string() };
    let json = serde_json::to_vec(&record).map_err(|e| WebError::Internal(e.to_string()))?;
    let sealed = ctx.live.secretbox.seal(&json);
    ctx.state.store.put_ephemeral(&key(&id), sealed.as_bytes(), ctx.now.plus(TTL)).await?;
    let max_age = i64::try_from(TTL.as_secs()).unwrap_or(600);
    Ok(cookies::set(cookies::NEW_CODES, &id, ctx.live.config.public.https, Some(max_age)))
}

/// GET `/.stepgate/recovery-codes`: the codes once, then "already shown".
pub async fn show(ctx: &Ctx, headers: &HeaderMap) -> WebResult {
    let Some(who) = who(ctx).await? else {
        return Ok(redirect(ACCOUNT, &[]));
    };
    let https = ctx.live.config.public.https;
    let clear = [cookies::clear(cookies::NEW_CODES, https)];
    let record = match cookies::get(headers, cookies::NEW_CODES, https) {
        Some(id) => ctx.state.store.take_ephemeral(&key(&id), ctx.now).await?,
        None => None,
    };
    let record: Option<Record> = record
        .and_then(|sealed| ctx.live.secretbox.open(&String::from_utf8_lossy(&sealed)))
        .and_then(|json| serde_json::from_slice(&json).ok())
        .filter(|r: &Record| r.user == who.user);
    match record {
        Some(r) => {
            let download = format!("stepgate recovery codes: each works once.\n\n{}\n", r.codes.join("\n"));
            let page = RecoveryCodesPage { codes: &r.codes, return_to: &r.return_to, download: &download };
            html(&page, StatusCode::OK, &clear)
        }
        None => html(
            &MessagePage {
                title: "Recovery codes already shown",
                text: "Recovery codes are shown only once, right after they are made, and these were. \
                       Your factors have not changed. If you did not write the codes down, set up your \
                       authenticator app again from your account page: that makes new ones.",
                link: ACCOUNT,
                link_text: "Go to your account",
            },
            StatusCode::OK,
            &clear,
        ),
    }
}
