//! The one body type every response uses, and small constructors.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed()
}

/// Wraps a streaming body (e.g. hyper's `Incoming`) without buffering it.
pub fn stream<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// An error reading the body a client sent (bad chunked framing, a connection cut short).
/// Kept as its own type so that forwarding can tell it from an upstream failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientBodyError(#[source] BoxError);

/// Wraps the body a client sent, marking its errors as the client's.
pub fn from_client<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(|e| -> BoxError { Box::new(ClientBodyError(e.into())) }).boxed()
}

/// Whether `err`, or anything it was caused by, is a [`ClientBodyError`].
pub fn caused_by_client_body<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a ClientBodyError> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<ClientBodyError>() {
            return Some(c);
        }
        cur = e.source();
    }
    None
}
