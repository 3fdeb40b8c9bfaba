//! The control socket, served: a Unix socket in the profile directory
//! (0600) that carries JSON request lines and answers each with a JSON
//! reply line.
//!
//! A connection may carry one request (what `skein send` does) or many:
//! requests are answered concurrently, as each completes, so a script or
//! a benchmark keeps many in flight on one connection. A request's
//! `"req_id"` (any JSON value) comes back in its reply, to match them up.
//! At most [`MAX_IN_FLIGHT`] requests per connection are in progress at
//! once; reading more waits until one is answered.

use super::{ControlCall, DaemonError};
use crate::control::{ControlReply, ControlRequest, MAX_LINE};
use serde_json::Value;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Requests one connection may have in progress at once.
pub const MAX_IN_FLIGHT: usize = 256;

/// Binds the socket at `path`, refusing when a live daemon answers there.
pub(super) async fn bind(path: &std::path::Path) -> Result<UnixListener, DaemonError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |reason: String| DaemonError::Socket { path: path.display().to_string(), reason };
    if path.exists() {
        // A live daemon answers; a stale socket from a crash does not.
        if UnixStream::connect(path).await.is_ok() {
            return Err(err("another daemon is already running for this profile".into()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| err(e.to_string()))?;
    Ok(listener)
}

/// Serves every connection to the socket.
pub(super) async fn accept_loop(listener: UnixListener, calls: mpsc::Sender<ControlCall>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, calls.clone()));
    }
}

/// Answers the requests on one connection until the client closes it.
async fn serve(stream: UnixStream, calls: mpsc::Sender<ControlCall>) {
    let (r, mut w) = stream.into_split();
    let (replies, mut outgoing) = mpsc::channel::<Vec<u8>>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if w.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut reader = BufReader::new(r);
    loop {
        let mut line = String::new();
        let read = (&mut reader).take(MAX_LINE as u64).read_line(&mut line).await;
        let bad = match read {
            Ok(0) => break,
            Ok(_) if !line.ends_with('\n') && line.len() >= MAX_LINE => {
                Some(format!("a request line may be at most {MAX_LINE} bytes"))
            }
            Ok(_) => None,
            Err(e) => Some(format!("unreadable request: {e}")),
        };
        if let Some(why) = bad {
            // The rest of the stream cannot be trusted to be line-aligned:
            // answer, end the replies, and discard what the client still
            // sends (closing on unread input would reset the connection
            // before the client reads the answer).
            let _ = replies.send(encode(ControlReply::err("malformed", why), None)).await;
            drop(replies);
            let _ = writer.await;
            let mut sink = tokio::io::sink();
            let drain = tokio::io::copy(&mut reader, &mut sink);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
            return;
        }
        if line.trim().is_empty() {
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let (calls, replies) = (calls.clone(), replies.clone());
        tokio::spawn(async move {
            let (req_id, reply) = answer(&line, &calls).await;
            let _ = replies.send(encode(reply, req_id)).await;
            drop(slot);
        });
    }
    drop(replies);
    let _ = writer.await;
}

/// One request line's answer, with its `req_id` if it had one.
async fn answer(line: &str, calls: &mpsc::Sender<ControlCall>) -> (Option<Value>, ControlReply) {
    let mut v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return (None, ControlReply::err("malformed", format!("unreadable request: {e}"))),
    };
    let req_id = v.as_object_mut().and_then(|o| o.remove("req_id"));
    let req = match serde_json::from_value::<ControlRequest>(v) {
        Ok(r) => r,
        Err(e) => return (req_id, ControlReply::err("malformed", format!("unreadable request: {e}"))),
    };
    let (tx, rx) = oneshot::channel();
    if calls.send(ControlCall { req, reply: tx }).await.is_err() {
        return (req_id, ControlReply::err("unavailable", "the daemon is stopping"));
    }
    (req_id, rx.await.unwrap_or_else(|_| ControlReply::err("unavailable", "the daemon is stopping")))
}

/// A reply line.
fn encode(reply: ControlReply, req_id: Option<Value>) -> Vec<u8> {
    let mut v = serde_json::to_value(&reply).unwrap_or(Value::Null);
    if let (Some(id), Some(o)) = (req_id, v.as_object_mut()) {
        o.insert("req_id".into(), id);
    }
    let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
