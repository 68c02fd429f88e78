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
    /// Forward request headers whose name contains `_` (off: they are dropped, as nginx does,
    /// because many stacks read `_` as `-`).
    pub allow_underscores_in_headers: bool,
}
