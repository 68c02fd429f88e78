//! The demo's transfers: the form (`/transfer`, a browser form POST) and a single-page version
//! (`/pay`, which sends JSON with `fetch` and includes stepgate-client.js for the step-up
//! popup). Each transfer done gets a number, so a replay would show as a second one.

use super::{escape, header_text, page, text, with_type};
use crate::body::Body;
use http::{HeaderMap, Response, StatusCode};
use std::sync::atomic::{AtomicU64, Ordering};

static DONE: AtomicU64 = AtomicU64::new(0);

const PAY_JS: &str = "\
(function () {\n\
  \"use strict\";\n\
  var form = document.getElementById(\"pay\");\n\
  var out = document.getElementById(\"result\");\n\
  form.addEventListener(\"submit\", async function (ev) {\n\
    ev.preventDefault();\n\
    out.textContent = \"Sending…\";\n\
    var body = JSON.stringify({ to: form.to.value, amount: form.amount.value });\n\
    var resp = await fetch(\"/transfer\", { method: \"POST\", headers: { \"Content-Type\": \"application/json\" }, body: body });\n\
    var data = await resp.json().catch(function () { return {}; });\n\
    out.textContent = resp.ok ? data.message : \"Not done (\" + resp.status + \"): \" + (data.error_description || data.error || \"\");\n\
  });\n\
})();\n";

/// `GET /pay`: the fetch-based transfer page.
pub fn page_html() -> Response<Body> {
    let content = "<p>The same transfer, sent by script with <code>fetch</code>: when the gateway asks \
         for a fresh proof, <code>stepgate-client.js</code> opens it in a popup and sends the \
         transfer again once you have confirmed.</p>\
         <form id=\"pay\">\
         <p><label>To <input name=\"to\" required></label></p>\
         <p><label>Amount <input name=\"amount\" inputmode=\"decimal\" required></label></p>\
         <p><button type=\"submit\">Transfer</button></p>\
         </form><p id=\"result\" role=\"status\"></p>\
         <script src=\"/.stepgate/static/stepgate-client.js\"></script>\
         <script src=\"/pay.js\"></script>";
    page("Transfer money (script)", content)
}

/// `GET /pay.js`.
pub fn script() -> Response<Body> {
    with_type(StatusCode::OK, "text/javascript; charset=utf-8", PAY_JS.to_string())
}

/// A transfer with its fields: numbered, and with the transaction the gateway confirmed.
pub fn done(headers: &HeaderMap, to: &str, amount: &str, json: bool) -> Response<Body> {
    let n = DONE.fetch_add(1, Ordering::SeqCst) + 1;
    let tx = header_text(headers, "x-stepgate-transaction").unwrap_or_else(|| "(none)".to_string());
    if json {
        let message = format!("Transferred {amount} to {to} (transfer #{n})");
        let v = serde_json::json!({ "message": message, "transfer": n, "transaction": tx });
        return with_type(StatusCode::OK, "application/json", v.to_string());
    }
    let content = format!(
        "<p>Transferred {} to {} (transfer #{n}).</p><p>Confirmed transaction: <code>{}</code></p>",
        escape(amount),
        escape(to),
        escape(&tx)
    );
    page("Transfer done", &content)
}

/// A JSON transfer: done, or a 400.
pub fn json_transfer(headers: &HeaderMap, bytes: &[u8]) -> Response<Body> {
    match json_fields(bytes) {
        Ok((to, amount)) => done(headers, &to, &amount, true),
        Err(why) => text(StatusCode::BAD_REQUEST, why),
    }
}

fn json_fields(bytes: &[u8]) -> Result<(String, String), &'static str> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| "the body is not JSON")?;
    let field = |k: &str| match &v[k] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match (field("to"), field("amount")) {
        (Some(to), Some(amount)) if !to.is_empty() && !amount.is_empty() => Ok((to, amount)),
        _ => Err("the body needs the fields `to` and `amount`"),
    }
}
