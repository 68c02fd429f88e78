//! One client connection from accept to close, within its limits: the first request's headers
//! within `listen.header_timeout` of accept (this covers a client that never sends a byte and
//! the phase that tells HTTP/1.1 from HTTP/2), no request in flight for `listen.idle_timeout`
//! closes it (HTTP/2 with GOAWAY), and a graceful shutdown or an idle close that the client
//! does not let finish is cut after a grace period.
//!
//! hyper's own timers cover the rest: HTTP/1.1 headers within `header_timeout` of the previous
//! request's end, HTTP/2 keep-alive pings.

use crate::body::Body;
use crate::pipeline::Conn;
use crate::state::SharedState;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The time limits one connection is served within.
#[derive(Clone, Copy)]
pub struct Deadlines {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long in-flight requests get to finish after a shutdown signal.
    pub drain_for: Duration,
}

/// What a connection's requests are doing, shared between the connection task and its service.
struct Activity {
    born: Instant,
    in_flight: AtomicU32,
    /// Milliseconds after `born` when the last request ended; `u64::MAX`: none has started.
    idle_since: AtomicU64,
}

impl Activity {
    fn new(born: Instant) -> Self {
        Activity { born, in_flight: AtomicU32::new(0), idle_since: AtomicU64::new(u64::MAX) }
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// When this connection is next to be looked at, and whether it is due for closing then.
    fn deadline(&self, d: &Deadlines) -> (Instant, bool) {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return (Instant::now() + d.idle_timeout, false);
        }
        let at = match self.idle_since.load(Ordering::Relaxed) {
            u64::MAX => self.born + d.header_timeout,
            ms => self.born + Duration::from_millis(ms) + d.idle_timeout,
        };
        (at, at <= Instant::now())
    }
}

/// A request in flight, from its headers until its response body is sent (or dropped).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.born.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.0.idle_since.store(ms, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in flight until it is done.
pub struct Tracked {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves one accepted connection (plain, or after the TLS handshake) until it ends, is idle
/// too long, or `drain` says the gateway is stopping.
pub async fn serve<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    state: SharedState,
    conn: Arc<Conn>,
    accepted: Instant,
    deadlines: Deadlines,
    mut drain: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new(accepted));
    let service = {
        let activity = activity.clone();
        service_fn(move |req| {
            let (state, conn, busy) = (state.clone(), conn.clone(), activity.busy());
            // Boxed: hyper keeps room for the service's future in every connection, idle ones
            // too, and the whole request path's state is large; boxed, it is allocated per
            // request only (see "Limits" in the README for the measurements).
            let handled = Box::pin(crate::gateway::handle(state, req, conn));
            async move {
                let resp = handled.await;
                Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked { body, _busy: busy }))
            }
        })
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let (at, _) = activity.deadline(&deadlines);
    let timer = tokio::time::sleep_until(at);
    tokio::pin!(timer);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = drain.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
                timer.as_mut().reset(Instant::now() + deadlines.drain_for);
            }
            _ = timer.as_mut() => {
                if closing {
                    tracing::debug!("connection did not close within its grace period; dropped");
                    return;
                }
                match activity.deadline(&deadlines) {
                    // No request ever started: a silent client, or headers still unfinished.
                    (_, true) if activity.idle_since.load(Ordering::Relaxed) == u64::MAX => {
                        tracing::debug!("no request within listen.header_timeout of accept; closed");
                        return;
                    }
                    // Idle: HTTP/2 says GOAWAY, HTTP/1.1 closes; a client that holds on to an
                    // HTTP/2 close (never acknowledging it) is dropped after `header_timeout`.
                    (_, true) => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        timer.as_mut().reset(Instant::now() + deadlines.header_timeout);
                    }
                    (at, false) => timer.as_mut().reset(at),
                }
            }
        }
    }
}
