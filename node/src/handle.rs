//! The node handle: one running node (its tracker session, the peer mesh,
//! history and transfers) that `skein daemon` and the desktop app drive
//! alike, through one code path for every feature.
//!
//! [`start`] opens a profile and runs its node in the background. Commands
//! are async methods of [`NodeHandle`], answered with the same JSON the
//! control socket carries; events come from [`NodeHandle::events`], the
//! same objects the daemon prints. While a node runs it serves the
//! profile's control socket too, so `skein` commands work against it
//! whichever face started it, and it holds the profile's lock, so a second
//! node on the profile (a daemon beside the app, or the reverse) is told
//! who has it and stops before touching anything.

use crate::control::{ControlReply, ControlRequest};
use crate::daemon::{ControlCall, DaemonError, DaemonOptions};
use crate::events::Events;
use crate::history::History;
use crate::profile::Profile;
use serde_json::Value;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a command failed with: a machine-readable code (as the control
/// socket's `code`) and a message saying what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    /// `not_found`, `unavailable`, `invalid_input`…
    pub code: String,
    /// What failed and what to do.
    pub message: String,
}

fn internal(message: String) -> NodeError {
    NodeError { code: "internal".into(), message }
}

/// A running node; cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    calls: mpsc::Sender<ControlCall>,
    events: Events,
    history: History,
    user: String,
    stop: CancellationToken,
    done: tokio::sync::watch::Receiver<Option<String>>,
    /// Events from the node's very start, for the first listener (the
    /// daemon's printer, the app), so none is missed before it listens.
    first: std::sync::Arc<std::sync::Mutex<Option<mpsc::UnboundedReceiver<Value>>>>,
}

/// Starts the node of `profile` (which must hold a session) in the
/// background, as `face` (`"skein daemon"`, `"skein-desk"`), which a second
/// node on the profile is told. Returns its handle and the task that ends
/// when the node stops: on [`NodeHandle::stop`], a logout, or a session
/// the tracker ended for good.
pub async fn start(
    profile: Profile,
    options: DaemonOptions,
    face: &str,
) -> Result<(NodeHandle, JoinHandle<Result<(), DaemonError>>), DaemonError> {
    let stop = CancellationToken::new();
    let events = Events::default();
    let first = std::sync::Arc::new(std::sync::Mutex::new(Some(events.subscribe())));
    let started = crate::daemon::start(profile, options, face, stop.clone(), events.clone()).await?;
    let (done_tx, done) = tokio::sync::watch::channel(None);
    let node = started.task;
    let task = tokio::spawn(async move {
        let result =
            node.await.unwrap_or_else(|e| Err(DaemonError::Local(format!("the node stopped unexpectedly: {e}"))));
        let why = match &result {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        let _ = done_tx.send(Some(why));
        result
    });
    let handle =
        NodeHandle { calls: started.calls, events, history: started.history, user: started.user, stop, done, first };
    Ok((handle, task))
}

impl NodeHandle {
    /// The signed-in user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Events as the daemon prints them: for the first caller, every
    /// event since the node started; for later ones, from now on.
    pub fn events(&self) -> mpsc::UnboundedReceiver<Value> {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// The local history (conversations, messages, search).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Waits until the node has stopped; says why when it was not asked
    /// to (the session ended), and nothing after a stop or a logout.
    pub async fn stopped(&self) -> String {
        let mut done = self.done.clone();
        loop {
            if let Some(why) = done.borrow_and_update().clone() {
                return why;
            }
            if done.changed().await.is_err() {
                return String::new();
            }
        }
    }

    /// Asks the node to stop; its task ends soon after.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Any control request, answered as the control socket answers it.
    pub async fn call(&self, req: ControlRequest) -> ControlReply {
        let (reply, rx) = oneshot::channel();
        if self.calls.send(ControlCall { req, reply }).await.is_err() {
            return ControlReply::err("unavailable", "the node has stopped");
        }
        rx.await.unwrap_or_else(|_| ControlReply::err("unavailable", "the node has stopped"))
    }

    async fn ask(&self, req: ControlRequest) -> Result<Value, NodeError> {
        let r = self.call(req).await;
        if r.ok {
            Ok(r.data)
        } else {
            Err(NodeError {
                code: r.code.unwrap_or_else(|| "internal".into()),
                message: r.error.unwrap_or_else(|| "the node failed without saying why".into()),
            })
        }
    }

    /// Who we are and where we are connected.
    pub async fn info(&self) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Info).await
    }

    /// Everyone's presence, as the tracker last said.
    pub async fn presence(&self) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Presence).await
    }

    /// Sets our status (`online`, `away`, `busy`) and note.
    pub async fn set_status(&self, status: &str, note: Option<String>) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Status { status: status.to_owned(), note }).await
    }

    /// Searches the organisation's directory.
    pub async fn directory(&self, query: Option<String>, dept: Option<String>) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Directory { query, dept }).await
    }

    /// The department tree.
    pub async fn departments(&self) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Departments).await
    }

    /// Sends text to a user or `#group`; answers once delivered or queued.
    pub async fn send(&self, to: &str, text: &str) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Send { to: to.to_owned(), text: text.to_owned() }).await
    }

    /// Offers a file to a user or `#group`.
    pub async fn send_file(&self, to: &str, path: &Path) -> Result<Value, NodeError> {
        let path = path.to_string_lossy().into_owned();
        self.ask(ControlRequest::SendFile { to: to.to_owned(), path, name: None }).await
    }

    /// Sends an image (a thumbnail inline, the image on demand).
    pub async fn send_image(&self, to: &str, path: &Path) -> Result<Value, NodeError> {
        let path = path.to_string_lossy().into_owned();
        self.ask(ControlRequest::SendImage { to: to.to_owned(), path }).await
    }

    /// Accepts a file offer (into the downloads folder, or `dir`).
    pub async fn accept(&self, id: &str, dir: Option<&Path>) -> Result<Value, NodeError> {
        let dir = dir.map(|d| d.to_string_lossy().into_owned());
        self.ask(ControlRequest::Accept { id: id.to_owned(), dir }).await
    }

    /// Declines a file offer, or stops receiving it.
    pub async fn decline(&self, id: &str) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Decline { id: id.to_owned() }).await
    }

    /// Calls a user (audio only, or with video too).
    pub async fn place_call(&self, to: &str, audio_only: bool) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Call { to: to.to_owned(), audio_only, test_source: false }).await
    }

    /// Answers the call that rings (audio only, or with video too).
    pub async fn answer_call(&self, audio_only: bool) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Answer { audio_only, test_source: false }).await
    }

    /// Hangs up, declines the call that rings, or gives up one that rings.
    pub async fn hang_up(&self) -> Result<Value, NodeError> {
        self.ask(ControlRequest::HangUp).await
    }

    /// Mutes the microphone or turns the camera off (or back on).
    pub async fn call_controls(&self, muted: Option<bool>, camera: Option<bool>) -> Result<Value, NodeError> {
        self.ask(ControlRequest::CallControls { muted, camera }).await
    }

    /// The microphones and cameras calls can use, and the ones chosen.
    pub async fn call_devices(&self) -> Result<Value, NodeError> {
        self.ask(ControlRequest::CallDevices).await
    }

    /// Uses these devices from the next call on ("" for the system's
    /// default, `None` to leave one as it is); a name no device has is
    /// refused.
    pub async fn set_call_devices(
        &self,
        microphone: Option<String>,
        camera: Option<String>,
    ) -> Result<Value, NodeError> {
        self.ask(ControlRequest::SetCallDevices { microphone, camera }).await
    }

    /// One transfer, or the latest ones.
    pub async fn transfers(&self, id: Option<&str>) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Transfers { id: id.map(str::to_owned) }).await
    }

    /// Reacts to a message (or takes the reaction back).
    pub async fn react(&self, id: &str, emoji: &str, remove: bool) -> Result<Value, NodeError> {
        self.ask(ControlRequest::React { id: id.to_owned(), emoji: emoji.to_owned(), remove }).await
    }

    /// Marks a conversation (a user or `#group`) read.
    pub async fn read(&self, conversation: &str) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Read { user: conversation.to_owned() }).await
    }

    /// The installed plugins, their commands, actions and state.
    pub async fn plugins(&self) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Plugins).await
    }

    /// Runs a plugin's message action on a message (hex id).
    pub async fn plugin_action(&self, plugin: &str, action: &str, message: &str) -> Result<Value, NodeError> {
        let (plugin, action, message) = (plugin.to_owned(), action.to_owned(), message.to_owned());
        self.ask(ControlRequest::PluginAction { plugin, action, message }).await
    }

    /// Verified peers and their paths.
    pub async fn peers(&self) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Peers).await
    }

    /// The groups this user is in, each as its newest membership
    /// certificate (id, name, version, members).
    pub async fn groups(&self) -> Result<Vec<skein_proto::group::MembershipCert>, NodeError> {
        match self.group_request(skein_proto::control::Request::GroupList).await? {
            skein_proto::control::Response::Groups(list) => Ok(list),
            other => Err(internal(format!("the tracker answered a group list with {other:?}"))),
        }
    }

    /// Makes a discussion group owned by this user with `members`; returns
    /// its first membership certificate.
    pub async fn create_group(
        &self,
        name: &str,
        members: Vec<String>,
    ) -> Result<skein_proto::group::MembershipCert, NodeError> {
        use skein_proto::control::{GroupCreate, Request, Response};
        let create = GroupCreate { name: name.to_owned(), members, org: false };
        match self.group_request(Request::GroupCreate(create)).await? {
            Response::Group(ev) => Ok(ev.cert),
            other => Err(internal(format!("the tracker answered a new group with {other:?}"))),
        }
    }

    /// Changes a group (invite, remove, leave, rename, close); returns its
    /// new membership certificate.
    pub async fn update_group(
        &self,
        group: skein_proto::bytes::GroupId,
        update: skein_proto::control::GroupUpdate,
    ) -> Result<skein_proto::group::MembershipCert, NodeError> {
        use skein_proto::control::{Request, Response};
        match self.group_request(Request::GroupUpdate { group, update }).await? {
            Response::Group(ev) => Ok(ev.cert),
            other => Err(internal(format!("the tracker answered a group change with {other:?}"))),
        }
    }

    /// A group request passed through the node to the tracker.
    async fn group_request(
        &self,
        req: skein_proto::control::Request,
    ) -> Result<skein_proto::control::Response, NodeError> {
        let request = skein_proto::frame::encode_payload(&req).map_err(|e| internal(e.to_string()))?;
        let v = self.ask(ControlRequest::Group { request: hex::encode(request) }).await?;
        let bytes = hex::decode(v["response"].as_str().unwrap_or_default()).map_err(|e| internal(e.to_string()))?;
        skein_proto::frame::decode_payload(&bytes).map_err(|e| internal(e.to_string()))
    }

    /// Logs this device out; the node stops.
    pub async fn logout(&self) -> Result<Value, NodeError> {
        self.ask(ControlRequest::Logout).await
    }
}
