//! Upstream forwarding: a bounded pool of HTTP/1.1 connections, header hygiene, upgrades, streaming bodies.
//!
//! What the caller does before [`UpstreamClient::forward`]:
//! 1. `headers::strip_spoofable_headers` on the client's headers, then set its own
//!    `X-Stepgate-*` / identity headers;
//! 2. `client_ip::client_ip` + `headers::set_forwarded`;
//! 3. turn `Request<Incoming>` into `Request<Body>` with `req.map(body::stream)`, which keeps
//!    the request's extensions: hyper's `OnUpgrade` lives there and `forward` takes it from
//!    there when `ForwardTarget::upgrade` is set (the server must serve connections with
//!    upgrades enabled).
//!
//! `forward` itself rewrites the URI, removes hop-by-hop headers both ways, streams both
//! bodies and applies the response timeout.

pub mod client;
pub mod client_ip;
pub mod config;
pub mod headers;
pub mod pool;
pub mod upgrade;

#[cfg(test)]
mod tests;

pub use client::UpstreamClient;

use crate::body::BoxError;
use std::time::Duration;

/// Where a request goes upstream.
pub struct ForwardTarget {
    /// Already normalized by the caller; sent exactly as given (e.g. `/a/b?x=1`).
    pub path_and_query: String,
    /// Whether the request may switch protocols.
    pub upgrade: Upgrade,
}

/// What the caller allows in the way of a protocol switch.
pub enum Upgrade {
    /// A plain request: `Upgrade` is stripped, and a 101 from the upstream is refused (502).
    No,
    /// The caller checked that the request is a WebSocket handshake
    /// ([`upgrade::is_websocket_handshake`]). A 101 that agrees to `websocket` is relayed and
    /// the connections spliced until either side closes or `close_when` resolves.
    WebSocket { close_when: Option<upgrade::CloseWhen> },
}

/// Why forwarding failed. `status()` (in `respond`) maps it to 400/502/504.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream did not send response headers within `upstream.response_timeout`.
    #[error("upstream {authority} sent no response headers within {after:?}")]
    Timeout { authority: String, after: Duration },
    /// All `upstream.max_connections` connections stayed busy for `upstream.pool_timeout` (503).
    #[error("all {max} connections to upstream {authority} stayed busy for {after:?}")]
    PoolFull { authority: String, max: usize, after: Duration },
    /// No connection to the upstream (refused, unreachable, connect timeout).
    #[error("cannot connect to upstream {authority}: {source}")]
    Connect { authority: String, source: BoxError },
    /// Connected, but the exchange failed (closed early, malformed response, ...).
    #[error("upstream {authority} failed: {source}")]
    Upstream { authority: String, source: BoxError },
    /// The client's request body broke off or was malformed (a bad chunk size, say) while it
    /// was being relayed: the client's fault, not the upstream's.
    #[error("the client's request body failed: {0}")]
    ClientBody(BoxError),
    /// The path the caller asked for does not make a valid URI: the client's fault.
    #[error("cannot build the upstream URI: {0}")]
    BadTarget(#[source] http::Error),
}
