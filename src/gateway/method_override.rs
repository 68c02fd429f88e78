//! A POST whose body names another method (`_method`, see `policy::method_override`), on a
//! path where that method meets another rule: refused before it is kept or forwarded. Where
//! every method meets the same rule the body is not read at all (nothing an override could
//! change), nor for a body no framework reads `_method` from.

use crate::body::{self, Body, ReadError};
use crate::pipeline::route::{route, Routed};
use crate::pipeline::{Ctx, Evaluation, Outcome};
use crate::policy::method_override::{body_may_override, body_overrides};
use crate::policy::routes::Rule;
use crate::respond::error_page;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};

/// The methods a POST can be made into by an override.
const OVERRIDABLE: [Method; 3] = [Method::PUT, Method::PATCH, Method::DELETE];

/// Why a POST is refused: its body names another method, or it is too large to be read for it.
pub enum Refused {
    Names,
    TooLarge(usize),
    /// Compressed (`Content-Encoding`): an app may decode it (Express's body-parser does) and
    /// read a `_method` the gateway cannot see.
    Encoded,
}

impl Refused {
    pub fn response(&self, ctx: &Ctx) -> Response<Body> {
        match self {
            Refused::Names => error_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The form names another method (_method): send the request with that method itself.",
                ctx.reply(),
            ),
            Refused::Encoded => error_page(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported encoding",
                "This address treats methods differently, so a form sent to it is read for a _method \
                 field first: send it uncompressed (no Content-Encoding).",
                ctx.reply(),
            ),
            Refused::TooLarge(max) => error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request too large",
                &format!(
                    "This address treats methods differently, so a form sent to it is read for a _method \
                     field first; this one is larger than {max} bytes (routes.keep_body_max)."
                ),
                ctx.reply(),
            ),
        }
    }
}

/// The request, its body read and checked if it could override its method where that matters;
/// else as it came.
pub async fn checked(ctx: &Ctx, eval: &Evaluation<'_>, req: Request<Body>) -> Result<Request<Body>, Refused> {
    let reaches_app = matches!(eval.outcome, Outcome::Forward { .. } | Outcome::StepUp { .. });
    let Some(rule) = eval.rule.filter(|_| reaches_app && ctx.method == Method::POST) else { return Ok(req) };
    let types: Vec<&[u8]> = req.headers().get_all(CONTENT_TYPE).iter().map(|v| v.as_bytes()).collect();
    if !body_may_override(&types) || !rules_differ_by_method(ctx, rule) || http_body::Body::is_end_stream(req.body()) {
        return Ok(req);
    }
    let mut encodings = req.headers().get_all(CONTENT_ENCODING).iter();
    let identity = |v: &http::HeaderValue| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity");
    match (encodings.next(), encodings.next()) {
        (None, _) => {}
        (Some(one), None) if identity(one) => {}
        _ => return Err(Refused::Encoded),
    }
    let max = ctx.live.config.keep_body_max;
    let content_type = types.iter().map(|t| String::from_utf8_lossy(t)).collect::<Vec<_>>().join(", ");
    let (parts, incoming) = req.into_parts();
    let bytes = match body::read_at_most(incoming, max).await {
        Ok(b) => b,
        Err(ReadError::TooLarge) => return Err(Refused::TooLarge(max)),
        // The client's body failed (cut short, stalled): forwarded as it is, it fails upstream
        // as the client's error, as any other body would.
        Err(ReadError::Failed(e)) => return Ok(Request::from_parts(parts, body::stream(FailedBody(Some(e))))),
    };
    if body_overrides(&content_type, &bytes) {
        return Err(Refused::Names);
    }
    Ok(Request::from_parts(parts, body::full(bytes)))
}

/// Whether a PUT, PATCH or DELETE on this request's host and path meets another rule than the
/// POST did (or none).
fn rules_differ_by_method(ctx: &Ctx, rule: &Rule) -> bool {
    OVERRIDABLE.iter().any(|m| meets_another_rule(ctx, rule, m))
}

/// Whether `method` on this request's host and path meets another rule than `rule` (or none).
fn meets_another_rule(ctx: &Ctx, rule: &Rule, method: &Method) -> bool {
    match route(&ctx.live.config, &ctx.host, &ctx.path, method, ctx.client_ip, ctx.now) {
        Routed::Rule(c) => !std::ptr::eq(c.rule, rule),
        _ => true,
    }
}

/// Forward-auth: the front proxy asks without the body, so a POST that could name another
/// method (by its `Content-Type`, sent with the question) on a path where that method meets
/// another rule must also pass as that method. These are the requests to evaluate as well.
pub fn also_asked_as(ctx: &Ctx, headers: &HeaderMap) -> Vec<Ctx> {
    if ctx.method != Method::POST {
        return Vec::new();
    }
    let types: Vec<&[u8]> = headers.get_all(CONTENT_TYPE).iter().map(|v| v.as_bytes()).collect();
    if !body_may_override(&types) {
        return Vec::new();
    }
    let Routed::Rule(c) = route(&ctx.live.config, &ctx.host, &ctx.path, &ctx.method, ctx.client_ip, ctx.now) else {
        return Vec::new();
    };
    let other = |m: &&Method| meets_another_rule(ctx, c.rule, m);
    OVERRIDABLE.iter().filter(other).map(|m| Ctx { method: m.clone(), ..ctx.clone() }).collect()
}

/// A body that yields the error it ended with.
struct FailedBody(Option<crate::body::BoxError>);

impl http_body::Body for FailedBody {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(Err))
    }
}
