//! `skein daemon`: the running node.
//!
//! It keeps this device's tracker session alive (resuming with backoff when
//! the tracker goes away), shows the user as present, runs the peer mesh,
//! delivers and receives messages, prints one JSON event per line, and
//! answers the CLI on the control socket. Errors the user must fix (revoked
//! session, disabled account) end it with a non-zero exit. File offers,
//! image messages and reactions are answered in [`files`].

mod calls;
mod files;
mod plugins;
mod socket;

pub use socket::MAX_IN_FLIGHT;

use crate::control::{ControlReply, ControlRequest};
use crate::delivery::Sender;
use crate::events::Events;
use crate::group_book::GroupBook;
use crate::history::{History, OutState};
use crate::inbox::{Gap, Inbox};
use crate::json;
use crate::mesh::{Mesh, MeshConfig, MeshEvent, PeerSummary};
use crate::profile::{DeviceIdentity, Profile};
use crate::reporter::AddressReporter;
use crate::session::{Connected, SessionError, parse_status};
use crate::tracker_client::TrackerClient;
use crate::transfer::{TransferOptions, Transfers};
use crate::trust::{Answer, Trust};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde_json::{Value, json};
use skein_proto::ErrorCode;
use skein_proto::bytes::{DeviceId, MailId, PublicKey};
use skein_proto::control::{
    Addresses, DirectoryQuery, Event, PresenceEntry, PresenceStatus, Request, Response, SetPresence, Subscription,
    TrackerAddrs,
};
use skein_proto::peer::{
    ChatMessage, Conversation, MessageBody, PeerRequest, PeerResponse, Receipt, ReceiptKind, group_address,
};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
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
    /// Local state could not be opened.
    #[error("{0}")]
    Local(String),
}

/// How the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Peer listen addresses; empty means all interfaces, random port.
    pub listen: Vec<Multiaddr>,
    /// Connect to peers through the relay only (no direct dialing, no hole punching).
    pub relay_only: bool,
    /// Where accepted files go; default `PROFILE/downloads`.
    pub download_dir: Option<std::path::PathBuf>,
    /// Accept every file offer from another user of the organisation.
    pub auto_accept: bool,
    /// With `auto_accept`, only files up to this many bytes.
    pub auto_accept_max: Option<u64>,
    /// Forward every received message to a company system (a bot).
    pub forward: Option<crate::forward::Forward>,
    /// Answer every call at once (tests and bots).
    pub auto_answer: bool,
    /// Where calls' audio and video come from and go.
    pub media: crate::calls::MediaConfig,
}

/// A control request on its way to the node, with where its answer goes.
pub(crate) struct ControlCall {
    pub(crate) req: ControlRequest,
    pub(crate) reply: oneshot::Sender<ControlReply>,
}

/// Runs the daemon until `stop` fires or the session ends for good,
/// printing the node's events, one JSON object per line.
pub async fn run(profile: Profile, options: DaemonOptions, stop: CancellationToken) -> Result<(), DaemonError> {
    let forward = options.forward.clone();
    let queue = crate::forward::queue_dir(profile.dir());
    let (node, task) = crate::handle::start(profile, options, "skein daemon").await?;
    let mut events = node.events();
    if let Some(forward) = forward {
        tokio::spawn(crate::forward::run(node.clone(), forward, queue, stop.clone()));
    }
    let stopper = node.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        stopper.stop();
    });
    drop(node);
    let print = |v: Value| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    };
    tokio::pin!(task);
    let result = loop {
        tokio::select! {
            biased;
            Some(v) = events.recv() => print(v),
            r = &mut task => break r,
        }
    };
    // What the node said last is printed before the daemon exits.
    while let Ok(v) = events.try_recv() {
        print(v);
    }
    result.unwrap_or_else(|e| Err(DaemonError::Local(format!("the node stopped unexpectedly: {e}"))))
}

/// A node started by [`start`].
pub(crate) struct Started {
    pub(crate) calls: mpsc::Sender<ControlCall>,
    pub(crate) history: History,
    pub(crate) user: String,
    pub(crate) task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

/// Starts the node of `profile` as `face`, reporting on `events`, until
/// `stop` fires or the session ends for good.
pub(crate) async fn start(
    profile: Profile,
    options: DaemonOptions,
    face: &str,
    stop: CancellationToken,
    events: Events,
) -> Result<Started, DaemonError> {
    let saved = profile.session().map_err(SessionError::from)?;
    let device = profile.device().map_err(SessionError::from)?;
    let cert = saved
        .cert()
        .ok_or_else(|| DaemonError::Local("the saved device certificate is unreadable; log in again".into()))?;
    let org_key = PublicKey::from_hex(&saved.org_signing_key)
        .ok_or_else(|| DaemonError::Local("the saved organisation key is unreadable; log in again".into()))?;
    // The profile first: a second node for it stops here, before it
    // touches the history or the network.
    let lock = profile.lock(face).map_err(SessionError::from)?;
    let history = History::open(&profile.history_path()).await.map_err(|e| DaemonError::Local(e.to_string()))?;
    let mut config = MeshConfig { direct: !options.relay_only, confirm: true, ..MeshConfig::default() };
    if !options.listen.is_empty() {
        config.listen = options.listen.clone();
    }
    let (calls_tx, calls) = mpsc::channel::<ControlCall>(64);
    let socket = profile.socket_path();
    let listener = socket::bind(&socket).await?;
    let (mesh, mesh_events) =
        Mesh::start(device.keypair.clone(), cert, org_key, config).map_err(|e| DaemonError::Local(e.to_string()))?;
    let accept = tokio::spawn(socket::accept_loop(listener, calls_tx.clone()));
    let lookups = crate::lookups::Lookups::default();
    let transfer_options = TransferOptions {
        download_dir: options.download_dir.clone().unwrap_or_else(|| profile.dir().join("downloads")),
        auto_accept: options.auto_accept,
        auto_accept_max: options.auto_accept_max,
    };
    let transfers = Transfers::new(
        saved.user.clone(),
        device.device_id,
        history.clone(),
        mesh.clone(),
        lookups.clone(),
        transfer_options,
        events.clone(),
    );
    transfers.serve().map_err(|e| DaemonError::Local(format!("cannot serve files: {e}")))?;
    transfers.resume_all().await;
    let (gaps_tx, gaps_rx) = mpsc::channel(64);
    let host = crate::plugins::host::Host::new(saved.user.clone(), history.clone(), events.clone(), calls_tx.clone());
    let plugins = crate::plugins::Plugins::start(profile.dir().to_path_buf(), host, stop.child_token());
    let call_inbox =
        Inbox { history: history.clone(), me: saved.user.clone(), transfers: None, groups: None, gaps: None };
    let groups = GroupBook::default();
    let call_task = crate::calls::Calls::start(
        crate::calls::CallsContext {
            groups: groups.clone(),
            sender: Sender {
                me: saved.user.clone(),
                device: device.device_id,
                tracker: None,
                mesh: mesh.clone(),
                history: history.clone(),
                lookups: lookups.clone(),
            },
            inbox: call_inbox,
            events: events.clone(),
            media: options.media.clone(),
            auto_answer: options.auto_answer,
        },
        stop.child_token(),
    );
    let node = Node {
        profile,
        device,
        me: saved.user.clone(),
        history: history.clone(),
        mesh,
        tracker: None,
        presence: BTreeMap::new(),
        addresses: AddressReporter::new(events.clone()),
        lookups,
        own_relay: None,
        transfers,
        trust: Arc::default(),
        groups,
        gaps: gaps_tx,
        events: events.clone(),
        plugins,
        calls: call_task,
    };
    node.groups.set_org_key(org_key);
    // Requests on peers' lanes are answered from the lanes' own tasks, as
    // `MeshEvent::Request` is below, without a turn through this loop.
    let (inbox, out, ringer) = (node.inbox(), node.events.clone(), node.calls.clone());
    node.mesh.set_handler(Arc::new(move |from, path, req| {
        let (inbox, out) = (inbox.clone(), out.clone());
        if let PeerRequest::Call(signal) = req {
            ringer.signal_from(&from, signal);
            return Box::pin(async { PeerResponse::Ok });
        }
        Box::pin(async move {
            let (resp, events) = inbox.handle_peer(&from, path.as_str(), req).await;
            for ev in events {
                out.emit(ev);
            }
            resp
        })
    }));
    node.transfers.set_groups(node.groups.clone());
    tokio::spawn(fill_gaps(gaps_rx, node.mesh.clone(), node.inbox(), node.transfers.clone(), events));
    let task = tokio::spawn(async move {
        let result = node.serve(stop, calls, mesh_events).await;
        accept.abort();
        let _ = std::fs::remove_file(&socket);
        drop(lock);
        result
    });
    Ok(Started { calls: calls_tx, history, user: saved.user, task })
}

struct Node {
    profile: Profile,
    device: DeviceIdentity,
    me: String,
    history: History,
    mesh: Mesh,
    tracker: Option<TrackerClient>,
    presence: BTreeMap<String, PresenceEntry>,
    addresses: AddressReporter,
    own_relay: Option<Multiaddr>,
    lookups: crate::lookups::Lookups,
    transfers: Transfers,
    trust: Arc<Mutex<Trust>>,
    groups: GroupBook,
    gaps: mpsc::Sender<Gap>,
    events: Events,
    plugins: crate::plugins::Plugins,
    calls: crate::calls::Calls,
}

fn peer_json(s: &PeerSummary) -> Value {
    json!({
        "user": s.user, "device": s.device.to_hex(), "peer_id": s.peer.to_string(), "path": s.path.as_str(),
        "remote": s.remote, "rtt_ms": s.rtt.map(|d| d.as_secs_f64() * 1000.0), "nearby": s.nearby,
    })
}

impl Node {
    fn inbox(&self) -> Inbox {
        Inbox {
            history: self.history.clone(),
            me: self.me.clone(),
            transfers: Some(self.transfers.clone()),
            groups: Some(self.groups.clone()),
            gaps: Some(self.gaps.clone()),
        }
    }

    fn sender(&self) -> Sender {
        Sender {
            me: self.me.clone(),
            device: self.device.device_id,
            tracker: self.tracker.clone(),
            mesh: self.mesh.clone(),
            history: self.history.clone(),
            lookups: self.lookups.clone(),
        }
    }

    /// Serves until told to stop or the session ends for good, then says
    /// goodbye: peers see their connections close and the tracker sees the
    /// session go at once, so colleagues' next messages go to the mailbox
    /// without waiting for this device.
    async fn serve(
        mut self,
        stop: CancellationToken,
        calls: mpsc::Receiver<ControlCall>,
        mesh_events: mpsc::Receiver<MeshEvent>,
    ) -> Result<(), DaemonError> {
        let result = self.serve_until_done(stop, calls, mesh_events).await;
        self.plugins.stop().await;
        let tracker = self.tracker.take();
        let close_tracker = async {
            if let Some(c) = tracker {
                c.close_and_wait(Duration::from_secs(1)).await;
            }
        };
        tokio::join!(self.mesh.shutdown(), close_tracker);
        result
    }

    async fn serve_until_done(
        &mut self,
        stop: CancellationToken,
        mut calls: mpsc::Receiver<ControlCall>,
        mut mesh_events: mpsc::Receiver<MeshEvent>,
    ) -> Result<(), DaemonError> {
        let mut backoff = Duration::from_secs(1);
        let mut next_attempt = Instant::now();
        let mut tracker_events: Option<mpsc::Receiver<Event>> = None;
        // The tracker that just went away: the next resume tries the
        // organisation's other trackers first.
        let mut gone: Option<String> = None;
        // The organisation's trackers change (one added, one back from a
        // restart): the list kept for the next resume is asked again now
        // and then, and saved here, in this loop, which alone rotates the
        // token in the same file.
        let mut ask_trackers = tokio::time::interval(crate::session::TRACKERS_REFRESH);
        ask_trackers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (trackers_tx, mut trackers_rx) = mpsc::channel::<(String, Vec<TrackerAddrs>)>(1);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    // A call in progress is hung up before the mesh goes
                    // (the calls task gives that a moment, no more).
                    let _ = tokio::time::timeout(Duration::from_secs(5), self.calls.stopped()).await;
                    return Ok(());
                }
                Some((at, list)) = trackers_rx.recv() => {
                    if let Err(e) = crate::session::save_trackers(&self.profile, &at, crate::session::others(&list, &at)) {
                        tracing::warn!(error = %e, "cannot save the list of the organisation's trackers");
                    }
                    if self.tracker.is_some() {
                        self.use_relays(&crate::session::relays(&list)).await;
                    }
                }
                _ = ask_trackers.tick(), if self.tracker.is_some() => {
                    if let (Some(client), Ok(saved)) = (self.tracker.clone(), self.profile.session()) {
                        let tx = trackers_tx.clone();
                        tokio::spawn(async move {
                            if let Some(list) = crate::session::org_trackers(&client).await {
                                let _ = tx.send((saved.tracker, list)).await;
                            }
                        });
                    }
                }
                _ = tokio::time::sleep_until(next_attempt), if self.tracker.is_none() => {
                    match crate::session::resume_avoiding(&self.profile, gone.as_deref()).await {
                        Ok(conn) => {
                            backoff = Duration::from_secs(1);
                            gone = None;
                            tracker_events = Some(self.connected(conn).await);
                        }
                        Err(e) if e.is_transient() => {
                            self.events.emit(json!({"type": "disconnected", "reason": e.to_string(), "retry_in_ms": backoff.as_millis() as u64}));
                            next_attempt = Instant::now() + backoff;
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                ev = next_event(&mut tracker_events) => match ev {
                    Some(ev) => self.tracker_event(ev)?,
                    None => {
                        tracker_events = None;
                        gone = self.profile.session().ok().map(|s| s.tracker);
                        self.addresses.disconnect();
                        self.groups.set_tracker(None);
                        self.transfers.set_tracker(None);
                        self.calls.set_tracker(None);
                        let reason = match self.tracker.take() {
                            Some(c) => c.closed().await,
                            None => String::new(),
                        };
                        // With other trackers to turn to, at once.
                        let elsewhere = self.profile.session().is_ok_and(|s| !s.trackers.is_empty());
                        let wait = if elsewhere { Duration::ZERO } else { backoff };
                        self.events.emit(json!({"type": "disconnected", "reason": reason, "retry_in_ms": wait.as_millis() as u64}));
                        next_attempt = Instant::now() + wait;
                    }
                },
                Some(ev) = mesh_events.recv() => self.mesh_event(ev),
                Some(call) = calls.recv() => {
                    if self.answer(call).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn connected(&mut self, conn: Connected) -> mpsc::Receiver<Event> {
        let Connected { client, events, saved, password_change_required, relays } = conn;
        if password_change_required {
            self.events.emit(json!({
                "type": "password_change_required",
                "message": "the password is a one-time password; choose your own with `skein passwd` before anything else",
            }));
        }
        if let (Some(cert), Some(key)) = (saved.cert(), PublicKey::from_hex(&saved.org_signing_key)) {
            self.mesh.set_identity(cert, key).await;
        }
        let status = parse_status(&saved.status).unwrap_or(PresenceStatus::Online);
        let _ = client.request(Request::SetPresence(SetPresence { status, note: None })).await;
        if let Ok(Response::PresenceSnapshot(s)) = client.request(Request::SubscribePresence(Subscription::All)).await {
            self.presence = s.into_iter().map(|e| (e.user.clone(), e)).collect();
        }
        self.own_relay = match client.request(Request::RelayInfo).await {
            Ok(Response::Relay(info)) => relay_addr(&info, &client),
            Ok(_) => None,
            Err(e) => {
                tracing::info!(error = %e, "the tracker offers no relay of its own");
                None
            }
        };
        self.use_relays(&relays).await;
        match client.request(Request::Policy).await {
            Ok(Response::Policy(p)) => self.transfers.set_max_file_size(p.max_file_size),
            Ok(_) => {}
            Err(e) => tracing::info!(error = %e, "the tracker states no file policy; using the built-in limit"),
        }
        self.addresses.connect(client.clone());
        self.groups.set_tracker(Some(client.clone()));
        if let Some(key) = PublicKey::from_hex(&saved.org_signing_key) {
            self.groups.set_org_key(key);
        }
        self.lookups.reset();
        self.transfers.set_tracker(Some(client.clone()));
        self.calls.set_tracker(Some(client.clone()));
        self.events.emit(json!({
            "type": "connected", "user": saved.user, "tracker": saved.tracker,
            "tracker_id": client.welcome().tracker_id, "org": client.welcome().org, "status": status.as_str(),
            "peer_id": self.mesh.peer_id().to_string(),
        }));
        self.tracker = Some(client);
        self.spawn_catch_up();
        self.spawn_recheck_peers();
        self.spawn_group_lines();
        events
    }

    /// Brings the groups' change lines up to date: those made while this
    /// device was away are asked of the tracker's log (a line already
    /// kept is kept once).
    fn spawn_group_lines(&self) {
        let Some(client) = self.tracker.clone() else { return };
        let (groups, history) = (self.groups.clone(), self.history.clone());
        tokio::spawn(async move {
            groups.refresh().await;
            for cert in groups.all() {
                let group = cert.body.group;
                let conversation = group_address(&group);
                let mut after = 0;
                // Page by page, oldest first; bounded.
                for _ in 0..100 {
                    let ask = Request::GroupChanges { group, after_version: after };
                    let Ok(Response::GroupChanges(changes)) = client.request(ask).await else { break };
                    let full = changes.len() >= skein_proto::group::MAX_CHANGES;
                    for c in changes {
                        let line = crate::history::ConversationEvent {
                            hlc: c.at_ms << 16,
                            actor: c.actor.clone(),
                            text: crate::groups::describe(&c.actor, &c.change),
                        };
                        let id = change_line_id(&group, c.version);
                        if let Err(e) = history.add_event(id, &conversation, &line).await {
                            tracing::warn!(error = %e, "cannot keep a group's change line");
                        }
                        after = after.max(c.version);
                    }
                    if !full {
                        break;
                    }
                }
            }
        });
    }

    /// Asks the tracker again about every connected peer: revocations
    /// pushed while this node was away from the tracker were missed.
    fn spawn_recheck_peers(&self) {
        let (client, mesh, trust) = (self.tracker.clone(), self.mesh.clone(), self.trust.clone());
        tokio::spawn(async move {
            for p in mesh.peers().await {
                let answer = confirm_device(client.clone(), &p.user, p.device, &p.peer.to_bytes()).await;
                if answer == Answer::Invalid {
                    lock(&trust).revoke(&p.peer, std::time::Instant::now());
                    mesh.revoke(p.peer, format!("{}'s device is no longer valid", p.user)).await;
                }
            }
        });
    }

    /// Takes waiting mail, then resends whatever is still queued.
    fn spawn_catch_up(&self) {
        let Some(client) = &self.tracker else { return };
        let (client, history, device, inbox) =
            (client.clone(), self.history.clone(), self.device.clone(), self.inbox());
        let (sender, groups, out) = (self.sender(), self.groups.clone(), self.events.clone());
        tokio::spawn(async move {
            match inbox.drain_mailbox(&client, device.device_id, &device.x25519).await {
                Ok((events, fresh)) => {
                    for ev in events {
                        out.emit(ev);
                    }
                    let delivered = fresh.into_iter().map(|m| (m.id, m.from_user)).collect();
                    send_receipts(&sender, ReceiptKind::Delivered, delivered).await;
                }
                Err(e) => tracing::warn!(error = %e, "could not take the mailbox"),
            }
            if let Ok(unsent) = history.unsent().await {
                for m in unsent {
                    let msg = m.to_chat_message();
                    let users = match &msg.conversation {
                        Conversation::Group { group, .. } => match groups.current(*group, 0).await {
                            Some(cert) => cert.body.members,
                            None => continue,
                        },
                        Conversation::Direct => vec![msg.to_user.clone()],
                    };
                    match sender.send_message_to(&msg, &users).await {
                        Ok(o) => out.emit(sent_event(&msg, o.as_str())),
                        Err(e) => tracing::info!(error = %e, "queued message still undeliverable"),
                    }
                }
            }
        });
    }

    fn tracker_event(&mut self, ev: Event) -> Result<(), DaemonError> {
        match ev {
            Event::Presence(e) => {
                // A device came or went: ask the tracker again next time.
                self.lookups.forget(&e.user);
                self.events.emit(json::presence_event(&e));
                self.presence.insert(e.user.clone(), e);
            }
            Event::SessionEnded(body) => {
                self.events.emit(json!({"type": "session_ended", "code": body.code.as_str(), "message": body.message}));
                if matches!(
                    body.code,
                    ErrorCode::AccountDisabled | ErrorCode::SessionRevoked | ErrorCode::PermissionDenied
                ) {
                    return Err(DaemonError::Ended { code: body.code, message: body.message });
                }
            }
            Event::DeviceRevoked(d) => {
                self.lookups.forget(&d.user);
                if let Ok(peer) = libp2p::PeerId::from_bytes(&d.peer_id) {
                    if !lock(&self.trust).revoke(&peer, std::time::Instant::now()) {
                        return Ok(());
                    }
                    let mesh = self.mesh.clone();
                    let why =
                        format!("the access of {}'s device ended (signed out, password changed or revoked)", d.user);
                    tokio::spawn(async move { mesh.revoke(peer, why).await });
                    self.events.emit(
                        json!({"type": "peer_revoked", "user": d.user, "device": d.device_id.to_hex(), "peer_id": peer.to_string()}),
                    );
                }
            }
            Event::GroupChanged(ev) => self.group_changed(ev),
            Event::MailWaiting { count } => {
                self.events.emit(json!({"type": "mail_waiting", "count": count}));
                self.spawn_catch_up();
            }
            Event::ShuttingDown { reconnect_after_ms } => {
                self.events.emit(json!({"type": "tracker_shutting_down", "reconnect_after_ms": reconnect_after_ms}));
            }
        }
        Ok(())
    }

    /// A group changed (pushed by the tracker, or answered to a change
    /// this device made): its certificate is kept, its line shown, and the
    /// event reported, once per version.
    fn group_changed(&mut self, ev: skein_proto::group::GroupEvent) {
        if !self.groups.learn(ev.cert.clone()) {
            return;
        }
        // The line shows in the conversation, at the change's time
        // (the same reading on every member's device).
        let b = &ev.cert.body;
        let id = change_line_id(&b.group, b.version);
        let line = crate::history::ConversationEvent {
            hlc: b.issued_at_ms << 16,
            actor: ev.actor.clone(),
            text: crate::groups::describe(&ev.actor, &ev.change),
        };
        let (history, conversation) = (self.history.clone(), group_address(&b.group));
        tokio::spawn(async move {
            if let Err(e) = history.add_event(id, &conversation, &line).await {
                tracing::warn!(error = %e, "cannot keep a group's event line");
            }
        });
        let mut v = json!({"type": "group_changed", "text": crate::groups::describe(&ev.actor, &ev.change)});
        v["group"] = crate::groups::group(&ev.cert);
        self.events.emit(v);
    }

    fn mesh_event(&mut self, ev: MeshEvent) {
        match ev {
            MeshEvent::Addresses { listen, observed, relayed } => {
                self.addresses.set(Addresses { listen, observed, relayed });
            }
            MeshEvent::PeerVerified(s) => {
                self.transfers.peer_verified();
                let mut v = peer_json(&s);
                v["type"] = json!("peer_connected");
                self.events.emit(v);
            }
            MeshEvent::PathChanged(s) => {
                let mut v = peer_json(&s);
                v["type"] = json!("path");
                self.events.emit(v);
            }
            MeshEvent::PeerLeft { peer, user } => {
                self.events.emit(json!({"type": "peer_left", "user": user, "peer_id": peer.to_string()}))
            }
            MeshEvent::HolePunch { peer, error } => {
                let result = if error.is_none() { "direct" } else { "failed" };
                self.events
                    .emit(json!({"type": "hole_punch", "peer_id": peer.to_string(), "result": result, "error": error}));
            }
            MeshEvent::PeerRefused { peer, reason } => {
                self.events.emit(json!({"type": "peer_refused", "peer_id": peer.to_string(), "reason": reason}));
            }
            MeshEvent::RelayLost { reason } => {
                self.events.emit(json!({"type": "relay_lost", "reason": reason}));
            }
            MeshEvent::RelaySlot { relay, standby } => {
                self.events.emit(json!({"type": "relay_slot", "relay": relay.to_string(), "standby": standby}));
            }
            MeshEvent::Confirm { peer, verified, reply } => {
                let (client, trust) = (self.tracker.clone(), self.trust.clone());
                tokio::spawn(async move {
                    let answer =
                        confirm_device(client, &verified.user, verified.device, &verified.cert.body.peer_id).await;
                    let ok = lock(&trust).decide(peer, answer, std::time::Instant::now());
                    if !ok {
                        tracing::info!(%peer, user = %verified.user, ?answer, "refusing a device the tracker does not vouch for");
                    }
                    let _ = reply.send(ok);
                });
            }
            MeshEvent::Request { from, req, reply, .. } if matches!(*req, PeerRequest::Call(_)) => {
                if let PeerRequest::Call(signal) = *req {
                    self.calls.signal_from(&from, signal);
                }
                let _ = reply.send(PeerResponse::Ok);
            }
            MeshEvent::Request { from, path, req, reply, .. } => {
                let (inbox, out) = (self.inbox(), self.events.clone());
                tokio::spawn(async move {
                    let (resp, events) = inbox.handle_peer(&from, path.as_str(), *req).await;
                    for ev in events {
                        out.emit(ev);
                    }
                    let _ = reply.send(resp);
                });
            }
        }
    }

    /// Answers one control call. Returns true if the daemon should stop.
    async fn answer(&mut self, call: ControlCall) -> bool {
        let not_connected =
            || ControlReply::err("unavailable", "the daemon is not connected to the tracker; it is retrying");
        let reply_err = |e: crate::tracker_client::ClientError| {
            let code = e.body().map_or("unavailable", |b| b.code.as_str());
            ControlReply::err(code, e.to_string())
        };
        let client = self.tracker.clone();
        let mut stop = false;
        let reply = match call.req {
            ControlRequest::Info => {
                let addresses = self.addresses.current();
                ControlReply::ok(json!({
                "user": self.me, "connected": client.is_some(), "peer_id": self.mesh.peer_id().to_string(),
                "tracker": client.as_ref().map(|c| c.remote_addr().to_string()),
                "addresses": {"listen": addresses.listen, "observed": addresses.observed, "relayed": addresses.relayed},
                }))
            }
            ControlRequest::Presence => {
                ControlReply::ok(Value::Array(self.presence.values().map(json::presence).collect()))
            }
            ControlRequest::Status { status, note } => match (parse_status(&status), client) {
                (Err(m), _) => ControlReply::err("invalid_input", m),
                (Ok(_), None) => not_connected(),
                (Ok(st), Some(c)) => match c.request(Request::SetPresence(SetPresence { status: st, note })).await {
                    Ok(_) => {
                        if let Ok(mut s) = self.profile.session() {
                            s.status = st.as_str().to_owned();
                            let _ = self.profile.save_session(&s);
                        }
                        ControlReply::ok(json!({"status": st.as_str()}))
                    }
                    Err(e) => reply_err(e),
                },
            },
            ControlRequest::Directory { query, dept } => match client {
                None => not_connected(),
                Some(c) => {
                    let q = DirectoryQuery { text: query, department: dept, offset: 0, limit: 500 };
                    match c.request(Request::Directory(q)).await {
                        Ok(Response::Directory(page)) => {
                            ControlReply::ok(Value::Array(page.users.iter().map(json::user).collect()))
                        }
                        Ok(other) => ControlReply::err("internal", format!("unexpected answer {other:?}")),
                        Err(e) => reply_err(e),
                    }
                }
            },
            ControlRequest::Departments => match client {
                None => not_connected(),
                Some(c) => match c.request(Request::Departments).await {
                    Ok(Response::Departments(d)) => {
                        ControlReply::ok(Value::Array(d.iter().map(json::department).collect()))
                    }
                    Ok(other) => ControlReply::err("internal", format!("unexpected answer {other:?}")),
                    Err(e) => reply_err(e),
                },
            },
            ControlRequest::Group { request } => match (client, decode_group_request(&request)) {
                (_, Err(m)) => ControlReply::err("malformed", m),
                (None, _) => not_connected(),
                (Some(c), Ok(req)) => match c.request(req).await {
                    Ok(resp) => match skein_proto::frame::encode_payload(&resp) {
                        // A group this device just made or changed can be
                        // written to at once, before the tracker's push.
                        Ok(bytes) if matches!(&resp, Response::Group(_)) => {
                            if let Response::Group(ev) = &resp {
                                self.group_changed(ev.clone());
                            }
                            ControlReply::ok(json!({"response": hex::encode(bytes)}))
                        }
                        Ok(bytes) => ControlReply::ok(json!({"response": hex::encode(bytes)})),
                        Err(e) => ControlReply::err("internal", e.to_string()),
                    },
                    Err(e) => reply_err(e),
                },
            },
            ControlRequest::ChangePassword { old, new } => match client {
                None => not_connected(),
                Some(c) => match c.request(Request::ChangePassword { old: old.0, new: new.0 }).await {
                    Ok(_) => ControlReply::ok(json!({"changed": true})),
                    Err(e) => reply_err(e),
                },
            },
            ControlRequest::Logout => {
                stop = true;
                let _ = self.profile.clear_session();
                match client {
                    Some(c) => match c.request(Request::Logout).await {
                        Ok(_) => ControlReply::ok(json!({"logged_out": self.me})),
                        Err(e) => reply_err(e),
                    },
                    None => ControlReply::ok(json!({"logged_out": self.me})),
                }
            }
            ControlRequest::Peers => {
                ControlReply::ok(Value::Array(self.mesh.peers().await.iter().map(peer_json).collect()))
            }
            ControlRequest::Send { to, text } => {
                // Answered from a task: delivery may take a while and the loop must keep running.
                self.spawn_send(to, text, call.reply);
                return false;
            }
            req @ (ControlRequest::SendFile { .. }
            | ControlRequest::SendImage { .. }
            | ControlRequest::Accept { .. }
            | ControlRequest::Decline { .. }
            | ControlRequest::Transfers { .. }
            | ControlRequest::React { .. }) => {
                self.answer_files(req, call.reply);
                return false;
            }
            req @ (ControlRequest::Call { .. }
            | ControlRequest::Answer { .. }
            | ControlRequest::HangUp
            | ControlRequest::CallStatus
            | ControlRequest::CallControls { .. }
            | ControlRequest::CallDevices
            | ControlRequest::SetCallDevices { .. }) => {
                self.answer_calls(req, call.reply);
                return false;
            }
            req @ (ControlRequest::Post { .. }
            | ControlRequest::Plugins
            | ControlRequest::PluginsReload { .. }
            | ControlRequest::PluginAction { .. }) => {
                self.answer_plugins(req, call.reply);
                return false;
            }
            ControlRequest::Mute { conversation, muted } => match self.conversation_name(&conversation).await {
                Err(e) => e,
                Ok(name) => match self.history.set_muted(&name, muted).await {
                    Err(e) => ControlReply::err("internal", e.to_string()),
                    Ok(()) => ControlReply::ok(json!({"conversation": name, "muted": muted})),
                },
            },
            ControlRequest::Read { user } => match self.conversation_name(&user).await {
                Err(e) => e,
                Ok(user) => match self.history.mark_read(&user, crate::now_ms()).await {
                    Err(e) => ControlReply::err("internal", e.to_string()),
                    Ok(read) => {
                        let count = read.len();
                        let sender = self.sender();
                        tokio::spawn(async move { send_receipts(&sender, ReceiptKind::Read, read).await });
                        ControlReply::ok(json!({"read": count}))
                    }
                },
            },
        };
        let _ = call.reply.send(reply);
        stop
    }

    fn spawn_send(&self, to: String, text: String, reply: oneshot::Sender<ControlReply>) {
        let text = match crate::plugins::slash(&text) {
            crate::plugins::Slash::Command { name, args } => {
                self.spawn_command(to, name.to_owned(), args.to_owned(), reply);
                return;
            }
            crate::plugins::Slash::Escaped(t) => t.to_owned(),
            crate::plugins::Slash::Text => text,
        };
        let text = crate::emoji::expand(&text);
        if text.is_empty() || text.len() > skein_proto::peer::MAX_TEXT {
            let msg = format!("the message must be 1 to {} bytes", skein_proto::peer::MAX_TEXT);
            let _ = reply.send(ControlReply::err("invalid_input", msg));
            return;
        }
        self.spawn_deliver(to, vec![MessageBody::Text(text)], reply);
    }

    /// Sends `bodies` to `to` (a user or a group), one message each, in
    /// order; answers with the last one's id and path.
    fn spawn_deliver(&self, to: String, bodies: Vec<MessageBody>, reply: oneshot::Sender<ControlReply>) {
        if is_group_spec(&to) {
            let (groups, sender, me, device) =
                (self.groups.clone(), self.sender(), self.me.clone(), self.device.device_id);
            let out = self.events.clone();
            tokio::spawn(async move {
                let r = async {
                    let b = sendable_group(&groups, &to, &me).await?;
                    let mut last = Value::Null;
                    for body in bodies {
                        let conversation = group_stamp(&groups, &sender, &b).await;
                        let msg = new_message(&me, device, group_address(&b.group), conversation, body);
                        let path = deliver_to(&sender, &msg, &b.members).await.map_err(ControlReply::from)?;
                        out.emit(sent_event(&msg, path));
                        last = json!({"id": msg.id.to_hex(), "path": path, "group": b.group.to_hex()});
                    }
                    Ok(last)
                };
                let _ = reply.send(r.await.map_or_else(|e| e, ControlReply::ok));
            });
            return;
        }
        let to = match recipient(&to) {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(e);
                return;
            }
        };
        let messages: Vec<ChatMessage> = bodies.into_iter().map(|body| self.message(to.clone(), body)).collect();
        let (sender, out) = (self.sender(), self.events.clone());
        tokio::spawn(async move {
            let mut last = Ok(Value::Null);
            for msg in &messages {
                last = deliver(&sender, msg).await.map(|path| {
                    out.emit(sent_event(msg, path));
                    json!({"id": msg.id.to_hex(), "path": path})
                });
                if last.is_err() {
                    break;
                }
            }
            let _ = reply.send(last.map_or_else(ControlReply::from, ControlReply::ok));
        });
    }

    /// The conversation a CLI argument names: a user, or a group (`#name`
    /// or its id) as its address.
    async fn conversation_name(&self, spec: &str) -> Result<String, ControlReply> {
        if is_group_spec(spec) {
            return Ok(group_address(&find_group(&self.groups, spec).await?.body.group));
        }
        recipient(spec)
    }

    /// A new message from this device to `to`.
    fn message(&self, to: String, body: MessageBody) -> ChatMessage {
        new_message(&self.me, self.device.device_id, to, Conversation::Direct, body)
    }
}

/// The event for a message this device sent, from any face of the node
/// (the desktop app shows what `skein send` sent, and the reverse).
pub(crate) fn sent_event(msg: &ChatMessage, path: &str) -> Value {
    let conversation = match &msg.conversation {
        Conversation::Group { group, .. } => group_address(group),
        Conversation::Direct => msg.to_user.clone(),
    };
    json!({"type": "sent", "id": msg.id.to_hex(), "to": msg.to_user, "conversation": conversation, "path": path})
}

/// A new message from `me`'s device `device`.
fn new_message(me: &str, device: DeviceId, to: String, conversation: Conversation, body: MessageBody) -> ChatMessage {
    ChatMessage {
        id: MailId(crate::random_id()),
        from_user: me.to_owned(),
        from_device: device,
        to_user: to,
        conversation,
        sent_at_ms: crate::now_ms(),
        body,
    }
}

/// Asks for messages to a group that never came here: the device that
/// sent them first, then any other connected device of the same user
/// (every device of a user keeps copies of what the others sent, and only
/// the author's own devices can vouch for the author's messages). What
/// comes is stored like any group message, checked the same way.
async fn fill_gaps(mut gaps: mpsc::Receiver<Gap>, mesh: Mesh, inbox: Inbox, transfers: Transfers, out: Events) {
    while let Some(gap) = gaps.recv().await {
        let connected: Vec<_> = mesh.peers().await.into_iter().filter(|p| p.user == gap.user).collect();
        let mut sources: Vec<libp2p::PeerId> = Vec::new();
        // The sending device first, dialled when it is online but not
        // connected (its messages came through the mailbox).
        match connected.iter().find(|p| p.device == gap.backfill.device) {
            Some(p) => sources.push(p.peer),
            None => {
                if let Some((peer, addrs)) = transfers.locate(&gap.user, gap.backfill.device).await
                    && mesh.connect(peer, addrs).await.is_ok_and(|s| s.user == gap.user)
                {
                    sources.push(peer);
                }
            }
        }
        sources.extend(connected.iter().filter(|p| p.device != gap.backfill.device).map(|p| p.peer));
        if sources.is_empty() {
            tracing::info!(user = %gap.user, "no device of the sender with missing group messages is online; the mailbox may still bring them");
        }
        for peer in sources {
            if fill_gap_from(&mesh, &inbox, &gap, peer, &out).await {
                break;
            }
        }
    }
}

/// Asks one device of the gap's user for the missing messages, page after
/// page; returns whether it answered.
async fn fill_gap_from(mesh: &Mesh, inbox: &Inbox, gap: &Gap, peer: libp2p::PeerId, out: &Events) -> bool {
    use skein_proto::peer::{MAX_BACKFILL, PeerRequest, PeerResponse};
    let b = &gap.backfill;
    let mut after = b.after_seq;
    // Bounded: at most this many answers per gap.
    for _ in 0..64 {
        let ask = PeerRequest::Backfill(skein_proto::peer::Backfill { after_seq: after, ..b.clone() });
        let (list, path) = match mesh.request(peer, ask).await {
            Ok((PeerResponse::Messages(list), path)) => (list, path),
            Ok((other, _)) => {
                tracing::info!(?other, "asking for missing group messages was refused");
                return false;
            }
            Err(e) => {
                tracing::info!(error = %e, "asking for missing group messages failed");
                return false;
            }
        };
        let full = list.len() >= MAX_BACKFILL;
        for m in &list {
            let seq = match m.conversation {
                Conversation::Group { seq, .. } if m.from_device == b.device && seq > after && seq < b.before_seq => {
                    seq
                }
                _ => continue,
            };
            let (_, events) = inbox.message(&gap.user, m, path.as_str()).await;
            for ev in events {
                out.emit(ev);
            }
            after = after.max(seq);
        }
        if !full || after + 1 >= b.before_seq {
            break;
        }
    }
    true
}

/// The id of the line for a group's change to `version`: the same on every
/// device and however the line was learnt, so it is kept once.
fn change_line_id(group: &skein_proto::bytes::GroupId, version: u64) -> [u8; 16] {
    let key = [group.0.as_slice(), &version.to_be_bytes()].concat();
    let mut id = [0u8; 16];
    id.copy_from_slice(&blake3::hash(&key).as_bytes()[..16]);
    id
}

/// The group `spec` names, if `me` may send to it now: a member of an
/// open group.
async fn sendable_group(
    groups: &GroupBook,
    spec: &str,
    me: &str,
) -> Result<skein_proto::group::MembershipBody, ControlReply> {
    let b = find_group(groups, spec).await?.body;
    if b.closed {
        return Err(ControlReply::err("conflict", format!("group {} is closed", b.name)));
    }
    if !b.has_member(me) {
        return Err(ControlReply::err("not_found", format!("you are not in group {}", b.name)));
    }
    Ok(b)
}

/// Where a new group message of this device belongs: the group at its
/// known version, a clock reading, and the device's next number for it
/// (claimed now, so call this just before the message is stored).
pub(crate) async fn group_stamp(
    groups: &GroupBook,
    sender: &Sender,
    b: &skein_proto::group::MembershipBody,
) -> Conversation {
    let last = sender.history.max_group_seq(&group_address(&b.group), sender.device).await.unwrap_or(0);
    let seq = groups.claim_seq(b.group, last);
    Conversation::Group { group: b.group, version: b.version, hlc: groups.tick(), seq }
}

/// Whether a recipient names a group: `#name`, or a group id.
fn is_group_spec(spec: &str) -> bool {
    spec.starts_with('#') || skein_proto::bytes::GroupId::from_hex(spec).is_some()
}

/// The group `spec` names among this user's, asking the tracker when it is
/// not known yet.
async fn find_group(groups: &GroupBook, spec: &str) -> Result<skein_proto::group::MembershipCert, ControlReply> {
    let known = groups.all();
    let found = match crate::groups::resolve(&known, spec) {
        Ok(c) => Ok(c.clone()),
        Err(_) => {
            groups.refresh().await;
            crate::groups::resolve(&groups.all(), spec).cloned()
        }
    };
    found.map_err(|e| match e {
        crate::groups::GroupNameError::Unknown(_) => ControlReply::err("not_found", e.to_string()),
        other => ControlReply::err("invalid_input", other.to_string()),
    })
}

/// Checks and normalises a recipient's user name.
fn recipient(to: &str) -> Result<String, ControlReply> {
    let to = to.trim().to_lowercase();
    if skein_proto::limits::valid_user_name(&to) {
        Ok(to)
    } else {
        Err(ControlReply::err("invalid_input", format!("{to:?} is not a user name")))
    }
}

/// Why [`deliver`] could not hand a message over.
enum Undelivered {
    /// The local history refused it.
    Local(String),
    /// There is no such user; the message is marked failed.
    NoSuchUser(String),
    /// Nothing could take it now; it stays queued and is retried.
    NotNow(String),
}

impl From<Undelivered> for ControlReply {
    fn from(u: Undelivered) -> ControlReply {
        match u {
            Undelivered::Local(e) => ControlReply::err("internal", e),
            Undelivered::NoSuchUser(e) => ControlReply::err("not_found", e),
            Undelivered::NotNow(e) => ControlReply::err("unavailable", e),
        }
    }
}

/// [`deliver`] for a group message, to its members.
async fn deliver_to(sender: &Sender, msg: &ChatMessage, members: &[String]) -> Result<&'static str, Undelivered> {
    match sender.store_and_send_to(msg, members).await {
        Ok(o) => Ok(o.as_str()),
        Err(crate::delivery::SendError::Local(e)) => Err(Undelivered::Local(e)),
        Err(e) => Err(Undelivered::NotNow(e.to_string())),
    }
}

/// Stores `msg` as queued while sending it. Returns the path it took
/// (`queued` when it waits). A message to a user who does not exist is
/// marked failed; anything else stays queued and is retried.
async fn deliver(sender: &Sender, msg: &ChatMessage) -> Result<&'static str, Undelivered> {
    match sender.store_and_send(msg).await {
        Ok(o) => Ok(o.as_str()),
        Err(crate::delivery::SendError::Local(e)) => Err(Undelivered::Local(e)),
        Err(e @ crate::delivery::SendError::NoSuchUser(_)) => {
            let _ = sender.history.set_outgoing_state(msg.id, OutState::Failed, crate::now_ms(), None).await;
            Err(Undelivered::NoSuchUser(e.to_string()))
        }
        Err(e) => Err(Undelivered::NotNow(e.to_string())),
    }
}

async fn next_event(rx: &mut Option<mpsc::Receiver<Event>>) -> Option<Event> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Asks the tracker whether a peer's device is still valid: its user is
/// enabled and the device holds a current certificate for this PeerId.
async fn confirm_device(client: Option<TrackerClient>, user: &str, device: DeviceId, peer_id: &[u8]) -> Answer {
    let Some(client) = client else { return Answer::Unknown };
    match client.request(Request::LookupPeer { user: user.to_owned() }).await {
        Ok(Response::Peer(info)) => {
            let known = info.known.iter().any(|c| c.body.device_id == device && c.body.peer_id == peer_id);
            if known { Answer::Valid } else { Answer::Invalid }
        }
        Ok(_) => Answer::Unknown,
        Err(e) => match e.body() {
            // The user is gone or disabled.
            Some(b) if b.code == ErrorCode::NotFound => Answer::Invalid,
            _ => Answer::Unknown,
        },
    }
}

/// A group request from the control socket; anything else is refused, so
/// the socket cannot be used to log the daemon's session in or out.
fn decode_group_request(hex_request: &str) -> Result<Request, String> {
    let bytes = hex::decode(hex_request).map_err(|e| format!("the group request is not hex: {e}"))?;
    match skein_proto::frame::decode_payload::<Request>(&bytes) {
        Ok(r @ (Request::GroupCreate(_) | Request::GroupList | Request::GroupUpdate { .. })) => Ok(r),
        Ok(_) => Err("only group requests pass through the daemon".into()),
        Err(e) => Err(format!("the group request does not decode: {e}")),
    }
}

fn lock(trust: &Mutex<Trust>) -> std::sync::MutexGuard<'_, Trust> {
    trust.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends one receipt per sender for `messages` (id, sending user).
async fn send_receipts(sender: &Sender, kind: ReceiptKind, messages: Vec<(MailId, String)>) {
    let mut by_sender: HashMap<String, Vec<MailId>> = HashMap::new();
    for (id, from) in messages {
        by_sender.entry(from).or_default().push(id);
    }
    for (from, ids) in by_sender {
        let r = Receipt { ids, kind, by_user: sender.me.clone(), at_ms: crate::now_ms() };
        if let Err(e) = sender.send_receipt(&from, r).await {
            tracing::info!(error = %e, ?kind, "receipt not sent");
        }
    }
}

impl Node {
    /// Reserves on the nearest of the organisation's relays (`listed`, and
    /// this tracker's own) with a standby; see [`crate::mesh::relays`].
    async fn use_relays(&self, listed: &[String]) {
        let mut all: Vec<Multiaddr> = self.own_relay.iter().cloned().collect();
        all.extend(listed.iter().filter_map(|a| a.parse::<Multiaddr>().ok()));
        self.mesh.use_relays(all).await;
    }
}

/// The relay's address: an explicit one from the tracker, or the tracker's
/// own host with the relay port.
fn relay_addr(info: &skein_proto::control::RelayInfo, client: &TrackerClient) -> Option<Multiaddr> {
    let peer = libp2p::PeerId::from_bytes(&info.peer_id).ok()?;
    let base: Multiaddr = match info.addrs.iter().find_map(|a| a.parse::<Multiaddr>().ok()) {
        Some(a) => a,
        None => crate::mesh::quic_addr(std::net::SocketAddr::new(client.remote_addr().ip(), info.port)),
    };
    Some(base.with(Protocol::P2p(peer)))
}
