//! The client to the upstream (a bounded keep-alive pool, see `pool`), and `forward`.

use super::config::Upstream;
use super::pool::{Pool, PoolConfig, PooledBody};
use super::{headers, upgrade, ForwardTarget, ProxyError, Upgrade};
use crate::body::{self, Body};
use http::header::{HeaderValue, COOKIE, HOST};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use std::time::Duration;

#[derive(Clone)]
pub struct UpstreamClient {
    pool: Pool,
    authority: http::uri::Authority,
    host: HeaderValue,
    response_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(cfg: &Upstream) -> Self {
        let port = cfg.authority.port_u16().unwrap_or(80);
        let address = format!("{}:{port}", cfg.authority.host());
        let pool = Pool::new(PoolConfig {
            address,
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.pool_idle_timeout,
            max_idle: cfg.pool_max_idle_per_host,
            max_connections: cfg.max_connections,
            pool_timeout: cfg.pool_timeout,
        });
        let host = HeaderValue::from_str(cfg.authority.as_str()).unwrap_or(HeaderValue::from_static("localhost"));
        UpstreamClient { pool, authority: cfg.authority.clone(), host, response_timeout: cfg.response_timeout }
    }

    /// Sends `req` to the upstream at `target.path_and_query` and returns its response, both
    /// bodies streaming. Hop-by-hop headers are removed both ways. For an upgrade (see
    /// [`Upgrade::WebSocket`]) the downstream `OnUpgrade` is taken from `req`'s
    /// extensions, where hyper's server put it; on a 101 the two connections are spliced in
    /// a spawned task.
    pub async fn forward(&self, req: Request<Body>, target: ForwardTarget) -> Result<Response<Body>, ProxyError> {
        let (mut parts, body) = req.into_parts();

        // Origin form (`/path?query`), as HTTP/1.1 sends it to an origin server.
        let uri = Uri::builder().path_and_query(target.path_and_query).build().map_err(ProxyError::BadTarget)?;

        // The upgrade headers survive only if the caller checked the request is a WebSocket
        // handshake and hyper's server can hand us the connection afterwards.
        let upgrade: Option<(OnUpgrade, Option<upgrade::CloseWhen>)> = match target.upgrade {
            Upgrade::WebSocket { close_when } => parts.extensions.remove::<OnUpgrade>().map(|on| (on, close_when)),
            Upgrade::No => None,
        };

        let mut headers = std::mem::take(&mut parts.headers);
        headers::remove_hop_by_hop(&mut headers);
        if upgrade.is_some() {
            upgrade::restore_headers(&mut headers);
        }

        // Host: the client's host rather than the upstream authority. Apps behind a proxy build
        // absolute URLs, cookies and CSRF origins from their public host; X-Forwarded-Host
        // carries it too. A request target with an authority (HTTP/1.1 absolute form, HTTP/2
        // :authority) names the host itself, and the gateway has checked that any Host header
        // names the same one: the authority is what the upstream gets (RFC 9112 §3.2.2).
        if let Some(host) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            headers.insert(HOST, host);
        } else if !headers.contains_key(HOST) {
            headers.insert(HOST, self.host.clone()); // an HTTP/1.0 client may send none
        }

        // HTTP/2 may split Cookie into several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
        if parts.version == Version::HTTP_2 && headers.get_all(COOKIE).iter().count() > 1 {
            let joined: Vec<&[u8]> = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes).collect();
            if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
                headers.insert(COOKIE, v);
            }
        }

        // A fresh request: no extensions from the downstream connection leak into the client.
        let mut out = Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.version_mut() = Version::HTTP_11; // the upstream speaks HTTP/1.1, whatever the client spoke
        *out.headers_mut() = headers;

        let authority = self.authority.as_str();
        // The wait for a pooled connection has its own bound (`upstream.pool_timeout`, then
        // 503); connecting and the response headers share `upstream.response_timeout`.
        let permit = self.pool.permit().await?;
        let (response, returner) = match tokio::time::timeout(self.response_timeout, self.pool.send(permit, out)).await
        {
            Err(_) => {
                return Err(ProxyError::Timeout { authority: authority.to_string(), after: self.response_timeout })
            }
            Ok(r) => r?,
        };

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            returner.upgraded();
            return match upgrade {
                Some((downstream, close_when)) if upgrade::agreed_to_websocket(response.headers()) => {
                    Ok(switch(response, downstream, close_when))
                }
                // A 101 to another protocol than the one the gateway let through is not relayed.
                Some(_) => Err(ProxyError::Upstream {
                    authority: authority.to_string(),
                    source: "upstream switched to another protocol than websocket".into(),
                }),
                // A 101 we did not ask for cannot be relayed: the client is not switching.
                None => Err(ProxyError::Upstream {
                    authority: authority.to_string(),
                    source: "upstream switched protocols without an upgrade request".into(),
                }),
            };
        }

        let (mut parts, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body::stream(PooledBody::new(body, returner))))
    }
}

/// Relays a 101: the client gets the upstream's answer, and the connections are spliced.
fn switch(
    mut response: Response<hyper::body::Incoming>,
    downstream: OnUpgrade,
    close_when: Option<upgrade::CloseWhen>,
) -> Response<Body> {
    let upstream = hyper::upgrade::on(&mut response);
    upgrade::spawn_tunnel(downstream, upstream, close_when);
    let (mut parts, _) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers);
    upgrade::restore_headers(&mut parts.headers);
    parts.extensions = http::Extensions::new();
    Response::from_parts(parts, body::empty())
}
