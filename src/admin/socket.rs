//! The running gateway's admin channel: a Unix domain socket, mode 0600, that only its owner's
//! user can use (connections from another uid are refused too, in case the mode was changed).
//! One JSON [`Request`] line in, one JSON [`Reply`] line out, then the connection closes.

use super::{AdminError, Request};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// The longest request line read.
const MAX_LINE: u64 = 4096;
/// How long the CLI waits for the gateway's answer (ending sessions scans them all).
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub text: String,
}

/// The listening socket; removed (with its file) on `shutdown` or drop.
pub struct AdminSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl AdminSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn shutdown(self) {}
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn failed(path: &Path, message: impl std::fmt::Display) -> AdminError {
    AdminError::Socket { path: path.display().to_string(), message: message.to_string() }
}

/// Listens on `path` (replacing a stale socket file left by a gateway that died; refusing when
/// a gateway answers there, or when the path is something else) and serves each request with
/// `handle`. Call inside a tokio runtime.
pub fn listen<H, F>(path: &Path, handle: H) -> Result<AdminSocket, AdminError>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Result<String, AdminError>> + Send + 'static,
{
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(failed(path, "exists and is not a socket; set admin.socket to another path"));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(failed(path, "another gateway answers there; set admin.socket to another path"));
        }
        std::fs::remove_file(path).map_err(|e| failed(path, format!("cannot remove the stale socket: {e}")))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| failed(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| failed(path, e))?;
    let owner = std::fs::metadata(path).map_err(|e| failed(path, e))?.uid();
    let handle = std::sync::Arc::new(handle);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if stream.peer_cred().map(|c| c.uid()).ok() != Some(owner) {
                tracing::warn!("admin socket: refused a connection from another user");
                continue;
            }
            let handle = handle.clone();
            tokio::spawn(async move { serve_one(stream, &*handle).await });
        }
    });
    Ok(AdminSocket { path: path.to_path_buf(), task })
}

async fn serve_one<H, F>(stream: tokio::net::UnixStream, handle: &H)
where
    H: Fn(Request) -> F,
    F: Future<Output = Result<String, AdminError>>,
{
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
    let reply = match reader.read_line(&mut line).await {
        Err(e) => Reply { ok: false, text: format!("reading the request: {e}") },
        Ok(_) => match serde_json::from_str::<Request>(line.trim_end()) {
            Err(e) => Reply { ok: false, text: format!("not an admin request: {e}") },
            Ok(request) => match handle(request).await {
                Ok(text) => Reply { ok: true, text },
                Err(e) => Reply { ok: false, text: e.to_string() },
            },
        },
    };
    let Ok(mut out) = serde_json::to_vec(&reply) else { return };
    out.push(b'\n');
    let _ = write.write_all(&out).await;
    let _ = write.shutdown().await;
}

/// Sends `request` to the gateway listening at `path`: None when none listens there (no
/// socket file, or nobody accepts on it), so the caller does the work itself.
pub fn send(path: &Path, request: &Request) -> Result<Option<Reply>, AdminError> {
    use std::io::ErrorKind::{ConnectionRefused, NotFound};
    let stream = match std::os::unix::net::UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), NotFound | ConnectionRefused) => return Ok(None),
        Err(e) => return Err(failed(path, e)),
    };
    stream.set_read_timeout(Some(ANSWER_WITHIN)).map_err(|e| failed(path, e))?;
    let mut line = serde_json::to_vec(request).map_err(|e| failed(path, e))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(|e| failed(path, e))?;
    let mut answer = String::new();
    std::io::BufReader::new(&stream).read_line(&mut answer).map_err(|e| failed(path, format!("no answer: {e}")))?;
    serde_json::from_str(answer.trim_end())
        .map(Some)
        .map_err(|e| failed(path, format!("a reply that is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_is_answered_and_the_socket_is_private_and_removed_on_shutdown() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        assert!(send(&path, &Request::List).unwrap().is_none(), "nobody listens yet");
        let socket = listen(&path, |r: Request| async move { Ok(format!("{r:?}")) }).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let req = Request::Unlock { user: "alice".into() };
        let p = path.clone();
        let reply = tokio::task::spawn_blocking(move || send(&p, &req)).await.unwrap().unwrap().unwrap();
        assert!(reply.ok && reply.text.contains("alice"), "{reply:?}");
        let again = listen(&path, |_: Request| async { Ok(String::new()) });
        assert!(again.err().unwrap().to_string().contains("another gateway answers"));
        socket.shutdown();
        assert!(!path.exists(), "removed on shutdown");
    }

    #[test]
    fn the_wire_format_is_one_tagged_json_object() {
        let r = Request::ResetFactors { user: "bob".into() };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"op":"reset-factors","user":"bob"}"#);
        assert_eq!(serde_json::to_string(&Request::ReloadUsers).unwrap(), r#"{"op":"reload-users"}"#);
    }
}
