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

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum ReadError {
    /// Longer than the limit.
    TooLarge,
    /// The body failed (a client that cut it short, or stalled).
    Failed(BoxError),
}

/// Reads a body whole, at most `max` bytes of it. (A frame loop rather than `Limited`, whose
/// error conversion trips the compiler's `Send` check on this boxed body inside async code.)
pub async fn read_at_most(mut body: Body, max: usize) -> Result<Bytes, ReadError> {
    if http_body::Body::size_hint(&body).lower() > max as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Failed)?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > max {
                return Err(ReadError::TooLarge);
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out.freeze())
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

/// A request body that paused longer than `listen.body_timeout` between two chunks.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: no data for {0:?}")]
pub struct BodyStalled(pub std::time::Duration);

/// Whether `err`, or anything it was caused by, is a [`BodyStalled`].
pub fn caused_by_stall(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<BodyStalled>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// [`from_client`] for a body that may pause at most `idle` between two frames; a longer
/// pause ends it with a [`BodyStalled`] error (so the forward fails, blamed on the client).
pub fn from_client_within<B>(body: B, idle: std::time::Duration) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    if body.is_end_stream() {
        return from_client(body);
    }
    from_client(IdleTimeout { body, idle, timer: Box::pin(tokio::time::sleep(idle)) })
}

/// A body with a timer reset by every frame it yields (see [`from_client_within`]).
struct IdleTimeout<B> {
    body: B,
    idle: std::time::Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<B> http_body::Body for IdleTimeout<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match std::future::Future::poll(this.timer.as_mut(), cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(this.idle))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
