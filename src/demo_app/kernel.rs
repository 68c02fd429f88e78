//! `/kernel` (and `/admin/kernel`): a Jupyter-style endpoint, a page and a real WebSocket that
//! runs what it is sent (small sums such as `2+3`) and answers with the result. It stands for
//! the long-lived connections an app keeps open behind the gateway: the gateway must close it
//! when the proof that opened it ends.

use super::{page, stop_requested, text};
use crate::body::{self, Body};
use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The page (a plain GET) or the WebSocket (an upgrade).
pub fn handle(mut req: Request<Incoming>, mut stopped: watch::Receiver<bool>) -> Response<Body> {
    if !super::is_websocket_upgrade(&req) {
        return kernel_page(req.uri().path());
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).map(|k| derive_accept_key(k.as_bytes())) else {
        return text(StatusCode::BAD_REQUEST, "a WebSocket handshake needs Sec-WebSocket-Key");
    };
    let Ok(accept) = HeaderValue::from_str(&key) else {
        return text(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        loop {
            let msg = tokio::select! {
                m = ws.next() => m,
                _ = stop_requested(&mut stopped) => break,
            };
            match msg {
                Some(Ok(Message::Text(code))) => {
                    if ws.send(Message::text(run(code.as_str()))).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
        let _ = ws.close(None).await;
    });
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Runs one line: `a+b`, `a-b` or `a*b` on integers gives the result; anything else is
/// echoed back.
pub fn run(code: &str) -> String {
    let code = code.trim();
    for op in ['+', '-', '*'] {
        if let Some((a, b)) = code.split_once(op) {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                let v = match op {
                    '+' => a.checked_add(b),
                    '-' => a.checked_sub(b),
                    _ => a.checked_mul(b),
                };
                return v.map_or_else(|| "overflow".to_string(), |v| v.to_string());
            }
        }
    }
    format!("echo: {code}")
}

fn kernel_page(path: &str) -> Response<Body> {
    let content = format!(
        "<p>A Jupyter-style kernel: what you type runs on the server over a WebSocket, as long \
         as the gateway lets the connection live. Sign out in another tab and watch it close.</p>\
         <form id=\"run\"><input id=\"code\" value=\"2+3\" autocomplete=\"off\"> <button>Run</button></form>\
         <pre id=\"out\"></pre>\
         <script>\
         const out = document.getElementById('out');\
         const log = (t) => {{ out.textContent += t + '\\n'; }};\
         const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '{path}');\
         ws.onopen = () => log('connected');\
         ws.onmessage = (e) => log('< ' + e.data);\
         ws.onclose = () => log('connection closed');\
         document.getElementById('run').onsubmit = (e) => {{ e.preventDefault(); const c = document.getElementById('code').value; log('> ' + c); ws.send(c); }};\
         </script>"
    );
    page("Kernel", &content)
}

#[cfg(test)]
mod tests {
    use super::run;

    #[test]
    fn runs_small_sums_and_echoes_the_rest() {
        assert_eq!(run("2+3"), "5");
        assert_eq!(run(" 7 * 6 "), "42");
        assert_eq!(run("10-12"), "-2");
        assert_eq!(run("9223372036854775807+1"), "overflow");
        assert_eq!(run("print('hi')"), "echo: print('hi')");
    }
}
