//! One client connection from accept to close, within its limits: the first bytes within
//! `listen.header_timeout` of accept (this covers a client that never sends a byte and the
//! phase that tells HTTP/1.1 from HTTP/2), no request in flight for `listen.idle_timeout`
//! closes it (HTTP/2 with GOAWAY), and a graceful shutdown or an idle close that the client
//! does not let finish is cut after a grace period.
//!
//! An HTTP/1.1 connection idle for `PARK_AFTER` is **parked**: hyper's connection state and its
//! read and write buffers (8 KiB each) are dropped and only the socket is kept, until the
//! client sends again; then a new hyper connection serves it, from the bytes already read.
//! The client sees one keep-alive connection throughout (nothing is written when parking).
//! A WebSocket handshake turns parking off for its connection (the upgrade takes the socket).
//!
//! hyper's own timers cover the rest: HTTP/1.1 headers within `header_timeout` of their first
//! byte, HTTP/2 keep-alive pings.

mod prefixed;

use crate::body::Body;
use crate::pipeline::Conn;
use crate::state::SharedState;
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prefixed::Prefixed;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How long an HTTP/1.1 connection stays idle before its hyper state is dropped (parked).
/// Long enough that a busy client never pays for a new hyper connection, short enough that
/// thousands of idle keep-alive connections hold little more than their sockets.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The time limits one connection is served within.
#[derive(Clone, Copy)]
pub struct Deadlines {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long in-flight requests get to finish after a shutdown signal.
    pub drain_for: Duration,
}

/// hyper's HTTP/1.1 and HTTP/2 connection builders, with the listener's limits.
pub struct Builders {
    pub h1: http1::Builder,
    pub h2: http2::Builder<TokioExecutor>,
}

/// What a connection's requests are doing, shared between the connection task and its service.
struct Activity {
    born: Instant,
    in_flight: AtomicU32,
    /// Milliseconds after `born` when the last request ended; `u64::MAX`: none has started.
    idle_since: AtomicU64,
    /// A WebSocket handshake arrived: the connection must be able to hand its socket over.
    upgrade: AtomicBool,
    upgrade_seen: Notify,
}

impl Activity {
    fn new(born: Instant) -> Self {
        Activity {
            born,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(u64::MAX),
            upgrade: AtomicBool::new(false),
            upgrade_seen: Notify::new(),
        }
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn never_asked(&self) -> bool {
        self.idle_since.load(Ordering::Relaxed) == u64::MAX
    }

    /// When the connection has been idle for `idle`, and whether that is now. No request
    /// started yet: `header_timeout` after accept. A request in flight: not before `idle` more.
    fn idle_for(&self, idle: Duration, d: &Deadlines) -> (Instant, bool) {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return (Instant::now() + idle, false);
        }
        let at = match self.idle_since.load(Ordering::Relaxed) {
            u64::MAX => self.born + d.header_timeout,
            ms => self.born + Duration::from_millis(ms) + idle,
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

/// The connection's IO as hyper reads it: what was read ahead first, then the socket.
type Io<I> = TokioIo<Prefixed<I>>;

type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Tracked>, std::convert::Infallible>> + Send>>;

/// The gateway as hyper's service for one connection.
#[derive(Clone)]
struct Gateway {
    state: SharedState,
    conn: Arc<Conn>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Gateway {
    type Response = http::Response<Tracked>;
    type Error = std::convert::Infallible;
    /// Boxed: hyper would otherwise keep room for the whole request path's state in every
    /// connection, idle ones too.
    type Future = Answer;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Answer {
        if crate::proxy::upgrade::is_websocket_handshake(req.method(), req.version(), req.headers()) {
            self.activity.upgrade.store(true, Ordering::Relaxed);
            self.activity.upgrade_seen.notify_one();
        }
        let (state, conn, busy) = (self.state.clone(), self.conn.clone(), self.activity.busy());
        Box::pin(async move {
            let resp = crate::gateway::handle(state, req, conn).await;
            Ok(resp.map(|body| Tracked { body, _busy: busy }))
        })
    }
}

/// Serves one accepted connection (plain, or after the TLS handshake) until it ends, is idle
/// too long, or `drain` says the gateway is stopping.
pub async fn serve<I>(
    builders: &Builders,
    mut io: I,
    state: SharedState,
    conn: Arc<Conn>,
    accepted: Instant,
    deadlines: Deadlines,
    mut drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new(accepted));
    let service = Gateway { state, conn, activity: activity.clone() };
    // Which protocol: the first bytes, within header_timeout of accept.
    let first = tokio::select! {
        read = tokio::time::timeout_at(accepted + deadlines.header_timeout, sniff(&mut io)) => match read {
            Ok(Ok(bytes)) if !bytes.is_empty() => bytes,
            Ok(_) => return,
            Err(_) => {
                tracing::debug!("no request within listen.header_timeout of accept; closed");
                return;
            }
        },
        _ = drain.changed() => return,
    };
    if first.starts_with(H2_PREFACE) {
        let h2 = Box::pin(builders.h2.serve_connection(TokioIo::new(Prefixed::new(first, io)), service));
        Box::pin(drive(h2, &activity, deadlines, &mut drain, false)).await
    } else {
        serve_h1(builders, io, first, service, &activity, deadlines, drain).await
    }
}

/// Reads until the bytes tell HTTP/2's preface from anything else (at most 24 bytes).
async fn sniff<I: AsyncRead + Unpin>(io: &mut I) -> std::io::Result<Bytes> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut filled = 0;
    while filled < buf.len() {
        let n = io.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
        if buf[..filled] != H2_PREFACE[..filled] {
            break;
        }
    }
    Ok(Bytes::copy_from_slice(&buf[..filled]))
}

/// How an HTTP/1.1 hyper connection ended.
enum H1End<I> {
    /// Parked: the socket and any bytes read past the last request, for the next one.
    Parked(I, Bytes),
    /// Closed, or handed over to a WebSocket tunnel.
    Done,
}

async fn serve_h1<I>(
    builders: &Builders,
    mut io: I,
    mut first: Bytes,
    service: Gateway,
    activity: &Activity,
    deadlines: Deadlines,
    mut drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A kept-alive connection's next request: its headers within header_timeout of the previous
    // answer (parked or not), and never later than idle_timeout.
    let next_request_within = deadlines.header_timeout.min(deadlines.idle_timeout);
    loop {
        let (at, due) = activity.idle_for(next_request_within, &deadlines);
        if due {
            tracing::debug!("no next request within listen.header_timeout; closed");
            let _ = tokio::time::timeout(deadlines.header_timeout, io.shutdown()).await;
            return;
        }
        if first.is_empty() {
            // Parked: only the socket, until the client speaks, idles out, or we stop.
            let _parked = service.state.metrics.connection_parked();
            let mut byte = [0u8; 64];
            tokio::select! {
                read = io.read(&mut byte) => match read {
                    Ok(n) if n > 0 => first = Bytes::copy_from_slice(&byte[..n]),
                    _ => return,
                },
                _ = tokio::time::sleep_until(at) => continue,
                _ = drain.changed() => {
                    let _ = tokio::time::timeout(deadlines.header_timeout, io.shutdown()).await;
                    return;
                }
            }
        }
        let hyper_conn =
            Box::new(builders.h1.serve_connection(TokioIo::new(Prefixed::new(first, io)), service.clone()));
        // Boxed, like the hyper connection: a parked connection's task keeps no room for them.
        match Box::pin(drive_h1(hyper_conn, activity, deadlines, &mut drain)).await {
            H1End::Parked(back, rest) => (io, first) = (back, rest),
            H1End::Done => return,
        }
    }
}

/// Serves requests on one hyper HTTP/1.1 connection until it ends or is parked.
async fn drive_h1<I>(
    mut plain: Box<http1::Connection<Io<I>, Gateway>>,
    activity: &Activity,
    deadlines: Deadlines,
    drain: &mut watch::Receiver<bool>,
) -> H1End<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Parked no sooner than PARK_AFTER after this hyper connection began (a request head
    // still arriving after a park is given time, and a park costs one connection per period).
    let started = Instant::now();
    let park_at = |activity: &Activity| {
        if activity.never_asked() {
            // Looked at again each PARK_AFTER: the first request may end long before
            // header_timeout, and parking counts from its end.
            let at = activity.idle_for(PARK_AFTER, &deadlines).0.min(Instant::now() + PARK_AFTER);
            return (at, false);
        }
        let (at, _) = activity.idle_for(PARK_AFTER, &deadlines);
        let at = at.max(started + PARK_AFTER);
        (at, at <= Instant::now())
    };
    let timer = tokio::time::sleep_until(park_at(activity).0);
    tokio::pin!(timer);
    // Parking asked for (hyper closes an idle connection's state, not its socket), or closing.
    let (mut parking, mut closing) = (false, false);
    loop {
        if activity.upgrade.load(Ordering::Relaxed) {
            // A WebSocket handshake: hyper must be able to hand the socket to the tunnel.
            drive(Box::pin(plain.with_upgrades()), activity, deadlines, drain, closing).await;
            return H1End::Done;
        }
        tokio::select! {
            ended = std::future::poll_fn(|cx| plain.poll_without_shutdown(cx)) => {
                if let Err(e) = &ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                let parts = plain.into_parts();
                let (prefix, io) = parts.io.into_inner().into_parts();
                if ended.is_ok() && parking && !closing {
                    return H1End::Parked(io, join(prefix, parts.read_buf));
                }
                // The client said close, an HTTP/1.0 request, an error, or a shutdown.
                let mut io = io;
                let _ = tokio::time::timeout(deadlines.header_timeout, io.shutdown()).await;
                return H1End::Done;
            }
            _ = activity.upgrade_seen.notified() => {}
            _ = drain.changed(), if !closing => {
                Pin::new(&mut *plain).graceful_shutdown();
                closing = true;
                timer.as_mut().reset(Instant::now() + deadlines.drain_for);
            }
            _ = timer.as_mut() => {
                if closing {
                    tracing::debug!("connection did not close within its grace period; dropped");
                    return H1End::Done;
                }
                if activity.never_asked() && activity.idle_for(PARK_AFTER, &deadlines).1 {
                    tracing::debug!("no request within listen.header_timeout of accept; closed");
                    return H1End::Done;
                }
                match park_at(activity) {
                    (_, true) if !parking => {
                        Pin::new(&mut *plain).graceful_shutdown();
                        parking = true;
                        timer.as_mut().reset(Instant::now() + deadlines.header_timeout);
                    }
                    // Parking asked for, yet hyper still has a request to finish reading.
                    (_, true) => timer.as_mut().reset(Instant::now() + deadlines.header_timeout),
                    (at, false) => timer.as_mut().reset(at),
                }
            }
        }
    }
}

/// hyper's connections that are driven to their end: each has a `graceful_shutdown` of its own.
trait Graceful: Future<Output = hyper::Result<()>> {
    fn shutdown_gracefully(self: Pin<&mut Self>);
}

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Graceful for http1::UpgradeableConnection<Io<I>, Gateway> {
    fn shutdown_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Graceful for http2::Connection<Io<I>, Gateway, TokioExecutor> {
    fn shutdown_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Drives a connection that is never parked (HTTP/2, or HTTP/1.1 that may upgrade) to its end:
/// idle for `idle_timeout` (nothing in flight) → a graceful close (HTTP/2: GOAWAY; an upgraded
/// connection has nothing left to close); a client that holds on to it is dropped after
/// `header_timeout`, and after `drain_for` once the gateway stops.
async fn drive<F: Graceful>(
    mut conn: Pin<Box<F>>,
    activity: &Activity,
    deadlines: Deadlines,
    drain: &mut watch::Receiver<bool>,
    mut closing: bool,
) {
    let at = match closing {
        true => Instant::now() + deadlines.drain_for,
        false => activity.idle_for(deadlines.idle_timeout, &deadlines).0,
    };
    let timer = tokio::time::sleep_until(at);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = drain.changed(), if !closing => {
                conn.as_mut().shutdown_gracefully();
                closing = true;
                timer.as_mut().reset(Instant::now() + deadlines.drain_for);
            }
            _ = timer.as_mut() => {
                if closing {
                    tracing::debug!("connection did not close within its grace period; dropped");
                    return;
                }
                match activity.idle_for(deadlines.idle_timeout, &deadlines) {
                    (_, true) if activity.never_asked() => {
                        tracing::debug!("no request within listen.header_timeout of accept; closed");
                        return;
                    }
                    (_, true) => {
                        conn.as_mut().shutdown_gracefully();
                        closing = true;
                        timer.as_mut().reset(Instant::now() + deadlines.header_timeout);
                    }
                    (at, false) => timer.as_mut().reset(at),
                }
            }
        }
    }
}

/// Bytes not yet served: the rest of a prefix, then what hyper had read past its last request.
/// Copied into an allocation of their own: hyper's read buffer (16 KiB once grown) would
/// otherwise stay alive behind them, empty or not, for as long as the connection is parked.
fn join(prefix: Bytes, read_buf: Bytes) -> Bytes {
    if prefix.is_empty() && read_buf.is_empty() {
        return Bytes::new();
    }
    let mut both = BytesMut::with_capacity(prefix.len() + read_buf.len());
    both.extend_from_slice(&prefix);
    both.extend_from_slice(&read_buf);
    both.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_connection_keeps_its_unread_bytes_but_not_hypers_buffer() {
        // hyper's read buffer, grown, with 5 bytes of a next request left in it.
        let mut buf = BytesMut::with_capacity(16 * 1024);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\nGET /");
        let read_buf = buf.freeze().slice(18..);
        let kept = join(Bytes::new(), read_buf.clone());
        assert_eq!(&kept[..], b"GET /");
        assert_ne!(kept.as_ptr(), read_buf.as_ptr(), "a copy, not a view that keeps 16 KiB alive");
        // Nothing left: nothing kept.
        let empty = join(Bytes::new(), read_buf.slice(5..));
        assert!(empty.is_empty());
        // What was read ahead before hyper came first.
        assert_eq!(&join(Bytes::from_static(b"GE"), Bytes::from_static(b"T /"))[..], b"GET /");
    }
}
