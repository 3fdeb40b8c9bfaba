//! The node's calls: one task that owns this device's call (at most one
//! at a time), drives its [`signal`](super::signal) state machine with
//! peers' signals, the user's commands and the clock, carries out what it
//! asks (signals over the mesh, media, history lines) and reports each
//! change as a `{"type": "call"}` event and, once a second while media
//! flows, a `{"type": "call_stats"}` event.
//!
//! A call's history line ([`CallRecord`]) is sent by the caller's device
//! once the call is over, as a message, so every device of both users
//! shows it (the mailbox carries it to those offline). A callee device
//! that rang out without hearing from the caller records the missed call
//! itself, under the same message id, so it is never shown twice.

pub use super::media::Pictures;
use super::media::{MediaConfig, Session, SessionParams};
use super::signal::{Action, End, Incoming, Outgoing, Phase};
use crate::delivery::Sender;
use crate::events::Events;
use crate::inbox::Inbox;
use crate::mesh::{Mesh, PeerSummary};
use crate::tracker_client::TrackerClient;
use libp2p::PeerId;
use serde_json::{Value, json};
use skein_proto::bytes::{CallId, DeviceId};
use skein_proto::call::{CallOutcome, CallRecord, CallSignal, Media};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody, PeerRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How often timeouts are checked and statistics reported.
const TICK: Duration = Duration::from_millis(250);
/// How often a connected call reports its statistics.
const STATS_EVERY_MS: u64 = 1000;
/// How long a media failure waits for the other side's hang-up.
const MEDIA_FAILURE_GRACE_MS: u64 = 1500;
/// Media streams kept for a call that has not connected here yet.
const MAX_EARLY_STREAMS: usize = 8;

/// What may be asked of the calls task.
enum Input {
    Signal {
        from_user: String,
        from_device: DeviceId,
        peer: PeerId,
        signal: CallSignal,
    },
    Place {
        to: String,
        media: Media,
        test_source: bool,
        devices: Vec<PeerSummary>,
        reply: oneshot::Sender<Result<Value, String>>,
    },
    Answer {
        media: Option<Media>,
        test_source: bool,
        reply: oneshot::Sender<Result<Value, String>>,
    },
    HangUp {
        reply: oneshot::Sender<Result<Value, String>>,
    },
    Controls {
        muted: Option<bool>,
        camera: Option<bool>,
        reply: oneshot::Sender<Result<Value, String>>,
    },
    MediaFailed {
        call: CallId,
        reason: String,
    },
}

/// This device's calls; cheap to clone.
#[derive(Clone)]
pub struct Calls {
    tx: mpsc::Sender<Input>,
    shown: Arc<Mutex<Value>>,
    sender: Arc<Mutex<Sender>>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls").finish_non_exhaustive()
    }
}

/// What the calls task needs from the node.
#[derive(Debug)]
pub struct CallsContext {
    /// Sends signals and call lines; its tracker is kept current with [`Calls::set_tracker`].
    pub sender: Sender,
    /// Stores a missed call's line on this device.
    pub inbox: Inbox,
    /// Where events go.
    pub events: Events,
    /// Where media comes from.
    pub media: MediaConfig,
    /// Answer every call at once (tests and bots).
    pub auto_answer: bool,
}

impl Calls {
    /// Starts the calls task of a node.
    pub fn start(cx: CallsContext, stop: tokio_util::sync::CancellationToken) -> Calls {
        let (tx, rx) = mpsc::channel(64);
        let shown = Arc::new(Mutex::new(json!({"state": "idle"})));
        let sender = Arc::new(Mutex::new(cx.sender.clone()));
        let calls = Calls { tx: tx.clone(), shown: shown.clone(), sender: sender.clone() };
        let task = Task { cx, sender, current: None, shown, tx, outbound: spawn_outbound() };
        tokio::spawn(task.run(rx, stop));
        calls
    }

    /// The tracker connection changed.
    pub fn set_tracker(&self, tracker: Option<TrackerClient>) {
        lock(&self.sender).tracker = tracker;
    }

    /// A peer's call signal (its sender passed the hello).
    pub fn signal(&self, from_user: &str, from_device: DeviceId, peer: PeerId, signal: CallSignal) {
        let input = Input::Signal { from_user: from_user.to_owned(), from_device, peer, signal };
        if self.tx.try_send(input).is_err() {
            tracing::warn!(%peer, "dropping a call signal: the calls task is behind or stopped");
        }
    }

    /// A signal from a verified peer, whose certificate names its device.
    pub fn signal_from(&self, from: &crate::mesh::Verified, signal: CallSignal) {
        match PeerId::from_bytes(&from.cert.body.peer_id) {
            Ok(peer) => self.signal(&from.user, from.device, peer, signal),
            Err(e) => tracing::warn!(user = %from.user, error = %e, "a call signal from a certificate with no peer id"),
        }
    }

    /// Calls `to`: rings every online device of theirs.
    pub async fn place(&self, to: &str, media: Media, test_source: bool) -> Result<Value, String> {
        let sender = lock(&self.sender).clone();
        if to == sender.me {
            return Err("you cannot call yourself".into());
        }
        let devices = sender.devices(to).await.map_err(|e| e.to_string())?;
        self.ask(|reply| Input::Place { to: to.to_owned(), media, test_source, devices, reply }).await
    }

    /// Answers the ringing call (audio only when `media` says so; with the
    /// test sources when `test_source`).
    pub async fn answer(&self, media: Option<Media>, test_source: bool) -> Result<Value, String> {
        self.ask(|reply| Input::Answer { media, test_source, reply }).await
    }

    /// Hangs up, declines a ringing call, or gives up one that rings.
    pub async fn hang_up(&self) -> Result<Value, String> {
        self.ask(|reply| Input::HangUp { reply }).await
    }

    /// Mutes the microphone or turns the camera off (or back on).
    pub async fn controls(&self, muted: Option<bool>, camera: Option<bool>) -> Result<Value, String> {
        self.ask(|reply| Input::Controls { muted, camera, reply }).await
    }

    /// The current (or last) call, as `skein call` shows it.
    pub fn status(&self) -> Value {
        lock(&self.shown).clone()
    }

    async fn ask(&self, input: impl FnOnce(oneshot::Sender<Result<Value, String>>) -> Input) -> Result<Value, String> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(input(reply)).await.map_err(|_| "the node has stopped".to_owned())?;
        rx.await.map_err(|_| "the node has stopped".to_owned())?
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A batch of signals, sent at once, after the batch before.
type Batch = Vec<(PeerId, CallSignal)>;

/// Sends batches of signals in order (so a device never sees a hang-up
/// before the confirmation it follows), each batch's signals at once.
fn spawn_outbound() -> mpsc::UnboundedSender<(Mesh, Batch)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Mesh, Batch)>();
    tokio::spawn(async move {
        while let Some((mesh, batch)) = rx.recv().await {
            let sends = batch.into_iter().map(|(peer, signal)| {
                let mesh = mesh.clone();
                async move {
                    if let Err(e) = mesh.request(peer, PeerRequest::Call(signal.clone())).await {
                        tracing::info!(%peer, ?signal, error = %e, "a call signal did not reach its device");
                    }
                }
            });
            futures::future::join_all(sends).await;
        }
    });
    tx
}

enum Role {
    Out(Outgoing),
    In(Incoming),
}

struct Current {
    call: CallId,
    role: Role,
    with: String,
    media: Media,
    peers: HashMap<DeviceId, PeerId>,
    started_ms: u64,
    connected_ms: Option<u64>,
    session: Option<Session>,
    next_stats_ms: u64,
    /// The caller's device, for a callee's missed-call line.
    caller_device: Option<DeviceId>,
    ended: Option<String>,
    /// This call sends the test sources whatever the node's media says.
    test_source: bool,
    /// The statistics as the media stopped.
    final_stats: Option<Value>,
    /// The media failed: why, and when to hang up unless the other side does first.
    failing: Option<(String, u64)>,
    /// Media streams that came before the call connected here.
    /// (A stream is not `Sync`; the lock makes the task's state so.)
    early: Mutex<Vec<super::media::IncomingStream>>,
}

struct Task {
    cx: CallsContext,
    sender: Arc<Mutex<Sender>>,
    current: Option<Current>,
    shown: Arc<Mutex<Value>>,
    tx: mpsc::Sender<Input>,
    outbound: mpsc::UnboundedSender<(Mesh, Batch)>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mesh = lock(&self.sender).mesh.clone();
        let mut incoming = super::media::accept_all(&mesh);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => self.tick().await,
                Some(stream) = incoming.recv() => self.media_stream(stream),
                input = rx.recv() => match input {
                    None => break,
                    Some(i) => self.input(i).await,
                },
            }
        }
        // Stopping mid-call hangs up, so the other side is not left waiting.
        if self.current.as_ref().is_some_and(|c| c.ended.is_none()) {
            let actions = self.role_mut(|r, now| match r {
                Role::Out(o) => o.hang_up(now),
                Role::In(i) => i.hang_up(now),
            });
            self.carry_out(actions).await;
        }
    }

    /// A media stream a peer opened: to the call's media, or kept a moment
    /// for it when it came just before this side saw the call connect
    /// (the caller starts sending as it confirms the answer).
    fn media_stream(&mut self, stream: super::media::IncomingStream) {
        let Some(c) = self.current.as_mut().filter(|c| c.ended.is_none() && c.call == stream.head.call) else {
            tracing::debug!(peer = %stream.peer, "a media stream for no current call");
            return;
        };
        match c.session.as_mut() {
            Some(session) => session.take_stream(stream),
            None if lock(&c.early).len() < MAX_EARLY_STREAMS && c.peers.values().any(|p| *p == stream.peer) => {
                lock(&c.early).push(stream)
            }
            None => tracing::debug!(peer = %stream.peer, "too many media streams before the call connected"),
        }
    }

    fn busy(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.ended.is_none())
    }

    fn role_mut(&mut self, f: impl FnOnce(&mut Role, u64) -> Vec<Action>) -> Vec<Action> {
        let now = crate::now_ms();
        match self.current.as_mut() {
            Some(c) if c.ended.is_none() => f(&mut c.role, now),
            _ => Vec::new(),
        }
    }

    async fn input(&mut self, input: Input) {
        match input {
            Input::Signal { from_user, from_device, peer, signal } => {
                self.on_signal(from_user, from_device, peer, signal).await
            }
            Input::Place { to, media, test_source, devices, reply } => {
                if self.busy() {
                    let _ = reply.send(Err("you are already in a call; hang up first".into()));
                    return;
                }
                let mut id = [0u8; 16];
                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut id);
                let call = CallId(id);
                let now = crate::now_ms();
                let ids: Vec<DeviceId> = devices.iter().map(|d| d.device).collect();
                let (out, actions) = Outgoing::place(call, media, None, &ids, now);
                self.current = Some(Current {
                    call,
                    role: Role::Out(out),
                    with: to.clone(),
                    media,
                    peers: devices.iter().map(|d| (d.device, d.peer)).collect(),
                    started_ms: now,
                    connected_ms: None,
                    session: None,
                    next_stats_ms: 0,
                    caller_device: None,
                    ended: None,
                    test_source,
                    final_stats: None,
                    failing: None,
                    early: Mutex::default(),
                });
                let _ = reply.send(Ok(json!({"call": call.to_hex(), "with": to, "devices": ids.len()})));
                self.carry_out(actions).await;
            }
            Input::Answer { media, test_source, reply } => {
                let ringing = self.current.as_ref().is_some_and(|c| {
                    c.ended.is_none() && matches!(&c.role, Role::In(i) if i.phase() == Phase::Ringing)
                });
                if !ringing {
                    let _ = reply.send(Err("no call is ringing".into()));
                    return;
                }
                if let Some(c) = self.current.as_mut() {
                    c.test_source |= test_source;
                    if media == Some(Media::Audio) {
                        c.media = Media::Audio;
                    }
                }
                let actions = self.role_mut(|r, now| match r {
                    Role::In(i) => i.accept(now),
                    Role::Out(_) => Vec::new(),
                });
                let _ = reply.send(Ok(self.shown()));
                self.carry_out(actions).await;
            }
            Input::HangUp { reply } => {
                if !self.busy() {
                    let _ = reply.send(Err("there is no call to hang up".into()));
                    return;
                }
                let actions = self.role_mut(|r, now| match r {
                    Role::Out(o) => o.hang_up(now),
                    Role::In(i) => i.hang_up(now),
                });
                self.carry_out(actions).await;
                let _ = reply.send(Ok(self.shown()));
            }
            Input::Controls { muted, camera, reply } => {
                let answer = match self.current.as_ref().and_then(|c| c.session.as_ref()) {
                    None => Err("there is no connected call".into()),
                    Some(s) => {
                        if let Some(m) = muted {
                            s.set_muted(m);
                        }
                        if let Some(on) = camera {
                            s.set_camera(on);
                        }
                        Ok(json!({"muted": s.muted(), "camera": s.camera()}))
                    }
                };
                let _ = reply.send(answer);
            }
            Input::MediaFailed { call, reason } => {
                // The other side hanging up stops its streams a moment before
                // its hang-up arrives: the failure counts only if no hang-up
                // comes within the grace.
                if let Some(c) = self.current.as_mut().filter(|c| c.call == call && c.ended.is_none()) {
                    c.failing.get_or_insert((reason, crate::now_ms() + MEDIA_FAILURE_GRACE_MS));
                }
            }
        }
    }

    /// The media failed for good (no hang-up came in its grace): hang up.
    async fn media_failed(&mut self, call: CallId, reason: String) {
        if !self.current.as_ref().is_some_and(|c| c.call == call && c.ended.is_none()) {
            return;
        }
        tracing::warn!(%reason, "the call's media failed; hanging up");
        self.cx.events.emit(json!({"type": "call_error", "call": call.to_hex(), "error": reason}));
        if let Some(c) = self.current.as_mut() {
            c.ended = Some(format!("media failed: {reason}"));
        }
        let actions = self.role_mut_any(|r, now| match r {
            Role::Out(o) => o.hang_up(now),
            Role::In(i) => i.hang_up(now),
        });
        self.carry_out(actions).await;
    }

    /// [`Task::role_mut`] even when the call was marked ended by media.
    fn role_mut_any(&mut self, f: impl FnOnce(&mut Role, u64) -> Vec<Action>) -> Vec<Action> {
        let now = crate::now_ms();
        match self.current.as_mut() {
            Some(c) => f(&mut c.role, now),
            None => Vec::new(),
        }
    }

    async fn on_signal(&mut self, from_user: String, from_device: DeviceId, peer: PeerId, signal: CallSignal) {
        if let CallSignal::Invite(invite) = &signal {
            let now = crate::now_ms();
            let busy = self.busy() && self.current.as_ref().is_some_and(|c| c.call != invite.call);
            if self.current.as_ref().is_some_and(|c| c.call == invite.call) {
                return; // a repeated invite
            }
            let (incoming, actions) = Incoming::invited(from_device, invite, busy, now);
            let Some(incoming) = incoming else {
                self.send_now(peer, actions);
                return;
            };
            self.current = Some(Current {
                call: invite.call,
                role: Role::In(incoming),
                with: from_user,
                media: invite.media,
                peers: HashMap::from([(from_device, peer)]),
                started_ms: now,
                connected_ms: None,
                session: None,
                next_stats_ms: 0,
                caller_device: Some(from_device),
                ended: None,
                test_source: false,
                final_stats: None,
                failing: None,
                early: Mutex::default(),
            });
            self.carry_out(actions).await;
            if self.cx.auto_answer {
                let actions = self.role_mut(|r, now| match r {
                    Role::In(i) => i.accept(now),
                    Role::Out(_) => Vec::new(),
                });
                self.carry_out(actions).await;
            }
            return;
        }
        let Some(c) = self.current.as_mut() else {
            tracing::debug!(?signal, "a signal about no call of ours");
            return;
        };
        if c.with != from_user || c.call != signal.call() {
            // Late answers from a call that is over still get their cancel.
            if let (CallSignal::Accept(call), true) = (&signal, c.call != signal.call()) {
                let cancel =
                    CallSignal::Cancel { call: *call, reason: skein_proto::call::CancelReason::AnsweredElsewhere };
                self.send_now(peer, vec![Action::Send { device: from_device, signal: cancel }]);
            }
            return;
        }
        c.peers.entry(from_device).or_insert(peer);
        let now = crate::now_ms();
        let actions = match &mut c.role {
            Role::Out(o) => o.on_signal(from_device, &signal, now),
            Role::In(i) => i.on_signal(from_device, &signal, now),
        };
        self.carry_out(actions).await;
    }

    fn send_now(&self, peer: PeerId, actions: Vec<Action>) {
        let mesh = lock(&self.sender).mesh.clone();
        let batch: Batch = actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Send { signal, .. } => Some((peer, signal)),
                _ => None,
            })
            .collect();
        let _ = self.outbound.send((mesh, batch));
    }

    async fn tick(&mut self) {
        let due = self.current.as_ref().and_then(|c| match &c.failing {
            Some((why, at)) if c.ended.is_none() && crate::now_ms() >= *at => Some((c.call, why.clone())),
            _ => None,
        });
        if let Some((call, why)) = due {
            self.media_failed(call, why).await;
        }
        let actions = self.role_mut(|r, now| match r {
            Role::Out(o) => o.tick(now),
            Role::In(i) => i.tick(now),
        });
        self.carry_out(actions).await;
        let now = crate::now_ms();
        let Some(c) = self.current.as_mut() else { return };
        let Some(session) = c.session.as_ref() else { return };
        if now < c.next_stats_ms {
            return;
        }
        c.next_stats_ms = now + STATS_EVERY_MS;
        let mesh = lock(&self.sender).mesh.clone();
        let stats = stats_line(&mesh, c, session).await;
        lock(&self.shown)["stats"] = stats.clone();
        self.cx.events.emit(stats);
    }

    async fn carry_out(&mut self, actions: Vec<Action>) {
        let mesh = lock(&self.sender).mesh.clone();
        let mut batch: Batch = Vec::new();
        let mut reports = Vec::new();
        for action in actions {
            let Some(c) = self.current.as_mut() else { return };
            match action {
                Action::Send { device, signal } => match c.peers.get(&device) {
                    Some(peer) => batch.push((*peer, signal)),
                    None => tracing::debug!(%device, "no connection to a device of the call"),
                },
                Action::Report(phase) => reports.push(phase),
                Action::StartMedia(device) => {
                    c.connected_ms = Some(crate::now_ms());
                    // The first figures once a whole second has been measured.
                    c.next_stats_ms = crate::now_ms() + STATS_EVERY_MS;
                    let Some(peer) = c.peers.get(&device).copied() else { continue };
                    let params = SessionParams {
                        call: c.call,
                        peer,
                        media: c.media,
                        caller: matches!(c.role, Role::Out(_)),
                        config: MediaConfig {
                            test_source: c.test_source || self.cx.media.test_source,
                            ..self.cx.media.clone()
                        },
                    };
                    let failed = self.tx.clone();
                    let call = c.call;
                    let on_failure = move |reason: String| {
                        let _ = failed.try_send(Input::MediaFailed { call, reason });
                    };
                    match Session::start(params, mesh.clone(), Box::new(on_failure)) {
                        Ok(mut s) => {
                            let early = std::mem::take(&mut *lock(&c.early));
                            for early in early {
                                s.take_stream(early);
                            }
                            c.session = Some(s);
                        }
                        Err(e) => {
                            let reason = e.to_string();
                            self.cx
                                .events
                                .emit(json!({"type": "call_error", "call": c.call.to_hex(), "error": reason}));
                            let _ = self.tx.try_send(Input::MediaFailed { call: c.call, reason });
                        }
                    }
                }
                Action::StopMedia => {
                    if let Some(s) = c.session.take() {
                        let mut last = stats_line(&mesh, c, &s).await;
                        last["final"] = json!(true);
                        c.final_stats = Some(last);
                        s.stop();
                    }
                }
                Action::RecordMissed => self.record_missed().await,
            }
        }
        if !batch.is_empty() {
            let _ = self.outbound.send((mesh, batch));
        }
        for phase in reports {
            self.report(phase).await;
        }
    }

    fn shown(&self) -> Value {
        lock(&self.shown).clone()
    }

    async fn report(&mut self, phase: Phase) {
        let Some(c) = self.current.as_mut() else { return };
        let now = crate::now_ms();
        let (state, reason) = match phase {
            Phase::Inviting => ("calling", None),
            Phase::Ringing => ("ringing", None),
            Phase::Answering => ("answering", None),
            Phase::Connected(_) => ("connected", None),
            Phase::Ended(end) => ("ended", Some(end_reason(end))),
        };
        let path = match (phase, c.session.as_ref()) {
            (Phase::Connected(_), Some(s)) => {
                let mesh = lock(&self.sender).mesh.clone();
                mesh.peers().await.into_iter().find(|p| p.peer == s.peer()).map(|p| p.path.as_str())
            }
            _ => None,
        };
        let outgoing = matches!(c.role, Role::Out(_));
        let mut record_to = None;
        let mut v = json!({
            "type": "call", "call": c.call.to_hex(), "with": c.with, "state": state,
            "direction": if outgoing { "outgoing" } else { "incoming" },
            "media": media_name(c.media),
        });
        if let Some(p) = path {
            v["path"] = json!(p);
        }
        if let Phase::Ended(end) = phase {
            let reason = c.ended.clone().unwrap_or_else(|| reason.unwrap_or_default().to_owned());
            v["reason"] = json!(reason);
            c.ended = Some(reason);
            v["duration_ms"] = json!(c.connected_ms.map(|t| now.saturating_sub(t)));
            v["connected"] = json!(c.connected_ms.is_some());
            if let Some(last) = &c.final_stats {
                v["stats"] = last.clone();
            }
            if outgoing {
                let record = CallRecord { call: c.call, media: c.media, outcome: outcome(end, c.connected_ms, now) };
                record_to = Some((c.with.clone(), record));
            }
        }
        {
            let mut shown = lock(&self.shown);
            let stats = shown.get("stats").cloned();
            // Every state the call went through, so a caller that looks
            // now and then misses none.
            let mut states = match shown.get("states") {
                Some(Value::Array(s)) if shown["call"] == v["call"] => s.clone(),
                _ => Vec::new(),
            };
            states.push(json!(state));
            *shown = v.clone();
            shown["states"] = Value::Array(states);
            shown["started_ms"] = json!(c.started_ms);
            if let Some(s) = v.get("stats").cloned().or(stats).filter(|s| s["call"] == v["call"]) {
                shown["stats"] = s;
            }
        }
        self.cx.events.emit(v);
        if let Some((with, record)) = record_to {
            self.send_record(with, record);
        }
    }

    /// The caller's device sends the call's line to the callee (and its own
    /// other devices), storing it here first.
    fn send_record(&self, to: String, record: CallRecord) {
        let sender = lock(&self.sender).clone();
        let msg = ChatMessage {
            id: CallRecord::message_id(&record.call),
            from_user: sender.me.clone(),
            from_device: sender.device,
            to_user: to,
            conversation: Conversation::Direct,
            sent_at_ms: crate::now_ms(),
            body: MessageBody::Call(record),
        };
        let events = self.cx.events.clone();
        tokio::spawn(async move {
            match sender.store_and_send(&msg).await {
                Ok(o) => events.emit(crate::daemon::sent_event(&msg, o.as_str())),
                Err(e) => tracing::warn!(error = %e, "the call's history line could not be sent"),
            }
        });
    }

    /// A callee device that rang out records the missed call itself.
    async fn record_missed(&self) {
        let Some(c) = self.current.as_ref() else { return };
        let Some(device) = c.caller_device else { return };
        let msg = ChatMessage {
            id: CallRecord::message_id(&c.call),
            from_user: c.with.clone(),
            from_device: device,
            to_user: self.cx.inbox.me.clone(),
            conversation: Conversation::Direct,
            sent_at_ms: c.started_ms,
            body: MessageBody::Call(CallRecord { call: c.call, media: c.media, outcome: CallOutcome::Missed }),
        };
        // Recorded as if it came the way the caller's signals did.
        let caller = c.peers.get(&device).copied();
        let mesh = lock(&self.sender).mesh.clone();
        let path =
            mesh.peers().await.into_iter().find(|p| Some(p.peer) == caller).map_or("direct", |p| p.path.as_str());
        let (_, events) = self.cx.inbox.message(&c.with, &msg, path).await;
        for ev in events {
            self.cx.events.emit(ev);
        }
    }
}

/// A `call_stats` line: the session's figures, with the path and
/// round-trip time as the mesh sees them.
fn stats_line(mesh: &Mesh, c: &Current, session: &Session) -> impl Future<Output = Value> + Send + use<> {
    let (mesh, peer) = (mesh.clone(), session.peer());
    let (mut stats, call, with, connected_ms) = (session.stats(), c.call, c.with.clone(), c.connected_ms);
    async move {
        let now = crate::now_ms();
        let peer = mesh.peers().await.into_iter().find(|p| p.peer == peer);
        stats["type"] = json!("call_stats");
        stats["call"] = json!(call.to_hex());
        stats["with"] = json!(with);
        stats["path"] = json!(peer.as_ref().map_or("unknown", |p| p.path.as_str()));
        stats["rtt_ms"] = json!(peer.and_then(|p| p.rtt).map(|r| (r.as_secs_f64() * 10_000.0).round() / 10.0));
        stats["at_ms"] = json!(now);
        stats["seconds"] = json!(connected_ms.map_or(0, |t| now.saturating_sub(t) / 1000));
        stats
    }
}

fn media_name(m: Media) -> &'static str {
    match m {
        Media::Audio => "audio",
        Media::Video => "video",
    }
}

fn end_reason(end: End) -> &'static str {
    match end {
        End::HungUp(true) => "hung up",
        End::HungUp(false) => "hung up by the other side",
        End::Declined => "declined",
        End::Busy => "busy in another call",
        End::NoAnswer => "no answer",
        End::Cancelled => "cancelled",
        End::AnsweredElsewhere => "answered on another device",
        End::Missed => "missed",
        End::Lost => "the caller did not confirm the answer",
    }
}

fn outcome(end: End, connected_ms: Option<u64>, now: u64) -> CallOutcome {
    match (end, connected_ms) {
        (_, Some(t)) => CallOutcome::Answered { duration_ms: now.saturating_sub(t) },
        (End::Declined, None) => CallOutcome::Declined,
        (End::Busy, None) => CallOutcome::Busy,
        _ => CallOutcome::Missed,
    }
}
