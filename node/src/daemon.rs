//! `skein daemon`: keeps this device's tracker session alive, shows the
//! user as present, prints one JSON event per line, and answers the CLI on
//! the control socket.
//!
//! The daemon survives tracker restarts: when the connection drops it prints
//! a `disconnected` event and resumes with backoff (1 s doubling to 30 s).
//! Errors the user must fix (revoked session, disabled account) end it with
//! a non-zero exit.

use crate::control::{ControlReply, ControlRequest, MAX_LINE};
use crate::json;
use crate::profile::Profile;
use crate::session::{Connected, SessionError, parse_status, resume};
use crate::tracker_client::TrackerClient;
use serde_json::{Value, json};
use skein_proto::ErrorCode;
use skein_proto::control::{
    DirectoryQuery, Event, PresenceEntry, PresenceStatus, Request, Response, SetPresence, Subscription,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The session cannot continue without the user acting.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The tracker ended the session.
    #[error("{message} ({code})")]
    Ended {
        /// The code.
        code: ErrorCode,
        /// Why.
        message: String,
    },
    /// The control socket could not be opened.
    #[error("cannot open the control socket {path}: {reason}")]
    Socket {
        /// Socket path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Prints one event line to standard output.
pub fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

struct ControlCall {
    req: ControlRequest,
    reply: oneshot::Sender<ControlReply>,
}

/// Runs the daemon until `stop` fires or the session ends for good.
pub async fn run(profile: Profile, stop: CancellationToken) -> Result<(), DaemonError> {
    profile.session().map_err(SessionError::from)?;
    let (calls_tx, mut calls) = mpsc::channel::<ControlCall>(64);
    let socket = profile.socket_path();
    let listener = bind_socket(&socket).await?;
    let accept = tokio::spawn(accept_loop(listener, calls_tx));
    let result = serve(&profile, &stop, &mut calls).await;
    accept.abort();
    let _ = std::fs::remove_file(&socket);
    result
}

async fn bind_socket(path: &std::path::Path) -> Result<UnixListener, DaemonError> {
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

async fn accept_loop(listener: UnixListener, calls: mpsc::Sender<ControlCall>) {
    while let Ok((stream, _)) = listener.accept().await {
        let calls = calls.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let reply = match BufReader::new(r).take(MAX_LINE as u64).read_line(&mut line).await {
                Ok(_) => match serde_json::from_str::<ControlRequest>(&line) {
                    Ok(req) => {
                        let (tx, rx) = oneshot::channel();
                        if calls.send(ControlCall { req, reply: tx }).await.is_err() {
                            return;
                        }
                        rx.await.unwrap_or_else(|_| ControlReply::err("unavailable", "the daemon is stopping"))
                    }
                    Err(e) => ControlReply::err("malformed", format!("unreadable request: {e}")),
                },
                Err(e) => ControlReply::err("malformed", e.to_string()),
            };
            if let Ok(mut bytes) = serde_json::to_vec(&reply) {
                bytes.push(b'\n');
                let _ = w.write_all(&bytes).await;
            }
        });
    }
}

/// The daemon's view while connected.
struct Live {
    client: TrackerClient,
    presence: BTreeMap<String, PresenceEntry>,
    user: String,
}

async fn serve(
    profile: &Profile,
    stop: &CancellationToken,
    calls: &mut mpsc::Receiver<ControlCall>,
) -> Result<(), DaemonError> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let connected = tokio::select! {
            biased;
            _ = stop.cancelled() => return Ok(()),
            c = resume(profile) => c,
        };
        let conn = match connected {
            Ok(c) => c,
            Err(e) if e.is_transient() => {
                emit(
                    json!({"type": "disconnected", "reason": e.to_string(), "retry_in_ms": backoff.as_millis() as u64}),
                );
                if wait_or_answer(stop, calls, backoff).await {
                    return Ok(());
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        backoff = Duration::from_secs(1);
        match connected_loop(profile, conn, stop, calls).await? {
            Outcome::Stop => return Ok(()),
            Outcome::Reconnect(reason) => {
                emit(json!({"type": "disconnected", "reason": reason, "retry_in_ms": backoff.as_millis() as u64}));
                if wait_or_answer(stop, calls, backoff).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Waits `delay` while answering control calls as "not connected".
/// Returns true if the daemon should stop.
async fn wait_or_answer(stop: &CancellationToken, calls: &mut mpsc::Receiver<ControlCall>, delay: Duration) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return true,
            _ = &mut sleep => return false,
            Some(call) = calls.recv() => {
                let _ = call.reply.send(ControlReply::err("unavailable", "the daemon is not connected to the tracker; it is retrying"));
            }
        }
    }
}

enum Outcome {
    Stop,
    Reconnect(String),
}

async fn connected_loop(
    profile: &Profile,
    conn: Connected,
    stop: &CancellationToken,
    calls: &mut mpsc::Receiver<ControlCall>,
) -> Result<Outcome, DaemonError> {
    let Connected { client, mut events, saved } = conn;
    let status = parse_status(&saved.status).unwrap_or(PresenceStatus::Online);
    let setup = async {
        client.request(Request::SetPresence(SetPresence { status, note: None })).await?;
        client.request(Request::SubscribePresence(Subscription::All)).await
    };
    let snapshot = match setup.await {
        Ok(Response::PresenceSnapshot(s)) => s,
        Ok(_) => Vec::new(),
        Err(e) => return Ok(Outcome::Reconnect(e.to_string())),
    };
    emit(json!({
        "type": "connected", "user": saved.user, "tracker": saved.tracker,
        "tracker_id": client.welcome().tracker_id, "org": client.welcome().org, "status": status.as_str(),
    }));
    let mut live = Live {
        presence: snapshot.into_iter().map(|e| (e.user.clone(), e)).collect(),
        client,
        user: saved.user.clone(),
    };
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                live.client.close();
                return Ok(Outcome::Stop);
            }
            ev = events.recv() => match ev {
                Some(Event::Presence(e)) => {
                    emit(json::presence_event(&e));
                    live.presence.insert(e.user.clone(), e);
                }
                Some(Event::SessionEnded(body)) => {
                    emit(json!({"type": "session_ended", "code": body.code.as_str(), "message": body.message}));
                    if matches!(body.code, ErrorCode::AccountDisabled | ErrorCode::SessionRevoked | ErrorCode::PermissionDenied) {
                        return Err(DaemonError::Ended { code: body.code, message: body.message });
                    }
                    return Ok(Outcome::Reconnect(body.message));
                }
                Some(Event::MailWaiting { count }) => emit(json!({"type": "mail_waiting", "count": count})),
                Some(Event::ShuttingDown { reconnect_after_ms }) => {
                    emit(json!({"type": "tracker_shutting_down", "reconnect_after_ms": reconnect_after_ms}));
                }
                None => return Ok(Outcome::Reconnect(live.client.closed().await)),
            },
            Some(call) = calls.recv() => {
                if let Some(outcome) = answer(profile, &mut live, call).await {
                    return Ok(outcome);
                }
            }
        }
    }
}

async fn answer(profile: &Profile, live: &mut Live, call: ControlCall) -> Option<Outcome> {
    let reply_err = |e: crate::tracker_client::ClientError| {
        let code = e.body().map_or("unavailable", |b| b.code.as_str());
        ControlReply::err(code, e.to_string())
    };
    let (reply, outcome) = match call.req {
        ControlRequest::Info => (
            ControlReply::ok(json!({
                "user": live.user, "tracker": live.client.remote_addr().to_string(),
                "tracker_id": live.client.welcome().tracker_id, "org": live.client.welcome().org,
            })),
            None,
        ),
        ControlRequest::Presence => {
            (ControlReply::ok(Value::Array(live.presence.values().map(json::presence).collect())), None)
        }
        ControlRequest::Status { status, note } => match parse_status(&status) {
            Err(m) => (ControlReply::err("invalid_input", m), None),
            Ok(st) => match live.client.request(Request::SetPresence(SetPresence { status: st, note })).await {
                Ok(_) => {
                    if let Ok(mut s) = profile.session() {
                        s.status = st.as_str().to_owned();
                        let _ = profile.save_session(&s);
                    }
                    (ControlReply::ok(json!({"status": st.as_str()})), None)
                }
                Err(e) => (reply_err(e), None),
            },
        },
        ControlRequest::Directory { query, dept } => {
            let q = DirectoryQuery { text: query, department: dept, offset: 0, limit: 500 };
            match live.client.request(Request::Directory(q)).await {
                Ok(Response::Directory(page)) => {
                    (ControlReply::ok(Value::Array(page.users.iter().map(json::user).collect())), None)
                }
                Ok(other) => (ControlReply::err("internal", format!("unexpected answer {other:?}")), None),
                Err(e) => (reply_err(e), None),
            }
        }
        ControlRequest::Departments => match live.client.request(Request::Departments).await {
            Ok(Response::Departments(d)) => (
                ControlReply::ok(Value::Array(
                    d.iter().map(|d| json!({"path": d.path, "parent": d.parent, "members": d.members})).collect(),
                )),
                None,
            ),
            Ok(other) => (ControlReply::err("internal", format!("unexpected answer {other:?}")), None),
            Err(e) => (reply_err(e), None),
        },
        ControlRequest::Logout => {
            let r = live.client.request(Request::Logout).await;
            let _ = profile.clear_session();
            match r {
                Ok(_) => (ControlReply::ok(json!({"logged_out": live.user})), Some(Outcome::Stop)),
                Err(e) => (reply_err(e), Some(Outcome::Stop)),
            }
        }
    };
    let _ = call.reply.send(reply);
    outcome
}
