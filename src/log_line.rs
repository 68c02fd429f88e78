//! The JSON line shared by audit records and access lines: the same envelope as the other log
//! lines (`timestamp`, `level`, `fields`, `target`), serialized straight into one buffer, and
//! the process-wide sink such lines go to (the binary installs its log writer at start-up).

use serde::Serialize;
use std::sync::OnceLock;
use std::time::SystemTime;

/// A function that takes one whole JSON line (newline included).
pub type Write = Box<dyn Fn(&[u8]) + Send + Sync>;

/// Where one kind of line goes. Until a writer is installed (and when the operator turned the
/// kind off), lines go nowhere.
pub struct Sink(OnceLock<Write>);

impl Sink {
    pub const fn new() -> Sink {
        Sink(OnceLock::new())
    }

    /// Sends lines to `write` from now on; the first installation wins.
    pub fn install(&self, write: Write) {
        let _ = self.0.set(write);
    }

    pub fn is_installed(&self) -> bool {
        self.0.get().is_some()
    }

    pub fn send(&self, line: &[u8]) {
        if let Some(write) = self.0.get() {
            write(line);
        }
    }
}

impl Default for Sink {
    fn default() -> Self {
        Sink::new()
    }
}

/// `fields` as one JSON line under `target`, stamped `at` (RFC 3339, microseconds, UTC).
pub fn render<F: Serialize>(target: &'static str, fields: &F, at: SystemTime, capacity: usize) -> Vec<u8> {
    #[derive(Serialize)]
    struct Line<'a, F> {
        timestamp: String,
        level: &'static str,
        fields: &'a F,
        target: &'static str,
    }
    let timestamp = chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut buf = Vec::with_capacity(capacity);
    // Plain strings, numbers and addresses: serializing into a Vec cannot fail; if a field
    // type ever could, the line is dropped rather than half written.
    if serde_json::to_writer(&mut buf, &Line { timestamp, level: "INFO", fields, target }).is_err() {
        buf.clear();
        return buf;
    }
    buf.push(b'\n');
    buf
}
