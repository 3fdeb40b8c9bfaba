//! The node's calls: one task that owns this device's call (at most one
//! at a time), drives the [`signal`](super::signal) state machine of each
//! of its legs (`super::call`) with peers' signals, the user's commands and
//! the clock, carries out what they ask (signals over the mesh, media,
//! history lines) and reports each change as a `{"type": "call"}` event
//! and, once a second per connected leg, a `{"type": "call_stats"}` event.
//!
//! A group call's host rings every other member; whenever one answers, it
//! sends everyone connected the roster, and each pair of members links up
//! directly (the device with the smaller id invites, the other answers by
//! itself), so media flows in a full mesh. One capture feeds every leg.

use super::call::{Current, GroupCall, Leg, MAX_PARTICIPANTS, Role, end_reason};
use super::capture::{CaptureParams, SharedCapture};
pub use super::media::Pictures;
use super::media::{MediaConfig, Session, SessionParams};
use super::record;
use super::signal::{Action, Incoming, Outgoing, Phase};
use crate::delivery::Sender;
use crate::events::Events;
use crate::group_book::GroupBook;
use crate::inbox::Inbox;
use crate::mesh::{Mesh, PeerSummary};
use crate::tracker_client::TrackerClient;
use libp2p::PeerId;
use serde_json::{Value, json};
use skein_media::VideoCodec;
use skein_proto::bytes::{CallId, DeviceId};
use skein_proto::call::{CallRecord, CallSignal, CancelReason, Invite, Media, Participant};
use skein_proto::peer::PeerRequest;
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
/// Media streams kept for a leg that has not connected here yet.
const MAX_EARLY_STREAMS: usize = 8;
/// How long a node that stops mid-call waits for its hang-ups to go out.
const HANG_UP_WITHIN: Duration = Duration::from_secs(2);

type Reply = oneshot::Sender<Result<Value, String>>;

/// What may be asked of the calls task.
enum Input {
    Signal {
        from_user: String,
        from_device: DeviceId,
        peer: PeerId,
        signal: CallSignal,
    },
    Place {
        group: Option<GroupCall>,
        media: Media,
        test_source: bool,
        /// Each user to ring, with their devices online now.
        targets: Vec<(String, Vec<PeerSummary>)>,
        reply: Reply,
    },
    /// A group call's member to link up with, found.
    Link {
        call: CallId,
        user: String,
        device: DeviceId,
        peer: PeerId,
    },
    Answer {
        media: Option<Media>,
        test_source: bool,
        reply: Reply,
    },
    HangUp {
        reply: Reply,
    },
    Controls {
        muted: Option<bool>,
        camera: Option<bool>,
        reply: Reply,
    },
    /// The devices present, and (when set) the microphone and camera to
    /// use from the next call on.
    Devices {
        found: Vec<skein_media::devices::Device>,
        /// The microphone and the camera, each left as it is when absent.
        set: Option<(Option<DeviceChoice>, Option<DeviceChoice>)>,
        reply: Reply,
    },
    /// The media failed: a leg's (`with`), or the whole call's capture.
    MediaFailed {
        call: CallId,
        with: Option<String>,
        reason: String,
    },
}

/// This device's calls; cheap to clone.
#[derive(Clone)]
pub struct Calls {
    tx: mpsc::Sender<Input>,
    shown: Arc<Mutex<Value>>,
    sender: Arc<Mutex<Sender>>,
    /// Whether the task has stopped (having hung up any call).
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls").finish_non_exhaustive()
    }
}

/// A device by name, or `None` for the system's default.
type DeviceChoice = Option<String>;

/// What the calls task needs from the node.
#[derive(Debug)]
pub struct CallsContext {
    /// Sends signals and call lines; its tracker is kept current with [`Calls::set_tracker`].
    pub sender: Sender,
    /// Stores a missed call's line on this device.
    pub inbox: Inbox,
    /// The groups this user is in, for group calls and their lines.
    pub groups: GroupBook,
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
        let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
        let calls = Calls { tx: tx.clone(), shown: shown.clone(), sender: sender.clone(), stopped };
        let task = Task { cx, sender, current: None, shown, tx, outbound: spawn_outbound(), stopped: stopped_tx };
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
        let targets = vec![(to.to_owned(), devices)];
        self.ask(|reply| Input::Place { group: None, media, test_source, targets, reply }).await
    }

    /// Calls group `group` (named `name`, with `members`): rings every
    /// online device of every other member.
    pub async fn place_group(
        &self,
        group: skein_proto::bytes::GroupId,
        name: &str,
        members: &[String],
        media: Media,
        test_source: bool,
    ) -> Result<Value, String> {
        if members.len() > MAX_PARTICIPANTS {
            return Err(format!(
                "group {name} has {} members; a group call takes at most {MAX_PARTICIPANTS} (call its members one by one, or make a smaller group)",
                members.len()
            ));
        }
        let sender = lock(&self.sender).clone();
        let others: Vec<String> = members.iter().filter(|m| **m != sender.me).cloned().collect();
        if others.is_empty() {
            return Err(format!("group {name} has no one else to call"));
        }
        let found = futures::future::join_all(others.iter().map(|u| sender.devices(u))).await;
        let targets = others.into_iter().zip(found).map(|(u, d)| (u, d.unwrap_or_default())).collect();
        let group = GroupCall { id: group, name: name.to_owned(), members: members.to_vec() };
        self.ask(|reply| Input::Place { group: Some(group), media, test_source, targets, reply }).await
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

    /// The microphones and cameras present and the ones calls use, after
    /// setting them when `set` has them ("" for the system's default,
    /// `None` to leave one as it is): from the next call on. A name no
    /// device has is refused, naming it.
    pub async fn devices(&self, set: Option<(Option<String>, Option<String>)>) -> Result<Value, String> {
        let found = tokio::task::spawn_blocking(skein_media::devices::list)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let device = |n: Option<String>| n.map(|n| Some(n.trim().to_owned()).filter(|n| !n.is_empty()));
        let set = set.map(|(m, c)| (device(m), device(c)));
        if let Some((m, c)) = &set {
            for (kind, name) in [("microphone", m), ("camera", c)] {
                if let Some(Some(name)) = name
                    && !found.iter().any(|d| d.kind == kind && &d.name == name)
                {
                    return Err(skein_media::MediaError::NoDevice { kind, name: name.clone() }.to_string());
                }
            }
        }
        self.ask(|reply| Input::Devices { found, set, reply }).await
    }

    /// Waits until the task has stopped: once the node stops, after the
    /// hang-up of a call it was in has gone out (or 2 s have passed).
    pub async fn stopped(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// The current (or last) call, as `skein call` shows it.
    pub fn status(&self) -> Value {
        lock(&self.shown).clone()
    }

    async fn ask(&self, input: impl FnOnce(Reply) -> Input) -> Result<Value, String> {
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

/// A batch to send, and who to tell once it is sent.
type Outbound = (Mesh, Batch, Option<oneshot::Sender<()>>);

/// Sends batches of signals in order (so a device never sees a hang-up
/// before the confirmation it follows), each batch's signals at once.
fn spawn_outbound() -> mpsc::UnboundedSender<Outbound> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    tokio::spawn(async move {
        while let Some((mesh, batch, sent)) = rx.recv().await {
            let sends = batch.into_iter().map(|(peer, signal)| {
                let mesh = mesh.clone();
                async move {
                    if let Err(e) = mesh.request(peer, PeerRequest::Call(signal.clone())).await {
                        tracing::info!(%peer, ?signal, error = %e, "a call signal did not reach its device");
                    }
                }
            });
            futures::future::join_all(sends).await;
            if let Some(sent) = sent {
                let _ = sent.send(());
            }
        }
    });
    tx
}

struct Task {
    cx: CallsContext,
    sender: Arc<Mutex<Sender>>,
    current: Option<Current>,
    shown: Arc<Mutex<Value>>,
    tx: mpsc::Sender<Input>,
    outbound: mpsc::UnboundedSender<Outbound>,
    stopped: tokio::sync::watch::Sender<bool>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mesh = self.mesh();
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
        // Stopping mid-call hangs up, so the others are not left waiting,
        // and waits a moment for the hang-ups to go out.
        if self.busy() {
            self.hang_up_all().await;
            let (sent, gone) = oneshot::channel();
            let _ = self.outbound.send((self.mesh(), Vec::new(), Some(sent)));
            if tokio::time::timeout(HANG_UP_WITHIN, gone).await.is_err() {
                tracing::info!("stopping before the call's hang-up went out");
            }
        }
        self.stopped.send_replace(true);
    }

    fn mesh(&self) -> Mesh {
        lock(&self.sender).mesh.clone()
    }

    fn live(&mut self) -> Option<&mut Current> {
        self.current.as_mut().filter(|c| c.live())
    }

    /// A media stream a peer opened: to its leg's media, or kept a moment
    /// for it when it came just before this side saw the leg connect (the
    /// caller starts sending as it confirms the answer).
    fn media_stream(&mut self, stream: super::media::IncomingStream) {
        let Some(c) = self.current.as_mut().filter(|c| c.live() && c.call == stream.head.call) else {
            tracing::debug!(peer = %stream.peer, "a media stream for no current call");
            return;
        };
        let leg = c.legs.iter_mut().filter(|l| l.live()).find(|l| l.peers.values().any(|p| *p == stream.peer));
        match leg {
            Some(leg) => match leg.session.as_mut() {
                Some(session) => session.take_stream(stream),
                None if lock(&leg.early).len() < MAX_EARLY_STREAMS => lock(&leg.early).push(stream),
                None => tracing::debug!(peer = %stream.peer, "too many media streams before the call connected"),
            },
            None => tracing::debug!(peer = %stream.peer, "a media stream from no participant of the call"),
        }
    }

    fn busy(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.live())
    }

    /// Runs `f` on leg `i` of the live call, then carries out what it asks.
    async fn on_leg(&mut self, i: usize, f: impl FnOnce(&mut Role, u64) -> Vec<Action>) {
        let now = crate::now_ms();
        let actions = match self.live().and_then(|c| c.legs.get_mut(i)).filter(|l| l.live()) {
            Some(leg) => f(&mut leg.role, now),
            None => return,
        };
        self.carry_out(i, actions).await;
    }

    async fn hang_up_all(&mut self) {
        let Some(c) = self.live() else { return };
        c.hung_up_here = true;
        for i in 0..c.legs.len() {
            self.on_leg(i, |r, now| r.hang_up(now)).await;
        }
    }

    async fn input(&mut self, input: Input) {
        match input {
            Input::Signal { from_user, from_device, peer, signal } => {
                self.on_signal(from_user, from_device, peer, signal).await
            }
            Input::Place { group, media, test_source, targets, reply } => {
                if self.busy() {
                    let _ = reply.send(Err("you are already in a call; hang up first".into()));
                    return;
                }
                let call = CallId(crate::random_id());
                let now = crate::now_ms();
                let mut c = Current::new(call, media, group, true, now);
                c.test_source = test_source;
                let gid = c.group.as_ref().map(|g| g.id);
                let mut actions = Vec::new();
                for (user, devices) in targets {
                    let ids: Vec<DeviceId> = devices.iter().map(|d| d.device).collect();
                    let (out, a) = Outgoing::place(call, media, gid, &ids, now);
                    let peers = devices.iter().map(|d| (d.device, d.peer)).collect();
                    actions.push(a);
                    c.legs.push(Leg::new(user, Role::Out(out), peers, None));
                }
                let devices: usize = c.legs.iter().map(|l| l.peers.len()).sum();
                let _ = reply.send(Ok(json!({"call": call.to_hex(), "with": c.with(), "devices": devices})));
                self.current = Some(c);
                for (i, a) in actions.into_iter().enumerate() {
                    self.carry_out(i, a).await;
                }
            }
            Input::Link { call, user, device, peer } => self.link(call, user, device, peer).await,
            Input::Answer { media, test_source, reply } => {
                let ringing = self.live().and_then(|c| {
                    c.legs.iter().position(|l| matches!(&l.role, Role::In(i) if i.phase() == Phase::Ringing))
                });
                let Some(i) = ringing else {
                    let _ = reply.send(Err("no call is ringing".into()));
                    return;
                };
                if let Some(c) = self.live() {
                    c.test_source |= test_source;
                    if media == Some(Media::Audio) {
                        c.media = Media::Audio;
                    }
                }
                self.on_leg(i, |r, now| r.accept(now)).await;
                let _ = reply.send(Ok(self.shown()));
            }
            Input::HangUp { reply } => {
                if !self.busy() {
                    let _ = reply.send(Err("there is no call to hang up".into()));
                    return;
                }
                self.hang_up_all().await;
                let _ = reply.send(Ok(self.shown()));
            }
            Input::Controls { muted, camera, reply } => {
                let answer = match self.live().and_then(|c| c.capture.clone()) {
                    None => Err("there is no connected call".into()),
                    Some(capture) => {
                        if let Some(m) = muted {
                            capture.set_muted(m);
                        }
                        if let Some(on) = camera {
                            capture.set_camera(on);
                        }
                        Ok(json!({"muted": capture.muted(), "camera": capture.camera()}))
                    }
                };
                let _ = reply.send(answer);
            }
            Input::Devices { found, set, reply } => {
                let media = &mut self.cx.media;
                if let Some((microphone, camera)) = set {
                    if let Some(m) = microphone {
                        media.microphone = m;
                    }
                    if let Some(c) = camera {
                        media.camera = c;
                    }
                }
                let names =
                    |kind: &str| found.iter().filter(|d| d.kind == kind).map(|d| d.name.clone()).collect::<Vec<_>>();
                let _ = reply.send(Ok(json!({
                    "microphone": media.microphone,
                    "camera": media.camera,
                    "microphones": names("microphone"),
                    "cameras": names("camera"),
                    "test_source": media.test_source,
                })));
            }
            Input::MediaFailed { call, with: Some(with), reason } => {
                // The other side hanging up stops its streams a moment before
                // its hang-up arrives: the failure counts only if no hang-up
                // comes within the grace.
                let leg = self.live().filter(|c| c.call == call).and_then(|c| {
                    let i = c.leg_with(&with)?;
                    c.legs.get_mut(i)
                });
                if let Some(leg) = leg {
                    leg.failing.get_or_insert((reason, crate::now_ms() + MEDIA_FAILURE_GRACE_MS));
                }
            }
            Input::MediaFailed { call, with: None, reason } => {
                // The capture failed: nothing can be sent to anyone.
                let Some(c) = self.live().filter(|c| c.call == call) else { return };
                tracing::warn!(%reason, "the call's capture failed; hanging up");
                for leg in c.legs.iter_mut().filter(|l| l.live()) {
                    leg.failing = Some((reason.clone(), 0));
                }
                self.tick().await;
            }
        }
    }

    /// A leg's media failed for good (no hang-up came in its grace): that
    /// leg hangs up.
    async fn leg_failed(&mut self, i: usize) {
        let Some(c) = self.current.as_mut().filter(|c| c.live()) else { return };
        let call = c.call;
        let Some(leg) = c.legs.get_mut(i).filter(|l| l.live()) else { return };
        let Some((reason, _)) = leg.failing.clone() else { return };
        tracing::warn!(%reason, with = %leg.with, "the call's media failed; hanging up");
        self.cx.events.emit(json!({"type": "call_error", "call": call.to_hex(), "error": reason}));
        let now = crate::now_ms();
        let mut actions = leg.role.hang_up(now);
        leg.ended = Some(format!("media failed: {reason}"));
        if actions.is_empty() {
            // Nothing to hang up (not connected yet): the leg ends as it is.
            actions.push(Action::StopMedia);
        }
        self.carry_out(i, actions).await;
    }

    async fn on_signal(&mut self, from_user: String, from_device: DeviceId, peer: PeerId, signal: CallSignal) {
        match &signal {
            CallSignal::Invite(invite) => return self.invited(from_user, from_device, peer, invite).await,
            CallSignal::Roster { call, members } => return self.roster(&from_user, from_device, *call, members),
            _ => {}
        }
        let Some(c) = self.current.as_mut() else {
            tracing::debug!(?signal, "a signal about no call of ours");
            return;
        };
        let leg = c.legs.iter().rposition(|l| l.with == from_user);
        let Some(i) = leg.filter(|_| c.call == signal.call()) else {
            // Late answers from a call that is over still get their cancel.
            if let CallSignal::Accept(call) = &signal
                && c.call != *call
            {
                let cancel = CallSignal::Cancel { call: *call, reason: CancelReason::AnsweredElsewhere };
                self.send_now(peer, vec![Action::Send { device: from_device, signal: cancel }]);
            }
            return;
        };
        if let Some(leg) = c.legs.get_mut(i) {
            leg.peers.entry(from_device).or_insert(peer);
        }
        self.on_leg(i, |r, now| r.on_signal(from_device, &signal, now)).await;
    }

    /// An invite: a new call, a busy line, or (in a group call already
    /// under way) another participant linking up.
    async fn invited(&mut self, from_user: String, from_device: DeviceId, peer: PeerId, invite: &Invite) {
        let now = crate::now_ms();
        if let Some(c) = self.live().filter(|c| c.call == invite.call) {
            let member = c.group.as_ref().is_some_and(|g| Some(g.id) == invite.group && g.members.contains(&from_user));
            if !member || c.leg_with(&from_user).is_some() {
                return; // a repeated invite
            }
            let (incoming, mut actions) = Incoming::invited(from_device, invite, false, now);
            let Some(mut incoming) = incoming else { return };
            actions.extend(incoming.accept(now));
            let peers = HashMap::from([(from_device, peer)]);
            c.legs.push(Leg::new(from_user, Role::In(incoming), peers, Some(from_device)));
            let i = c.legs.len() - 1;
            return self.carry_out(i, actions).await;
        }
        if self.current.as_ref().is_some_and(|c| c.call == invite.call) {
            // A call this device has left: a participant who had not yet
            // linked up with it is told so, rather than ringing it again.
            let decline = Action::Send { device: from_device, signal: CallSignal::Decline(invite.call) };
            self.send_now(peer, vec![decline]);
            return;
        }
        let (incoming, actions) = Incoming::invited(from_device, invite, self.busy(), now);
        let Some(incoming) = incoming else {
            self.send_now(peer, actions);
            return;
        };
        let group = match invite.group {
            Some(id) => self.group_of(id, &from_user).await,
            None => None,
        };
        let mut c = Current::new(invite.call, invite.media, group, false, now);
        c.legs.push(Leg::new(from_user, Role::In(incoming), HashMap::from([(from_device, peer)]), Some(from_device)));
        self.current = Some(c);
        self.carry_out(0, actions).await;
        if self.cx.auto_answer {
            self.on_leg(0, |r, now| r.accept(now)).await;
        }
    }

    /// The group a call invites to, when both this user and the caller are
    /// in it and it is small enough for a group call (otherwise the call is
    /// taken as a plain one from the caller, and links up with no one else).
    async fn group_of(&self, id: skein_proto::bytes::GroupId, caller: &str) -> Option<GroupCall> {
        let cert = self.cx.groups.current(id, 0).await;
        let me = self.cx.inbox.me.clone();
        match cert {
            Some(c)
                if c.body.has_member(caller)
                    && c.body.has_member(&me)
                    && !c.body.closed
                    && c.body.members.len() <= MAX_PARTICIPANTS =>
            {
                Some(GroupCall { id, name: c.body.name.clone(), members: c.body.members.clone() })
            }
            _ => {
                tracing::info!(%caller, "a group call's invite for a group we do not share; taken as a direct call");
                None
            }
        }
    }

    /// The host's roster of a group call: link up with every participant
    /// this device has no leg with, where this device's id is the smaller.
    fn roster(&mut self, from_user: &str, from_device: DeviceId, call: CallId, members: &[Participant]) {
        let sender = lock(&self.sender).clone();
        let Some(c) = self.current.as_ref().filter(|c| c.live() && c.call == call && c.group.is_some()) else {
            return;
        };
        let from_host = c.legs.iter().any(|l| l.with == from_user && l.caller_device == Some(from_device));
        if !from_host {
            tracing::info!(%from_user, "a group call's roster from someone who did not invite us; ignored");
            return;
        }
        let group = c.group.as_ref().map(|g| g.members.clone()).unwrap_or_default();
        for p in members {
            if p.user == sender.me
                || p.device <= sender.device
                || !group.contains(&p.user)
                || c.leg_with(&p.user).is_some()
            {
                continue;
            }
            let (sender, tx, p) = (sender.clone(), self.tx.clone(), p.clone());
            tokio::spawn(async move {
                let found = sender.devices(&p.user).await.unwrap_or_default();
                match found.into_iter().find(|d| d.device == p.device) {
                    Some(d) => {
                        let _ = tx.send(Input::Link { call, user: p.user, device: p.device, peer: d.peer }).await;
                    }
                    None => tracing::info!(user = %p.user, "cannot reach a group call's participant to link up"),
                }
            });
        }
    }

    /// Links up with another participant of the group call.
    async fn link(&mut self, call: CallId, user: String, device: DeviceId, peer: PeerId) {
        let now = crate::now_ms();
        let Some(c) = self.live().filter(|c| c.call == call && c.leg_with(&user).is_none()) else { return };
        let (out, actions) = Outgoing::place(call, c.media, c.group.as_ref().map(|g| g.id), &[device], now);
        c.legs.push(Leg::new(user, Role::Out(out), HashMap::from([(device, peer)]), None));
        let i = c.legs.len() - 1;
        self.carry_out(i, actions).await;
    }

    fn send_now(&self, peer: PeerId, actions: Vec<Action>) {
        let batch: Batch = actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Send { signal, .. } => Some((peer, signal)),
                _ => None,
            })
            .collect();
        let _ = self.outbound.send((self.mesh(), batch, None));
    }

    async fn tick(&mut self) {
        let now = crate::now_ms();
        let legs = self.live().map_or(0, |c| c.legs.len());
        for i in 0..legs {
            let failed = self
                .live()
                .and_then(|c| c.legs.get(i))
                .is_some_and(|l| l.live() && l.failing.as_ref().is_some_and(|(_, at)| now >= *at));
            if failed {
                self.leg_failed(i).await;
            }
            self.on_leg(i, |r, now| r.tick(now)).await;
        }
        // Each connected leg's figures, once a second.
        let mesh = self.mesh();
        let Some(c) = self.current.as_mut() else { return };
        let mut changed = false;
        for leg in c.legs.iter_mut().filter(|l| l.live() && now >= l.next_stats_ms) {
            let Some(session) = leg.session.as_ref() else { continue };
            leg.next_stats_ms = now + STATS_EVERY_MS;
            let stats = stats_line(&mesh, c.call, leg, session).await;
            leg.path = stats["path"].as_str().map(str::to_owned);
            leg.stats = Some(stats.clone());
            self.cx.events.emit(stats);
            changed = true;
        }
        if changed {
            *lock(&self.shown) = c.shown();
        }
    }

    /// Carries out what leg `i`'s state machine asked, then reports the
    /// call's state, and ends the call once every leg is over.
    async fn carry_out(&mut self, i: usize, actions: Vec<Action>) {
        let mesh = self.mesh();
        let mut batch: Batch = Vec::new();
        let mut connected = false;
        for action in actions {
            let Some(c) = self.current.as_mut() else { return };
            let Some(leg) = c.legs.get_mut(i) else { return };
            match action {
                Action::Send { device, signal } => match leg.peers.get(&device) {
                    Some(peer) => batch.push((*peer, signal)),
                    None => tracing::debug!(%device, "no connection to a device of the call"),
                },
                Action::Report(Phase::Ended(end)) => {
                    leg.ended.get_or_insert_with(|| end_reason(end).to_owned());
                    if leg.session.is_none() {
                        leg.early = Mutex::default();
                    }
                    c.last_end = Some(end);
                }
                Action::Report(_) => {}
                Action::StartMedia(device) => {
                    connected = true;
                    self.start_media(i, device, &mesh).await;
                }
                Action::StopMedia => {
                    if let Some(s) = leg.session.take() {
                        let mut last = stats_line(&mesh, c.call, leg, &s).await;
                        last["final"] = json!(true);
                        leg.stats = Some(last);
                        s.stop();
                    }
                }
                Action::RecordMissed if c.group.is_none() => self.record_missed(i).await,
                Action::RecordMissed => {}
            }
        }
        if !batch.is_empty() {
            let _ = self.outbound.send((mesh, batch, None));
        }
        if connected {
            self.send_roster();
        }
        self.report().await;
    }

    /// Starts leg `i`'s media with `device`, from the call's capture
    /// (started with the first leg).
    async fn start_media(&mut self, i: usize, device: DeviceId, mesh: &Mesh) {
        let now = crate::now_ms();
        let media_config = self.cx.media.clone();
        let tx = self.tx.clone();
        let Some(c) = self.current.as_mut() else { return };
        c.connected_ms.get_or_insert(now);
        let call = c.call;
        let config = MediaConfig { test_source: c.test_source || media_config.test_source, ..media_config };
        if c.capture.is_none() {
            let video = c.media == Media::Video
                && (config.test_source || config.camera.is_some() || skein_media::devices::has_camera());
            if c.media == Media::Video && !video {
                tracing::info!("no camera found; sending audio only");
            }
            let failed = tx.clone();
            let default_microphone = !config.test_source && config.microphone.is_none();
            let on_error = move |e: String| {
                // The system's default microphone failing to open, with none
                // plugged in, says so rather than in GStreamer's words.
                let reason = if default_microphone && !skein_media::devices::has_microphone() {
                    "no microphone found: plug one in (`skein devices` lists them), or call with --test-source".into()
                } else {
                    format!("capture: {e}")
                };
                let _ = failed.try_send(Input::MediaFailed { call, with: None, reason });
            };
            let wanted = if config.video_codecs.is_empty() { &VideoCodec::ALL[..] } else { &config.video_codecs };
            let started = skein_media::elements::init()
                .and_then(|_| skein_media::elements::check(skein_media::NEEDED))
                .and_then(|_| skein_media::codecs::usable(wanted))
                .and_then(|codecs| {
                    let params = CaptureParams {
                        video,
                        test_source: config.test_source,
                        microphone: config.microphone.clone(),
                        camera: config.camera.clone(),
                        self_view: config.pictures.as_ref().map(|p| p.local.clone()),
                        codecs,
                    };
                    SharedCapture::start(params, on_error)
                });
            match started {
                Ok(capture) => c.capture = Some(Arc::new(capture)),
                Err(e) => {
                    let _ = tx.try_send(Input::MediaFailed { call, with: None, reason: e.to_string() });
                    return;
                }
            }
        }
        let Some(capture) = c.capture.clone() else { return };
        let Some(leg) = c.legs.get_mut(i) else { return };
        leg.connected_ms = Some(now);
        // The first figures once a whole second has been measured.
        leg.next_stats_ms = now + STATS_EVERY_MS;
        let Some(peer) = leg.peers.get(&device).copied() else { return };
        leg.path = mesh.peers().await.into_iter().find(|p| p.peer == peer).map(|p| p.path.as_str().to_owned());
        let params = SessionParams { call, peer, with: leg.with.clone(), media: c.media, config };
        let with = leg.with.clone();
        let failed = tx.clone();
        let on_failure = move |reason: String| {
            let _ = failed.try_send(Input::MediaFailed { call, with: Some(with.clone()), reason });
        };
        match Session::start(params, capture.subscribe(), mesh.clone(), Box::new(on_failure)) {
            Ok(mut s) => {
                for early in std::mem::take(&mut *lock(&leg.early)) {
                    s.take_stream(early);
                }
                leg.session = Some(s);
            }
            Err(e) => {
                let reason = e.to_string();
                leg.failing = Some((reason, 0));
            }
        }
    }

    /// The host of a group call tells everyone connected who is in it.
    fn send_roster(&self) {
        let Some(c) = self.current.as_ref().filter(|c| c.live() && c.host && c.group.is_some()) else { return };
        let sender = lock(&self.sender).clone();
        let connected: Vec<(&Leg, DeviceId)> =
            c.legs.iter().filter(|l| l.live()).filter_map(|l| l.device().map(|d| (l, d))).collect();
        let mut members: Vec<Participant> =
            connected.iter().map(|(l, d)| Participant { user: l.with.clone(), device: *d }).collect();
        members.push(Participant { user: sender.me.clone(), device: sender.device });
        let batch: Batch = connected
            .iter()
            .filter_map(|(l, d)| l.peers.get(d))
            .map(|peer| (*peer, CallSignal::Roster { call: c.call, members: members.clone() }))
            .collect();
        let _ = self.outbound.send((sender.mesh, batch, None));
    }

    fn shown(&self) -> Value {
        lock(&self.shown).clone()
    }

    /// Reports the call: an event when its state (or a participant's)
    /// changed, and the end once every leg is over.
    async fn report(&mut self) {
        let now = crate::now_ms();
        let Some(c) = self.current.as_mut() else { return };
        if c.live() && !c.legs.is_empty() && c.all_ended() {
            c.ended_ms = Some(now);
            c.ended = Some(c.end_reason());
            c.capture = None;
        }
        let state = c.state();
        if c.states.last() != Some(&state) {
            c.states.push(state);
        }
        let v = c.shown();
        let before = std::mem::replace(&mut *lock(&self.shown), v.clone());
        let participants = |v: &Value| -> Vec<Value> {
            v["participants"].as_array().map_or(Vec::new(), |p| p.iter().map(|p| p["state"].clone()).collect())
        };
        let changed =
            before["call"] != v["call"] || before["state"] != v["state"] || participants(&before) != participants(&v);
        if !changed {
            return;
        }
        let mut event = v;
        if let Some(o) = event.as_object_mut() {
            o.remove("states");
            if state != "ended" {
                o.remove("stats");
            }
        }
        self.cx.events.emit(event);
        if state == "ended" && c.host {
            self.send_record();
        }
    }

    /// The call's history line, from the device that placed it.
    fn send_record(&self) {
        let Some(c) = self.current.as_ref() else { return };
        let sender = lock(&self.sender).clone();
        let record = CallRecord { call: c.call, media: c.media, outcome: c.outcome() };
        let events = self.cx.events.clone();
        match &c.group {
            Some(g) => record::send_group(sender, self.cx.groups.clone(), events, g.clone(), record),
            None => {
                let Some(leg) = c.legs.first() else { return };
                record::send_direct(sender, events, leg.with.clone(), record)
            }
        }
    }

    /// A callee device that rang out records the missed call itself.
    async fn record_missed(&self, i: usize) {
        let Some(c) = self.current.as_ref() else { return };
        let Some(leg) = c.legs.get(i) else { return };
        let Some(device) = leg.caller_device else { return };
        // Recorded as if it came the way the caller's signals did.
        let caller = leg.peers.get(&device).copied();
        let path = self
            .mesh()
            .peers()
            .await
            .into_iter()
            .find(|p| Some(p.peer) == caller)
            .map_or("direct".to_owned(), |p| p.path.as_str().to_owned());
        let missed = record::Missed {
            call: c.call,
            media: c.media,
            caller: leg.with.clone(),
            caller_device: device,
            started_ms: c.started_ms,
            path,
        };
        record::record_missed(&self.cx.inbox, &self.cx.events, missed).await;
    }
}

/// A `call_stats` line: a leg's figures, with the path and round-trip time
/// as the mesh sees them.
fn stats_line(mesh: &Mesh, call: CallId, leg: &Leg, session: &Session) -> impl Future<Output = Value> + Send + use<> {
    let (mesh, peer) = (mesh.clone(), session.peer());
    let (mut stats, with, connected_ms) = (session.stats(), leg.with.clone(), leg.connected_ms);
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
