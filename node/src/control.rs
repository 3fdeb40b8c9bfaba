//! The daemon's control socket: a Unix socket in the profile directory that
//! carries JSON request lines, each answered by a JSON reply line. [`call`]
//! asks one question per connection; a [`Connection`] keeps many in flight,
//! matched up by `req_id`.
//!
//! Only the profile's owner can reach it: the profile directory is 0700 and
//! the socket is made 0600.

use serde::{Deserialize, Serialize};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;

/// A password on its way to the daemon: never shown in debug output.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Requests the CLI sends to a running daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Who we are and where we are connected.
    Info,
    /// Everyone's presence.
    Presence,
    /// Set our status.
    Status {
        /// `online`, `away` or `busy`.
        status: String,
        /// Optional note.
        note: Option<String>,
    },
    /// Search the directory.
    Directory {
        /// Search text.
        query: Option<String>,
        /// Department filter.
        dept: Option<String>,
    },
    /// List departments.
    Departments,
    /// Log out and stop the daemon.
    Logout,
    /// A group request for the tracker (`GroupCreate`, `GroupList` or
    /// `GroupUpdate`), postcard-encoded as hex; answered with the
    /// tracker's response in the same form, under `"response"`.
    Group {
        /// The encoded request.
        request: String,
    },
    /// Change the password (the user's other devices are signed out).
    ChangePassword {
        /// The current password.
        old: Secret,
        /// The new one.
        new: Secret,
    },
    /// Send a text message; answered once delivered or queued.
    Send {
        /// Recipient user.
        to: String,
        /// The text.
        text: String,
    },
    /// Verified peers and their paths.
    Peers,
    /// Mark a conversation read and tell the sender.
    Read {
        /// The other user.
        user: String,
    },
    /// Mute or unmute a conversation (a user, or `#group`).
    Mute {
        /// The conversation.
        conversation: String,
        /// Muted (true) or not.
        muted: bool,
    },
    /// Offer a file; answered once the offer is delivered or queued.
    SendFile {
        /// Recipient user.
        to: String,
        /// Absolute path of the file.
        path: String,
        /// Offer it under this name instead of its own.
        name: Option<String>,
    },
    /// Send an image message: a thumbnail inline, the image on demand.
    SendImage {
        /// Recipient user.
        to: String,
        /// Absolute path of the image.
        path: String,
    },
    /// Accept a file offer (or resume a failed transfer).
    Accept {
        /// The transfer id.
        id: String,
        /// Receive into this folder instead of the downloads folder.
        dir: Option<String>,
    },
    /// Decline a file offer, or stop receiving it.
    Decline {
        /// The transfer id.
        id: String,
    },
    /// One transfer, or the latest ones.
    Transfers {
        /// The transfer id; all when absent.
        id: Option<String>,
    },
    /// Post text and/or a card as written: no slash command is run (what
    /// plugins post goes this way).
    Post {
        /// A user, or a group (`#name` or its id).
        to: String,
        /// Text.
        text: Option<String>,
        /// A card.
        card: Option<Box<skein_proto::app::Card>>,
    },
    /// The installed plugins and their state.
    Plugins,
    /// Start the plugins installed now in place of those running: every
    /// one, or only `plugin` (just installed or removed).
    PluginsReload {
        /// The plugin; all when absent.
        #[serde(default)]
        plugin: Option<String>,
    },
    /// Run a plugin's message action on a message.
    PluginAction {
        /// The plugin.
        plugin: String,
        /// The action's id.
        action: String,
        /// The message's id.
        message: String,
    },
    /// React to a message, or take a reaction back.
    React {
        /// The message id.
        id: String,
        /// An emoji or a `:shortcode:`.
        emoji: String,
        /// Take the reaction back.
        remove: bool,
    },
    /// Call a user: rings every device of theirs that is online.
    Call {
        /// The user.
        to: String,
        /// Audio only (no video).
        audio_only: bool,
        /// Send GStreamer's test tone and pattern, not the microphone and camera.
        #[serde(default)]
        test_source: bool,
    },
    /// Answer the ringing call.
    Answer {
        /// Answer with audio only.
        audio_only: bool,
        /// Send GStreamer's test tone and pattern, not the microphone and camera.
        #[serde(default)]
        test_source: bool,
    },
    /// Hang up, decline a ringing call, or give up one that rings.
    HangUp,
    /// The current (or last) call, with its latest statistics.
    CallStatus,
    /// Mute the microphone or turn the camera off, or back on.
    CallControls {
        /// Mute (true) or unmute (false); unchanged when absent.
        muted: Option<bool>,
        /// Camera on (true) or off (false); unchanged when absent.
        camera: Option<bool>,
    },
    /// The microphones and cameras calls can use, and the ones chosen.
    CallDevices,
    /// Use these devices from the next call on.
    SetCallDevices {
        /// The microphone, by name; "" for the system's default; unchanged
        /// when absent.
        microphone: Option<String>,
        /// The camera, likewise.
        camera: Option<String>,
    },
}

/// A daemon's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlReply {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Machine-readable error code on failure.
    #[serde(default)]
    pub code: Option<String>,
    /// What failed and what to do, on failure.
    #[serde(default)]
    pub error: Option<String>,
}

impl ControlReply {
    /// A success.
    pub fn ok(data: serde_json::Value) -> Self {
        Self { ok: true, data, code: None, error: None }
    }

    /// A failure.
    pub fn err(code: &str, message: impl Into<String>) -> Self {
        Self { ok: false, data: serde_json::Value::Null, code: Some(code.to_owned()), error: Some(message.into()) }
    }
}

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The socket exists but the exchange failed.
    #[error("the daemon's control socket {path} failed: {reason}")]
    Broken {
        /// Socket path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Sends a request to the daemon at `socket`. `Ok(None)` means no daemon is running.
pub async fn call(socket: &Path, req: &ControlRequest) -> Result<Option<ControlReply>, ControlError> {
    let broken = |reason: String| ControlError::Broken { path: socket.display().to_string(), reason };
    let stream = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(broken(e.to_string())),
    };
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(|e| broken(e.to_string()))?;
    line.push(b'\n');
    w.write_all(&line).await.map_err(|e| broken(e.to_string()))?;
    let mut reply = String::new();
    BufReader::new(r).take(MAX_LINE as u64 * 64).read_line(&mut reply).await.map_err(|e| broken(e.to_string()))?;
    if reply.is_empty() {
        return Err(broken("the daemon closed the connection without answering".into()));
    }
    serde_json::from_str(&reply).map(Some).map_err(|e| broken(format!("unreadable reply: {e}")))
}

/// A connection to a running node's control socket that carries many
/// requests at once: each goes out with a `req_id`, and replies arrive as
/// the node finishes them, each with its request's id.
#[derive(Debug)]
pub struct Connection {
    path: String,
    writer: tokio::net::unix::OwnedWriteHalf,
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    next: u64,
}

impl Connection {
    /// Connects to the node at `socket`; `Ok(None)` when none runs.
    pub async fn open(socket: &Path) -> Result<Option<Connection>, ControlError> {
        let path = socket.display().to_string();
        match UnixStream::connect(socket).await {
            Ok(s) => {
                let (r, writer) = s.into_split();
                Ok(Some(Connection { path, writer, reader: BufReader::new(r), next: 0 }))
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
                Ok(None)
            }
            Err(e) => Err(ControlError::Broken { path, reason: e.to_string() }),
        }
    }

    fn broken(&self, reason: impl Into<String>) -> ControlError {
        ControlError::Broken { path: self.path.clone(), reason: reason.into() }
    }

    /// Sends `req` without waiting for its answer; returns its id.
    pub async fn send(&mut self, req: &ControlRequest) -> Result<u64, ControlError> {
        let id = self.next;
        self.next += 1;
        let mut v = serde_json::to_value(req).map_err(|e| self.broken(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("req_id".into(), serde_json::Value::from(id));
        }
        let mut line = serde_json::to_vec(&v).map_err(|e| self.broken(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).await.map_err(|e| self.broken(e.to_string()))?;
        Ok(id)
    }

    /// The next reply to arrive, with the id of the request it answers
    /// (`None` for a line the node could not read at all).
    pub async fn next_reply(&mut self) -> Result<(Option<u64>, ControlReply), ControlError> {
        let mut line = String::new();
        (&mut self.reader)
            .take(MAX_LINE as u64 * 64)
            .read_line(&mut line)
            .await
            .map_err(|e| self.broken(e.to_string()))?;
        if line.is_empty() {
            return Err(self.broken("the node closed the connection"));
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| self.broken(format!("unreadable reply: {e}")))?;
        let id = v["req_id"].as_u64();
        let reply = serde_json::from_value(v).map_err(|e| self.broken(format!("unreadable reply: {e}")))?;
        Ok((id, reply))
    }

    /// Sends `req` and waits for its answer; replies to other requests in
    /// flight that arrive first are dropped (use [`Connection::send`] and
    /// [`Connection::next_reply`] to keep them).
    pub async fn call(&mut self, req: &ControlRequest) -> Result<ControlReply, ControlError> {
        let id = self.send(req).await?;
        loop {
            match self.next_reply().await? {
                (Some(got), reply) if got == id => return Ok(reply),
                _ => {}
            }
        }
    }
}
