//! Audit records written in this process, captured in memory. The audit sink is process-wide
//! (like the binary's): it is installed once, here, and tests pick their records by request id
//! or by a value of their own (a config's hash).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

fn records() -> &'static Mutex<Vec<serde_json::Value>> {
    static RECORDS: OnceLock<Mutex<Vec<serde_json::Value>>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        stepgate::audit::install(Box::new(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).expect("an audit line is one JSON object");
            assert_eq!(v["target"], "audit");
            records().lock().unwrap().push(v["fields"].clone());
        }));
        Mutex::new(Vec::new())
    })
}

/// Starts capturing (call before the records of interest are written).
pub fn capture() {
    let _ = records();
}

/// The captured records for which `pick` holds.
pub fn matching(pick: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
    records().lock().unwrap().iter().filter(|v| pick(v)).cloned().collect()
}

/// The records of the request whose id is `id`.
pub fn for_request(id: &str) -> Vec<serde_json::Value> {
    matching(|v| v["request_id"] == id)
}

/// Waits (up to `crate::support::PATIENCE`) for a record for which `pick` holds.
pub async fn wait_for(pick: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    loop {
        if let Some(v) = matching(&pick).pop() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "no such audit record in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
