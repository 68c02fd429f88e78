//! Reading small urlencoded forms, bounded in size.

use super::WebError;
use crate::body::Body;
use std::collections::HashMap;

const MAX_FORM_BYTES: usize = 16 * 1024;

/// The gateway's own forms and JSON bodies are small: they arrive whole within this, or the
/// request is refused (a client that stalls one cannot hold its connection busy for ever).
const READ_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

async fn read_small(body: Body, max: usize) -> Option<bytes::Bytes> {
    match tokio::time::timeout(READ_WITHIN, crate::body::read_at_most(body, max)).await {
        Ok(Ok(bytes)) => Some(bytes),
        _ => None,
    }
}

pub struct Form(HashMap<String, String>);

impl Form {
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or("")
    }
}

pub async fn read(body: Body) -> Result<Form, WebError> {
    let bytes =
        read_small(body, MAX_FORM_BYTES).await.ok_or(WebError::BadForm("the form is too large or was cut off"))?;
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(&bytes) {
        if map.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(WebError::BadForm("a form field was sent twice"));
        }
    }
    Ok(Form(map))
}

const MAX_JSON_BYTES: usize = 64 * 1024;

/// Reads a small JSON request body (the WebAuthn ceremony endpoints).
pub async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, WebError> {
    let bytes = read_small(body, MAX_JSON_BYTES)
        .await
        .ok_or(WebError::BadForm("the request body is too large, was cut off or took too long"))?;
    serde_json::from_slice(&bytes).map_err(|_| WebError::BadForm("the request body is not the JSON expected"))
}
