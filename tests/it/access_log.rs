//! The access log: one JSON line per request, public routes and refusals too, with the fields
//! the README lists; the query only when asked for.

use crate::support::flows::signed_in;
use crate::support::{Harness, Options};
use http::StatusCode;
use std::sync::{Mutex, OnceLock};

/// Every access line the process writes (the sink is process-wide, like the binary's).
fn lines() -> &'static Mutex<Vec<serde_json::Value>> {
    static LINES: OnceLock<Mutex<Vec<serde_json::Value>>> = OnceLock::new();
    LINES.get_or_init(|| {
        stepgate::access_log::install(Box::new(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).expect("an access line is one JSON object");
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line each");
            lines().lock().unwrap().push(v);
        }));
        Mutex::new(Vec::new())
    })
}

/// The access line's fields for the request whose id is `id`.
fn line_for(id: &str) -> serde_json::Value {
    let all = lines().lock().unwrap();
    let found: Vec<_> = all.iter().filter(|v| v["fields"]["request_id"] == id).cloned().collect();
    assert_eq!(found.len(), 1, "exactly one access line for request {id}");
    assert_eq!(found[0]["target"], "access");
    found[0]["fields"].clone()
}

#[tokio::test]
async fn every_request_gets_one_line_with_its_decision_and_no_query() {
    let _ = lines();
    let h = Harness::start().await;
    let mut anon = h.client();
    let r = anon.get_with("/public/x?token=secret", &[("user-agent", "curl/8.0")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let f = line_for(r.header("x-request-id").unwrap());
    assert_eq!(f["method"], "GET");
    assert_eq!(f["host"], "stepgate.test");
    assert_eq!(f["path"], "/public/x");
    assert!(f.get("query").is_none(), "the query is off by default: {f}");
    assert!(!f.to_string().contains("secret"));
    assert_eq!(f["status"], 200);
    assert_eq!(f["decision"], "forward");
    assert_eq!(f["rule"], "public");
    assert_eq!(f["mode"], "proxy");
    assert_eq!(f["user"], "-");
    assert_eq!(f["user_agent"], "curl/8.0");
    assert_eq!(f["client_ip"], "127.0.0.1");
    assert!(f["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));

    let mut c = signed_in(&h).await;
    let r = c.get_with("/transfer", &[("accept", "application/json")]).await;
    let f = line_for(r.header("x-request-id").unwrap());
    assert_eq!((f["status"].as_u64(), &f["decision"], &f["user"]), (Some(401), &"challenge".into(), &"alice".into()));
    // A refusal before evaluation is logged as it was asked.
    let r = anon.get("/admin%2fx").await;
    let f = line_for(r.header("x-request-id").unwrap());
    assert_eq!(
        (f["status"].as_u64(), &f["decision"], &f["path"]),
        (Some(400), &"bad_request".into(), &"/admin%2fx".into())
    );
    // A gateway page.
    let r = anon.get("/.stepgate/login").await;
    let f = line_for(r.header("x-request-id").unwrap());
    assert_eq!((f["decision"].as_str(), f["bytes"].as_u64().is_some()), (Some("page"), true));
}

#[tokio::test]
async fn the_query_is_written_only_when_asked_for_and_the_log_can_be_off() {
    let _ = lines();
    let on = Options { extra: "[access_log]\nquery = true\n".into(), ..Options::default() };
    let h = Harness::with(on).await;
    let r = h.client().get("/public/x?page=2").await;
    assert_eq!(line_for(r.header("x-request-id").unwrap())["query"], "page=2");

    let off = Options { extra: "[access_log]\nenabled = false\n".into(), ..Options::default() };
    let h = Harness::with(off).await;
    let r = h.client().get("/public/x").await;
    let id = r.header("x-request-id").unwrap().to_string();
    assert!(lines().lock().unwrap().iter().all(|v| v["fields"]["request_id"] != id.as_str()));
}
