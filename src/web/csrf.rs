//! CSRF: a random cookie (HttpOnly, SameSite=Lax) and, in each form, a MAC of it that only the
//! gateway can compute. A POST must carry both, and an Origin header, when sent, must be ours.

use super::WebError;
use crate::pipeline::Ctx;
use crate::session::cookies;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue, ORIGIN};
use rand::RngCore;

const PURPOSE: &str = "csrf";

/// The token for this browser's forms, and a Set-Cookie when the browser has no CSRF cookie yet.
pub fn token(ctx: &Ctx, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let https = ctx.live.config.public.https;
    let (seed, set_cookie) = match cookies::get(headers, cookies::CSRF, https).filter(|v| v.len() == 43) {
        Some(seed) => (seed, None),
        None => {
            let mut b = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut b);
            let seed = URL_SAFE_NO_PAD.encode(b);
            let cookie = cookies::set(cookies::CSRF, &seed, https, None);
            (seed, Some(cookie))
        }
    };
    (URL_SAFE_NO_PAD.encode(ctx.live.secretbox.mac(PURPOSE, seed.as_bytes())), set_cookie)
}

/// Checks a submitted form's token against the browser's cookie, and the Origin header.
pub fn verify(ctx: &Ctx, headers: &HeaderMap, submitted: &str) -> Result<(), WebError> {
    if let Some(origin) = headers.get(ORIGIN) {
        if origin.to_str().ok().map(|o| o.to_ascii_lowercase()).as_deref()
            != Some(ctx.live.config.public.origin.as_str())
        {
            return Err(WebError::Csrf);
        }
    }
    let seed = cookies::get(headers, cookies::CSRF, ctx.live.config.public.https).ok_or(WebError::Csrf)?;
    let tag = URL_SAFE_NO_PAD.decode(submitted.as_bytes()).map_err(|_| WebError::Csrf)?;
    if ctx.live.secretbox.verify_mac(PURPOSE, seed.as_bytes(), &tag) {
        Ok(())
    } else {
        Err(WebError::Csrf)
    }
}
