//! An app that remembers: a relay in front of the demo app that records every request it is
//! sent (method, target, headers) before passing it on. Behind a front proxy, what it saw is
//! exactly what reached the app.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

/// One request as the app received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Lower-case names, in arrival order, values lossily as text.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// Every value of `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }
}

/// The relay; it serves until dropped.
pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

type RelayBody = BoxBody<Bytes, hyper::Error>;

impl Recorder {
    pub async fn start(app: SocketAddr) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the recorder");
        let addr = listener.local_addr().expect("the recorder's address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| relay(req, app, log.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Recorder { addr, seen, task }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the recorder's lock").clone()
    }

    pub fn clear(&self) {
        self.seen.lock().expect("the recorder's lock").clear();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    req: Request<Incoming>,
    app: SocketAddr,
    log: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<RelayBody>, hyper::Error> {
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let target = req.uri().to_string();
    log.lock().expect("the recorder's lock").push(Seen { method: req.method().to_string(), target, headers });
    let Ok(stream) = TcpStream::connect(app).await else {
        return Ok(bad_gateway("the demo app is not listening"));
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await?;
    Ok(resp.map(BodyExt::boxed))
}

fn bad_gateway(why: &'static str) -> Response<RelayBody> {
    let body = Full::new(Bytes::from_static(why.as_bytes())).map_err(|never| match never {}).boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
    resp
}
