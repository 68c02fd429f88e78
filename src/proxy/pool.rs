//! A bounded pool of HTTP/1.1 connections to the upstream, on hyper's low-level client.
//!
//! Each serving thread has its own pool (its own `Live`), so nothing here is contended across
//! threads. At most `upstream.max_connections` exchanges are in flight at once, and so at most that many
//! connections are open: a connection is opened only by a request holding one of the permits
//! when no idle connection is left. Beyond the bound, requests queue (first come, first
//! served) for up to `upstream.pool_timeout`, then get 503 (`ProxyError::PoolFull`) rather than
//! open connections until the file descriptors run out.
//!
//! A permit is held from checkout until the response body has been relayed to its end (or
//! dropped); the connection then goes back to the idle list (most recent first, at most
//! `pool_max_idle_per_host`, each for at most `pool_idle_timeout`). A connection that switched
//! protocols (a WebSocket) leaves the pool and frees its permit: tunnels are bounded by the
//! listener's connection limit, not by this pool.

use super::ProxyError;
use crate::body::Body;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The pool's settings, from `[upstream]`.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// `host:port` to connect to.
    pub address: String,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
    pub max_connections: usize,
    pub pool_timeout: Duration,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

struct Inner {
    cfg: PoolConfig,
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
}

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// A connection checked out for one exchange, with the permit that counts it.
struct Lease {
    sender: SendRequest<Body>,
    permit: OwnedSemaphorePermit,
    reused: bool,
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Pool {
        let permits = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
        let inner = Arc::new(Inner { cfg, idle: Mutex::new(Vec::new()), permits });
        // Closes connections idle for longer than `pool_idle_timeout` even when no request
        // comes to find them; ends with the pool (a reload builds a new one).
        if tokio::runtime::Handle::try_current().is_ok() {
            let weak = Arc::downgrade(&inner);
            let every = (inner.cfg.idle_timeout / 2).max(Duration::from_millis(100));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(inner) = weak.upgrade() else { return };
                    let timeout = inner.cfg.idle_timeout;
                    lock(&inner.idle).retain(|c| !c.sender.is_closed() && c.since.elapsed() <= timeout);
                }
            });
        }
        Pool { inner }
    }

    /// Waits for a permit (at most `pool_timeout`).
    pub async fn permit(&self) -> Result<OwnedSemaphorePermit, ProxyError> {
        let cfg = &self.inner.cfg;
        let acquire = self.inner.permits.clone().acquire_owned();
        match tokio::time::timeout(cfg.pool_timeout, acquire).await {
            Ok(Ok(p)) => Ok(p),
            // The semaphore is never closed; a closed one would be as full as a full one.
            Ok(Err(_)) | Err(_) => Err(ProxyError::PoolFull {
                authority: cfg.address.clone(),
                max: cfg.max_connections,
                after: cfg.pool_timeout,
            }),
        }
    }

    /// Sends `req` on an idle connection, or on a new one. A request that a reused connection
    /// could not take (it closed as the request was sent: the upstream's keep-alive timeout
    /// racing ours) is sent once more on a new connection; nothing of it reached the upstream.
    pub async fn send(
        &self,
        permit: OwnedSemaphorePermit,
        req: Request<Body>,
    ) -> Result<(Response<Incoming>, Returner), ProxyError> {
        let mut lease = match self.idle().await {
            Some(sender) => Lease { sender, permit, reused: true },
            None => Lease { sender: self.connect().await?, permit, reused: false },
        };
        let response = match lease.sender.try_send_request(req).await {
            Ok(r) => r,
            Err(mut e) => match e.take_message() {
                Some(req) if lease.reused => {
                    lease = Lease { sender: self.connect().await?, permit: lease.permit, reused: false };
                    lease.sender.send_request(req).await.map_err(|e| self.failed(e))?
                }
                _ => return Err(self.failed(e.into_error())),
            },
        };
        let returner = Returner { pool: Some(self.inner.clone()), sender: Some(lease.sender), _permit: lease.permit };
        Ok((response, returner))
    }

    fn failed(&self, e: hyper::Error) -> ProxyError {
        if crate::body::caused_by_client_body(&e).is_some() {
            return ProxyError::ClientBody(Box::new(e));
        }
        ProxyError::Upstream { authority: self.inner.cfg.address.clone(), source: Box::new(e) }
    }

    /// The most recently used idle connection still open and fresh, ready to take a request.
    async fn idle(&self) -> Option<SendRequest<Body>> {
        loop {
            let candidate = {
                let mut idle = lock(&self.inner.idle);
                loop {
                    match idle.pop() {
                        None => return None,
                        Some(c) if c.sender.is_closed() || c.since.elapsed() > self.inner.cfg.idle_timeout => continue,
                        Some(c) => break c.sender,
                    }
                }
            };
            let mut sender = candidate;
            // Ready at once for a connection that finished its last exchange; an error for one
            // that is closing.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, ProxyError> {
        let cfg = &self.inner.cfg;
        let connect_error =
            |source: crate::body::BoxError| ProxyError::Connect { authority: cfg.address.clone(), source };
        let stream = match tokio::time::timeout(cfg.connect_timeout, tokio::net::TcpStream::connect(&cfg.address)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_error(Box::new(e))),
            Err(_) => return Err(connect_error(format!("no connection within {:?}", cfg.connect_timeout).into())),
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_error(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// Gives the connection back to the pool once the response body has been relayed to its end,
/// and frees the permit when dropped.
pub struct Returner {
    pool: Option<Arc<Inner>>,
    sender: Option<SendRequest<Body>>,
    _permit: OwnedSemaphorePermit,
}

impl Returner {
    /// The connection switched protocols: it leaves the pool (the permit goes with `self`).
    pub fn upgraded(mut self) {
        self.pool = None;
    }

    /// The exchange is over: an open connection goes back to the idle list.
    fn give_back(&mut self) {
        let (Some(pool), Some(sender)) = (self.pool.take(), self.sender.take()) else { return };
        if sender.is_closed() {
            return;
        }
        let mut idle = lock(&pool.idle);
        // Oldest first: the one at the front is the stalest.
        if idle.first().is_some_and(|c| c.since.elapsed() > pool.cfg.idle_timeout) {
            idle.remove(0);
        }
        if idle.len() < pool.cfg.max_idle {
            idle.push(Idle { sender, since: Instant::now() });
        }
    }
}

/// The upstream's response body; hands the connection back when it ends.
pub struct PooledBody {
    inner: Incoming,
    returner: Option<Returner>,
}

impl PooledBody {
    pub fn new(inner: Incoming, returner: Returner) -> PooledBody {
        let mut body = PooledBody { inner, returner: Some(returner) };
        if body.inner.is_end_stream() {
            body.end();
        }
        body
    }

    fn end(&mut self) {
        if let Some(mut r) = self.returner.take() {
            r.give_back();
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.end(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.end(),
            // A broken body: the connection is not reused (dropping the returner frees the permit).
            Poll::Ready(Some(Err(_))) => {
                self.returner = None;
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
