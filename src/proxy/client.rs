//! The pooled keep-alive client to the upstream, and `forward`.

use super::config::Upstream;
use super::{headers, upgrade, ForwardTarget, ProxyError, Upgrade};
use crate::body::{self, Body};
use http::header::{HeaderValue, COOKIE, HOST};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpConnector, Body>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    response_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(cfg: &Upstream) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
            .build(connector);
        UpstreamClient {
            client,
            scheme: cfg.scheme.clone(),
            authority: cfg.authority.clone(),
            response_timeout: cfg.response_timeout,
        }
    }

    /// Sends `req` to the upstream at `target.path_and_query` and returns its response, both
    /// bodies streaming. Hop-by-hop headers are removed both ways. For an upgrade (see
    /// [`Upgrade::WebSocket`]) the downstream `OnUpgrade` is taken from `req`'s
    /// extensions, where hyper's server put it; on a 101 the two connections are spliced in
    /// a spawned task.
    pub async fn forward(&self, req: Request<Body>, target: ForwardTarget) -> Result<Response<Body>, ProxyError> {
        let (mut parts, body) = req.into_parts();

        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(target.path_and_query.as_str())
            .build()
            .map_err(ProxyError::BadTarget)?;

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
        let response = match tokio::time::timeout(self.response_timeout, self.client.request(out)).await {
            Err(_) => {
                return Err(ProxyError::Timeout { authority: authority.to_string(), after: self.response_timeout })
            }
            Ok(Err(e)) if e.is_connect() => {
                return Err(ProxyError::Connect { authority: authority.to_string(), source: Box::new(e) })
            }
            Ok(Err(e)) if body::caused_by_client_body(&e).is_some() => return Err(ProxyError::ClientBody(Box::new(e))),
            Ok(Err(e)) => return Err(ProxyError::Upstream { authority: authority.to_string(), source: Box::new(e) }),
            Ok(Ok(r)) => r,
        };

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
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
        Ok(Response::from_parts(parts, body::stream(body)))
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
