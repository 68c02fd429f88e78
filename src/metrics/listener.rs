//! The `[metrics]` listener: `GET /metrics` (and HEAD) in the Prometheus text format, or in
//! OpenMetrics for a scraper that asks for it; anything else is a 404. Plain HTTP/1.1, apart
//! from the gateway's listener, so it can stay on a private address.

use super::{Format, SharedMetrics};
use crate::body::{self, Body};
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a scrape in flight gets to finish after a shutdown.
const DRAIN_FOR: Duration = Duration::from_secs(5);

/// A running metrics listener.
pub struct MetricsServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Stops accepting, lets scrapes in flight finish, and waits.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }
}

/// Binds `addr` (`metrics.address`) and serves `metrics` there until `shutdown()`. Clients get
/// `header_timeout` to send their request headers, as on the gateway's listener.
pub async fn start(
    addr: SocketAddr,
    metrics: SharedMetrics,
    header_timeout: Duration,
) -> Result<MetricsServer, String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("metrics.address {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| format!("metrics.address {addr}: {e}"))?;
    let (stop, stop_rx) = watch::channel(false);
    let done = tokio::spawn(serve(listener, metrics, header_timeout, stop_rx));
    Ok(MetricsServer { addr: bound, stop, done })
}

async fn serve(
    listener: TcpListener,
    metrics: SharedMetrics,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let metrics = metrics.clone();
                let service = service_fn(move |req| {
                    let resp = respond(&metrics, &req);
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "metrics connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_FOR, graceful.shutdown()).await;
}

/// The answer to one request on the metrics listener.
pub fn respond<B>(metrics: &SharedMetrics, req: &Request<B>) -> Response<Body> {
    let scrape = matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path() == "/metrics";
    if !scrape {
        let mut resp = Response::new(body::full("not found: the metrics are at GET /metrics\n"));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return resp;
    }
    let format = negotiate(req.headers().get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()));
    let mut resp = Response::new(body::full(metrics.encode(format)));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// OpenMetrics when the scraper prefers it in `Accept` (Prometheus does), else the classic
/// text format, which every scraper and `promtool check metrics` read; a tie goes to the classic one.
pub fn negotiate<'a>(accept: impl Iterator<Item = &'a str>) -> Format {
    let (mut openmetrics_q, mut text_q) = (0.0f32, 0.0f32);
    for range in accept.flat_map(|v| v.split(',')) {
        let mut params = range.split(';');
        let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics_q = openmetrics_q.max(q),
            "text/plain" | "text/*" | "*/*" => text_q = text_q.max(q),
            _ => {}
        }
    }
    if openmetrics_q > 0.0 && openmetrics_q > text_q {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}
