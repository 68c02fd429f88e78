//! The upstream settings the client reads: where the app is, timeouts, pool size. Built from
//! `[upstream]` by `config`.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Upstream {
    /// scheme://host:port of the app; request paths are appended to it.
    pub authority: http::uri::Authority,
    pub scheme: http::uri::Scheme,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    /// At most this many exchanges (and so connections) with the app at once; more wait.
    pub max_connections: usize,
    /// How long a request waits for one of the `max_connections` (then 503).
    pub pool_timeout: Duration,
    /// Forward request headers whose name contains `_` (off: they are dropped, as nginx does,
    /// because many stacks read `_` as `-`).
    pub allow_underscores_in_headers: bool,
}
