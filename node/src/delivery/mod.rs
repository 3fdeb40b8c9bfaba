//! Sending: messages and receipts to every device of a user.
//!
//! Online devices (as the tracker's lookup reports them; answers are
//! remembered between sends, see [`crate::lookups`]) are dialled on all
//! their addresses at once and sent the message directly; devices that are
//! offline, or that cannot be reached in time, get it sealed to their X25519
//! key through the tracker mailbox. Those keys come from the tracker's
//! answer, so each certificate is checked first (the organisation's
//! signature, the intended user, expiry): a tracker cannot have mail sealed
//! to a key of its choosing. Without a tracker connection, peers that are
//! already connected still get messages; everything else stays queued in the
//! local history and is retried when the tracker is back.

mod mailbox;

pub use mailbox::{seal_aad, sealable};

use crate::history::{History, MemberState, OutState};
use crate::lookups::Lookups;
use crate::mesh::{Mesh, Path, PeerSummary};
use crate::tracker_client::TrackerClient;
use libp2p::{Multiaddr, PeerId};
use skein_proto::ErrorCode;
use skein_proto::bytes::{DeviceId, MailId};
use skein_proto::control::{MailboxPut, PeerInfo, Request, Response};
use skein_proto::device::DeviceCert;
use skein_proto::file::FileStatus;
use skein_proto::peer::{ChatMessage, PeerRequest, PeerResponse, Receipt, SealedPayload};
use std::sync::Arc;

/// How long the tracker may take to look up a user one of whose devices
/// is already connected.
const LOOKUP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
/// Members a group message is sent to at once.
const GROUP_FAN_OUT: usize = 16;
/// How long a stall makes later lookups of connected users not wait.
const STALL_MEMORY: std::time::Duration = std::time::Duration::from_secs(30);

/// What a send achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored by at least one device over a direct connection.
    Direct,
    /// Stored by at least one device, through a relay only.
    Relayed,
    /// Waiting in the tracker mailbox, sealed to each device not reached.
    Mailbox,
    /// Kept locally: neither the recipient nor the tracker could take it
    /// now. It stays queued in the history and is sent again later.
    Held,
}

impl Outcome {
    /// `direct`, `relayed` or `queued`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Relayed => "relayed",
            Self::Mailbox | Self::Held => "queued",
        }
    }
}

/// Where one user's devices stand after direct delivery.
#[derive(Debug)]
struct Reached {
    /// The best path a device took it on, if any did.
    best: Option<Path>,
    /// The devices to seal it to in the mailbox (certificates checked);
    /// `None` when the tracker could not be asked which devices there are.
    rest: Option<Vec<DeviceCert>>,
    /// The user has no device but this one.
    only_this_device: bool,
}

impl Reached {
    /// The send's outcome for this user, given how the mailbox put for the
    /// devices left went (`None`: none was needed or possible).
    fn settle(&self, user: &str, mailed: Option<Result<(), String>>) -> Result<Outcome, SendError> {
        let Some(rest) = &self.rest else {
            return Ok(self.best.map_or(Outcome::Held, outcome_of));
        };
        if let Some(Err(e)) = mailed {
            return Err(SendError::NotNow(e));
        }
        match self.best {
            Some(p) => Ok(outcome_of(p)),
            None if !rest.is_empty() => Ok(Outcome::Mailbox),
            None if self.only_this_device => Err(SendError::NotNow(format!(
                "{user} has not logged in on any device yet; the message is kept and sent when they do"
            ))),
            None => Ok(Outcome::Held),
        }
    }
}

/// Why a send did not reach anyone.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The tracker knows no such user; the message can never be delivered.
    #[error("{0}")]
    NoSuchUser(String),
    /// Nothing could take it now; it stays queued and is retried.
    #[error("{0}")]
    NotNow(String),
    /// This device could not store it (the message says whether it was
    /// delivered all the same).
    #[error("{0}")]
    Local(String),
}

/// What sending needs.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The local user.
    pub me: String,
    /// This device.
    pub device: DeviceId,
    /// The tracker, when connected.
    pub tracker: Option<TrackerClient>,
    /// The mesh.
    pub mesh: Mesh,
    /// Local history.
    pub history: History,
    /// Recent lookups and stalls, shared by every send of this tracker
    /// connection: once the tracker seems gone, sends to connected peers
    /// stop waiting for it.
    pub lookups: Lookups,
}

/// Every address a device reported, direct ones first.
pub fn addrs_of(info: &skein_proto::control::DeviceInfo) -> Vec<Multiaddr> {
    let a = &info.addresses;
    a.listen.iter().chain(a.observed.iter()).chain(a.relayed.iter()).filter_map(|s| s.parse().ok()).collect()
}

impl Sender {
    /// The user's devices. `Ok(None)` when the tracker cannot be asked
    /// (not connected, or the request failed in transit); an error when the
    /// tracker answers that there is no such user.
    ///
    /// A recent answer is used again while every device it lists as online
    /// is connected; anything else asks the tracker.
    ///
    /// When a device of `user` is already connected, or `user` is us (copies
    /// for our other devices are a courtesy), the tracker gets
    /// [`LOOKUP_PATIENCE`] to answer: a tracker that vanished without a word
    /// (not yet noticed as gone) must not hold up a conversation that does
    /// not need it.
    ///
    /// `connected` is the mesh's verified peers, as the caller just read them.
    async fn lookup(&self, user: &str, connected: &[PeerSummary]) -> Result<Option<Arc<PeerInfo>>, SendError> {
        let Some(client) = self.tracker.as_ref() else { return Ok(None) };
        // A recent answer serves only while every device it lists as online
        // is connected (or is this one): reaching any other device means
        // dialling the addresses it reported, which may have changed.
        if let Some(info) = self.lookups.cached(user)
            && info
                .online
                .iter()
                .all(|d| d.device_id == self.device || connected.iter().any(|p| p.device == d.device_id))
        {
            return Ok(Some(info));
        }
        let generation = self.lookups.generation();
        let ask = client.request(Request::LookupPeer { user: user.to_owned() });
        let impatient = user == self.me || connected.iter().any(|p| p.user == user);
        let answer = if impatient {
            // After a recent stall, do not wait at all until it answers again.
            let patience = match self.lookups.stalled() {
                Some(at) if at.elapsed() < STALL_MEMORY => std::time::Duration::ZERO,
                _ => LOOKUP_PATIENCE,
            };
            match tokio::time::timeout(patience, ask).await {
                Ok(a) => a,
                Err(_) => {
                    tracing::info!(%user, "the tracker is slow to answer; delivering to the connected devices");
                    if patience > std::time::Duration::ZERO {
                        self.lookups.set_stalled(Some(std::time::Instant::now()));
                    }
                    return Ok(None);
                }
            }
        } else {
            ask.await
        };
        if answer.is_ok() {
            self.lookups.set_stalled(None);
        }
        match answer {
            Ok(Response::Peer(p)) => {
                let p = Arc::new(p);
                self.lookups.remember(p.clone(), generation);
                Ok(Some(p))
            }
            Ok(_) => Ok(None),
            Err(e) => match e.body() {
                Some(b) if b.code == ErrorCode::NotFound => Err(SendError::NoSuchUser(b.message.clone())),
                _ => {
                    tracing::info!(%user, error = %e, "lookup failed");
                    Ok(None)
                }
            },
        }
    }

    /// Several users' devices in one request to the tracker, by user (those
    /// the tracker left out, or all when it cannot be asked, are looked up
    /// one by one when sent to).
    async fn lookup_many(&self, users: &[String]) -> std::collections::HashMap<String, PeerInfo> {
        let Some(client) = self.tracker.as_ref() else { return Default::default() };
        let generation = self.lookups.generation();
        match client.request(Request::LookupPeers { users: users.to_vec() }).await {
            Ok(Response::Peers(list)) => list
                .into_iter()
                .map(|p| {
                    self.lookups.remember(p.clone(), generation);
                    (p.user.clone(), p)
                })
                .collect(),
            Ok(_) => Default::default(),
            Err(e) => {
                tracing::info!(error = %e, "looking a group's members up failed; asking for each");
                Default::default()
            }
        }
    }

    /// Delivers `payload` to every device of `user` except this one.
    /// Returns the best path reached, or `Mailbox` or `Held`, or an error when the
    /// message could go nowhere at all.
    async fn fan_out(
        &self,
        user: &str,
        id: MailId,
        direct: PeerRequest,
        sealed: SealedPayload,
    ) -> Result<Outcome, SendError> {
        self.fan_out_with(user, id, direct, sealed, None).await
    }

    /// [`Sender::fan_out`] with the user's devices already looked up (one
    /// request for a whole group's members).
    async fn fan_out_with(
        &self,
        user: &str,
        id: MailId,
        direct: PeerRequest,
        sealed: SealedPayload,
        prefetched: Option<PeerInfo>,
    ) -> Result<Outcome, SendError> {
        let reached = self.reach(user, direct, prefetched).await?;
        let mailed = match &reached.rest {
            Some(rest) if !rest.is_empty() => Some(self.mailbox(user, id, &sealed, rest).await),
            _ => None,
        };
        reached.settle(user, mailed)
    }

    /// Delivers `direct` to every device of `user` but this one that can be
    /// reached now, and says which devices are left for the mailbox.
    async fn reach(&self, user: &str, direct: PeerRequest, prefetched: Option<PeerInfo>) -> Result<Reached, SendError> {
        let mut best: Option<Path> = None;
        let mut reached: Vec<DeviceId> = vec![self.device];
        // Devices that failed once are not tried again in this send: a
        // device that vanished costs one attempt, not one per pass.
        let mut failed: Vec<DeviceId> = Vec::new();
        // One look at the connected peers serves the lookup and the first
        // pass (each look is a question to the mesh task).
        let connected = self.mesh.peers().await;
        let lookup = async {
            match prefetched {
                Some(info) => Ok(Some(Arc::new(info))),
                None => self.lookup(user, &connected).await,
            }
        };
        // Devices already connected take it while the tracker is asked
        // which other devices the user has.
        let first_pass = self.to_connected_peers(user, &direct, &connected, &mut reached, &mut failed, &mut best);
        let (looked, ()) = tokio::join!(lookup, first_pass);
        let Some(info) = looked? else {
            // No tracker: the peers we already know are all there is.
            return Ok(Reached { best, rest: None, only_this_device: false });
        };
        let mut dialled = false;
        for dev in &info.online {
            if reached.contains(&dev.device_id) || failed.contains(&dev.device_id) {
                continue;
            }
            dialled = true;
            let Ok(peer) = PeerId::from_bytes(&dev.cert.body.peer_id) else { continue };
            let sent = async {
                let summary = self.mesh.connect(peer, addrs_of(dev)).await.map_err(|e| e.to_string())?;
                if summary.user != user {
                    return Err(format!("the device answering for {user} has a certificate for {}", summary.user));
                }
                match self.mesh.request(peer, direct.clone()).await.map_err(|e| e.to_string())? {
                    (answer, path) if took(&direct, &answer) => Ok(path),
                    (PeerResponse::Refused(b), _) => Err(b.message),
                    (other, _) => Err(format!("unexpected answer {other:?}")),
                }
            };
            match sent.await {
                Ok(path) => {
                    best = better(best, path);
                    reached.push(dev.device_id);
                }
                Err(e) => {
                    failed.push(dev.device_id);
                    // The tracker's view of this device may be out of date.
                    self.lookups.forget(user);
                    tracing::info!(%user, device = %dev.device_id, error = %e, "direct delivery failed; using the mailbox")
                }
            }
        }
        // Peers that connected meanwhile (as the devices above were
        // dialled), or whose tracker session is down for a moment (a tracker
        // restart), are tried directly too.
        if dialled || !info.online.iter().all(|d| reached.contains(&d.device_id) || d.device_id == self.device) {
            let connected = self.mesh.peers().await;
            self.to_connected_peers(user, &direct, &connected, &mut reached, &mut failed, &mut best).await;
        }
        let mut rest: Vec<&DeviceCert> = info.known.iter().filter(|c| !reached.contains(&c.body.device_id)).collect();
        if !rest.is_empty() {
            let org_key =
                self.mesh.org_key().await.ok_or_else(|| SendError::NotNow("the peer network stopped".into()))?;
            rest = sealable(&org_key, user, rest, crate::now_ms());
        }
        let only_this_device = info.known.iter().all(|c| c.body.device_id == self.device);
        Ok(Reached { best, rest: Some(rest.into_iter().cloned().collect()), only_this_device })
    }

    /// Sends `req` to every verified, connected device of `user` not yet in
    /// `reached` or `failed`, recording the ones that took it and those that
    /// did not.
    async fn to_connected_peers(
        &self,
        user: &str,
        req: &PeerRequest,
        connected: &[PeerSummary],
        reached: &mut Vec<DeviceId>,
        failed: &mut Vec<DeviceId>,
        best: &mut Option<Path>,
    ) {
        let my_peer = self.mesh.peer_id();
        for p in connected.iter().filter(|p| p.user == user && p.peer != my_peer) {
            if reached.contains(&p.device) || failed.contains(&p.device) {
                continue;
            }
            match self.mesh.request(p.peer, req.clone()).await {
                Ok((answer, path)) if took(req, &answer) => {
                    *best = better(*best, path);
                    reached.push(p.device);
                }
                Ok((answer, _)) => {
                    tracing::info!(%user, device = %p.device, ?answer, "a connected device did not take it");
                    failed.push(p.device);
                }
                Err(e) => {
                    tracing::info!(%user, device = %p.device, error = %e, "a connected device did not answer");
                    failed.push(p.device);
                }
            }
        }
    }

    async fn mailbox(
        &self,
        user: &str,
        id: MailId,
        payload: &SealedPayload,
        devices: &[DeviceCert],
    ) -> Result<(), String> {
        let client = self.tracker.as_ref().ok_or("the tracker is unreachable")?;
        let items = mailbox::seal_items(id, payload, devices)?;
        match client.request(Request::MailboxPut(MailboxPut { to_user: user.to_owned(), items })).await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Seals `payload` to the devices left in each of `reached`, and stores
    /// every user's items in the tracker mailbox with one request (more
    /// only when the tracker's limits say so). Returns each user's outcome.
    async fn mailbox_many(
        &self,
        id: MailId,
        payload: &SealedPayload,
        reached: &[(String, Result<Reached, SendError>)],
    ) -> std::collections::HashMap<String, Result<(), String>> {
        let mut outcomes = std::collections::HashMap::new();
        let mut puts = Vec::new();
        for (user, r) in reached {
            let Ok(Reached { rest: Some(rest), .. }) = r else { continue };
            if rest.is_empty() {
                continue;
            }
            match mailbox::seal_items(id, payload, rest) {
                Ok(items) => puts.push(MailboxPut { to_user: user.clone(), items }),
                Err(e) => {
                    outcomes.insert(user.clone(), Err(e));
                }
            }
        }
        if puts.is_empty() {
            return outcomes;
        }
        let Some(client) = self.tracker.as_ref() else {
            for p in puts {
                outcomes.insert(p.to_user, Err("the tracker is unreachable".to_owned()));
            }
            return outcomes;
        };
        for batch in mailbox::pack(puts) {
            let users: Vec<String> = batch.iter().map(|p| p.to_user.clone()).collect();
            match client.request(Request::MailboxPutMany(batch)).await {
                Ok(Response::MailboxStoredEach(answers)) if answers.len() == users.len() => {
                    for (user, a) in users.into_iter().zip(answers) {
                        outcomes.insert(user, a.map(|_| ()).map_err(|b| b.message));
                    }
                }
                other => {
                    let why = match other {
                        Err(e) => e.to_string(),
                        Ok(r) => format!("the tracker answered a mailbox put with {r:?}"),
                    };
                    for user in users {
                        outcomes.insert(user, Err(why.clone()));
                    }
                }
            }
        }
        outcomes
    }

    /// Stores a new outgoing message as queued while sending it to its
    /// recipient and this user's other devices, then records the outcome:
    /// the local write overlaps the network instead of adding to it.
    pub async fn store_and_send(&self, msg: &ChatMessage) -> Result<Outcome, SendError> {
        self.store_and_send_to(msg, std::slice::from_ref(&msg.to_user)).await
    }

    /// [`Sender::store_and_send`] to several users at once: a group
    /// message to the group's members.
    pub async fn store_and_send_to(&self, msg: &ChatMessage, users: &[String]) -> Result<Outcome, SendError> {
        let (stored, out) =
            tokio::join!(self.history.insert_outgoing(&self.me, msg, OutState::Queued), self.to_users(msg, users));
        if let Err(e) = stored {
            return Err(SendError::Local(match out {
                Ok(Outcome::Direct | Outcome::Relayed | Outcome::Mailbox) => {
                    format!("the message was sent, but this device could not keep a copy in its history: {e}")
                }
                _ => format!("the message could not be stored, and was not sent: {e}"),
            }));
        }
        self.record(msg, out).await
    }

    /// Sends a stored outgoing message to its recipient and to this user's
    /// other devices, and records the outcome in the history.
    pub async fn send_message(&self, msg: &ChatMessage) -> Result<Outcome, SendError> {
        self.send_message_to(msg, std::slice::from_ref(&msg.to_user)).await
    }

    /// [`Sender::send_message`] to several users at once.
    pub async fn send_message_to(&self, msg: &ChatMessage, users: &[String]) -> Result<Outcome, SendError> {
        let out = self.to_users(msg, users).await;
        self.record(msg, out).await
    }

    /// Delivers `msg` to every device of its recipient; a group message to
    /// every device of each of `users` but this user, [`GROUP_FAN_OUT`]
    /// users at a time, so one slow member holds up no one (the best
    /// outcome wins; when none is reached, the first error).
    async fn to_users(&self, msg: &ChatMessage, users: &[String]) -> Result<Outcome, SendError> {
        use futures::StreamExt;
        if !matches!(msg.conversation, skein_proto::peer::Conversation::Group { .. }) {
            // One user (perhaps this one: a note to self reaches the other
            // devices), sent as it always was.
            let user = users.first().map_or(msg.to_user.as_str(), String::as_str);
            return self
                .fan_out(user, msg.id, PeerRequest::Deliver(msg.clone()), SealedPayload::Message(msg.clone()))
                .await;
        }
        let others: Vec<String> = users.iter().filter(|u| **u != self.me).cloned().collect();
        if others.is_empty() {
            // No one else to tell: the sender's own devices get their copy.
            return Ok(Outcome::Direct);
        }
        // A group message keeps where it stands with each member, and its
        // members' devices are looked up in one request.
        let (recorded, mut found) =
            tokio::join!(self.history.members_queued(msg.id, &others), self.lookup_many(&others));
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot record a group message's members");
        }
        // Owned futures: each send holds its own copies, none borrows.
        let sends: Vec<_> = others
            .into_iter()
            .map(|u| {
                let (this, msg, info) = (self.clone(), msg.clone(), found.remove(&u));
                async move {
                    let reached = this.reach(&u, PeerRequest::Deliver(msg), info).await;
                    (u, reached)
                }
            })
            .collect();
        let reached: Vec<(String, Result<Reached, SendError>)> =
            futures::stream::iter(sends).buffer_unordered(GROUP_FAN_OUT).collect().await;
        // Every member's offline devices, in one mailbox request.
        let mut mailed = self.mailbox_many(msg.id, &SealedPayload::Message(msg.clone()), &reached).await;
        let answered: Vec<(String, Result<Outcome, SendError>)> = reached
            .into_iter()
            .map(|(u, r)| {
                let out = r.and_then(|r| r.settle(&u, mailed.remove(&u)));
                (u, out)
            })
            .collect();
        // The members reached are recorded in one statement, off the send's way.
        let reached: Vec<String> = answered
            .iter()
            .filter(|(_, r)| matches!(r, Ok(Outcome::Direct | Outcome::Relayed)))
            .map(|(u, _)| u.clone())
            .collect();
        let (history, id) = (self.history.clone(), msg.id);
        tokio::spawn(async move {
            let at = Some(crate::now_ms());
            if let Err(e) = history.move_members(id, &reached, MemberState::Delivered, at).await {
                tracing::warn!(error = %e, "cannot record the members a group message reached");
            }
        });
        let results: Vec<Result<Outcome, SendError>> = answered.into_iter().map(|(_, r)| r).collect();
        let rank = |o: &Outcome| match o {
            Outcome::Direct => 3,
            Outcome::Relayed => 2,
            Outcome::Mailbox => 1,
            Outcome::Held => 0,
        };
        let best = results.iter().filter_map(|r| r.as_ref().ok()).max_by_key(|o| rank(o)).copied();
        match best {
            Some(o) => Ok(o),
            None => results.into_iter().find_map(Result::err).map_or(Ok(Outcome::Held), Err),
        }
    }

    /// Records how a stored message's send went, and copies it to this
    /// user's other devices.
    async fn record(&self, msg: &ChatMessage, out: Result<Outcome, SendError>) -> Result<Outcome, SendError> {
        let now = crate::now_ms();
        match out {
            Ok(o @ (Outcome::Direct | Outcome::Relayed)) => {
                // Off the send's way: the message is stored on both ends
                // already, and should this write be lost (a crash), the
                // message stays queued, is sent again, and the recipient
                // keeps it once by its id. A receipt that comes first is not
                // undone: a state only moves forward.
                let (history, id) = (self.history.clone(), msg.id);
                tokio::spawn(async move {
                    let _ = history.set_outgoing_state(id, OutState::Delivered, now, Some(o.as_str())).await;
                });
            }
            Ok(Outcome::Mailbox) => {
                let _ = self.history.set_outgoing_state(msg.id, OutState::Sent, now, Some("mailbox")).await;
            }
            _ => {}
        }
        // Copies for this user's other devices, so every device shows the
        // conversation; the sender does not wait for them. A user whose only
        // device this is (as the tracker said recently) needs none.
        if msg.to_user != self.me && !self.only_device() {
            let (this, msg) = (self.clone(), msg.clone());
            tokio::spawn(async move {
                let sync =
                    this.fan_out(&this.me, msg.id, PeerRequest::Deliver(msg.clone()), SealedPayload::Message(msg));
                if let Err(e) = sync.await {
                    tracing::debug!(error = %e, "no other own device to sync to");
                }
            });
        }
        out
    }

    /// Whether the tracker said recently that this user has no device but
    /// this one (a device added since changes presence, which forgets it).
    fn only_device(&self) -> bool {
        self.lookups.cached(&self.me).is_some_and(|me| me.known.iter().all(|c| c.body.device_id == self.device))
    }

    /// Every device of `user` (not this one) that is online and can be
    /// reached now, connected: those already connected, and those the
    /// tracker lists as online, dialled at once. For a call, which rings
    /// only devices that can answer now.
    pub async fn devices(&self, user: &str) -> Result<Vec<PeerSummary>, SendError> {
        let connected = self.mesh.peers().await;
        let mine = self.mesh.peer_id();
        let mut found: Vec<PeerSummary> =
            connected.iter().filter(|p| p.user == user && p.peer != mine).cloned().collect();
        let Some(info) = self.lookup(user, &connected).await? else { return Ok(found) };
        let dials = info
            .online
            .iter()
            .filter(|d| d.device_id != self.device && !found.iter().any(|p| p.device == d.device_id))
            .filter_map(|d| PeerId::from_bytes(&d.cert.body.peer_id).ok().map(|peer| (peer, addrs_of(d))))
            .map(|(peer, addrs)| async move { self.mesh.connect(peer, addrs).await });
        for reached in futures::future::join_all(dials).await {
            match reached {
                Ok(summary) if summary.user == user => found.push(summary),
                Ok(summary) => tracing::info!(%user, answered = %summary.user, "a device answered for another user"),
                Err(e) => tracing::info!(%user, error = %e, "a device listed online could not be reached"),
            }
        }
        Ok(found)
    }

    /// Sends a file status to every device of `user` (the file's sender).
    pub async fn send_file_status(&self, user: &str, status: FileStatus) -> Result<Outcome, SendError> {
        self.fan_out(
            user,
            MailId(crate::random_id()),
            PeerRequest::FileStatus(status.clone()),
            SealedPayload::FileStatus(status),
        )
        .await
    }

    /// Sends a receipt to every device of `user`.
    pub async fn send_receipt(&self, user: &str, receipt: Receipt) -> Result<Outcome, SendError> {
        self.fan_out(
            user,
            MailId(crate::random_id()),
            PeerRequest::Receipt(receipt.clone()),
            SealedPayload::Receipt(receipt),
        )
        .await
    }
}

fn better(a: Option<Path>, b: Path) -> Option<Path> {
    match (a, b) {
        (Some(Path::Direct), _) | (_, Path::Direct) => Some(Path::Direct),
        _ => Some(Path::Relayed),
    }
}

fn outcome_of(p: Path) -> Outcome {
    match p {
        Path::Direct => Outcome::Direct,
        Path::Relayed => Outcome::Relayed,
    }
}

/// Whether `answer` says the peer took `req`: a message only by saying it
/// stored that very message (an answer about another one, or a bare
/// `Ok`, leaves it undelivered, for the mailbox to carry); other requests
/// by `Ok` or `Stored`.
fn took(req: &PeerRequest, answer: &PeerResponse) -> bool {
    match (req, answer) {
        (PeerRequest::Deliver(m), PeerResponse::Stored { id }) => *id == m.id,
        (PeerRequest::Deliver(_), _) => false,
        (_, PeerResponse::Stored { .. } | PeerResponse::Ok) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_proto::peer::{Conversation, MessageBody, Receipt, ReceiptKind};

    #[test]
    fn a_message_counts_as_taken_only_when_that_message_was_stored() {
        let msg = ChatMessage {
            id: MailId([1; 16]),
            from_user: "alice".into(),
            from_device: DeviceId([2; 16]),
            to_user: "bob".into(),
            conversation: Conversation::Direct,
            sent_at_ms: 1,
            body: MessageBody::Text("hi".into()),
        };
        let deliver = PeerRequest::Deliver(msg);
        assert!(took(&deliver, &PeerResponse::Stored { id: MailId([1; 16]) }));
        assert!(!took(&deliver, &PeerResponse::Stored { id: MailId([9; 16]) }), "another message's answer");
        assert!(!took(&deliver, &PeerResponse::Ok), "a bare Ok stores nothing");
        let receipt = PeerRequest::Receipt(Receipt {
            ids: vec![MailId([1; 16])],
            kind: ReceiptKind::Read,
            by_user: "bob".into(),
            at_ms: 2,
        });
        assert!(took(&receipt, &PeerResponse::Ok));
    }
}
