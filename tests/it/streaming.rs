//! Bodies stream through the gateway both ways, whatever their size.

use crate::support::client::BoxError;
use crate::support::{Harness, PATIENCE};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

const FIFTY_MB: u64 = 50 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
static ZEROS: [u8; CHUNK] = [b'z'; CHUNK];

#[tokio::test]
async fn a_50_mb_request_body_streams_to_the_app() {
    let h = Harness::start().await;
    let mut client = h.client();
    let chunks = (FIFTY_MB / CHUNK as u64) as usize;
    // A stream of chunks with no Content-Length: sent chunked, never one buffer.
    let stream =
        futures_util::stream::iter((0..chunks).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from_static(&ZEROS)))));
    let body = StreamBody::new(stream).boxed();
    let resp = client.request(Method::POST, "/sink", &[("content-type", "application/octet-stream")], body).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.json()["received"], serde_json::json!(52_428_800u64));
}

#[tokio::test]
async fn a_50_mb_response_streams_to_the_client() {
    let h = Harness::start().await;
    let mut client = h.client();
    let resp = client.send_raw(Method::GET, "/bytes/52428800", &[], crate::support::client::empty()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let mut body = resp.into_body();
    let (mut total, mut frames) = (0u64, 0u64);
    while let Some(frame) = tokio::time::timeout(PATIENCE, body.frame()).await.expect("a frame in time") {
        let frame = frame.expect("the body streams without error");
        if let Some(data) = frame.data_ref() {
            assert!(data.iter().all(|b| *b == b'a'), "only the app's bytes arrive");
            total += data.len() as u64;
            frames += 1;
        }
    }
    assert_eq!(total, FIFTY_MB);
    assert!(frames > 1, "the body arrived in many frames, as it streamed ({frames})");
}
