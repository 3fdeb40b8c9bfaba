//! The hub: one task that owns the live-session registry and the
//! [`PresenceBook`], and delivers presence and mailbox events.
//!
//! Connection tasks hold a cloneable [`Hub`] handle and send it commands;
//! anything that needs an answer carries a oneshot. Pushes to a connection
//! go into that connection's bounded outgoing queue; a connection whose queue
//! is full is too slow to keep up and is closed rather than buffered forever.
//!
//! With other trackers on the store, the hub also folds in what they say of
//! their devices' presence ([`Hub::set_remote`]), and tells its publisher
//! (see [`crate::presence_sync`]) each time its own devices' part of a
//! user's presence changes.

use crate::clock::now_ms;
use crate::connection::Outgoing;
use crate::presence::{ConnId, PresenceBook, Push, Remote};
use skein_proto::ErrorBody;
use skein_proto::bytes::DeviceId;
use skein_proto::control::{Addresses, Event, PresenceEntry, PresenceStatus, ServerFrame, Subscription};
use std::collections::{HashMap, HashSet};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A connection's identity once it has logged in.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// Store id of the user.
    pub user_id: i64,
    /// User name.
    pub user: String,
    /// The device.
    pub device_id: DeviceId,
    /// Hash of the session token in use.
    pub token_hash: [u8; 32],
    /// When this connection logged in, ms since the Unix epoch.
    pub started_ms: u64,
    /// The control protocol version agreed with the client.
    pub protocol: u16,
}

/// What a registered connection looks like from the hub.
#[derive(Debug)]
struct Live {
    session: LiveSession,
    out: Outgoing,
    /// Cancelled to end the connection; the reason is queued first.
    end: CancellationToken,
    addresses: Addresses,
}

/// An online device as peer lookup returns it.
#[derive(Debug, Clone)]
pub struct OnlineDevice {
    /// The device.
    pub device_id: DeviceId,
    /// Its presence.
    pub status: PresenceStatus,
    /// Its reported addresses.
    pub addresses: Addresses,
}

/// Which sessions to end.
#[derive(Debug, Clone)]
pub enum SessionFilter {
    /// Every session of a user.
    User(i64),
    /// Every session of one device.
    Device(i64, DeviceId),
    /// The session using this token hash.
    Token([u8; 32]),
    /// A user's sessions whose tokens are not among these (the ones the
    /// store still holds unrevoked).
    UserExcept(i64, HashSet<[u8; 32]>),
}

enum Command {
    Register { conn: ConnId, session: LiveSession, out: Outgoing, end: CancellationToken },
    Unregister { conn: ConnId, reply: oneshot::Sender<Option<(i64, u64)>> },
    SetStatus { conn: ConnId, status: PresenceStatus, note: Option<String> },
    Subscribe { conn: ConnId, sub: Subscription, reply: oneshot::Sender<Vec<PresenceEntry>> },
    Unsubscribe { conn: ConnId },
    Entries { users: Vec<String>, reply: oneshot::Sender<Vec<PresenceEntry>> },
    SetAddresses { conn: ConnId, addresses: Addresses },
    Online { user: String, reply: oneshot::Sender<Vec<OnlineDevice>> },
    End { filter: SessionFilter, before_ms: u64, reason: ErrorBody, reply: oneshot::Sender<u32> },
    MailWaiting { user_id: i64, device: DeviceId, count: u32 },
    Broadcast { event: Event, min_protocol: u16 },
    ToUsers { users: HashSet<String>, event: Event },
    SetRemote { tracker: String, user: String, part: Option<Remote> },
    ReplaceRemote { parts: Vec<(String, String, Remote)> },
    DropTracker { tracker: String },
}

/// A change other trackers must hear of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalChange {
    /// This tracker's devices' part of a user's presence: the user, and the
    /// part (`None`: no visible device here).
    Presence(String, Option<Remote>),
    /// A device here that reported where it can be reached (`None`: not any
    /// more, or gone).
    Device(DeviceId, Option<OnlineHere>),
}

/// A device online on this tracker, as other trackers' lookups show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineHere {
    /// Its user.
    pub user: String,
    /// Whether it set a status (is visible).
    pub visible: bool,
    /// Where to reach it.
    pub addresses: Addresses,
}

/// Handle to the hub task.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: mpsc::Sender<Command>,
    fanout: prometheus_client::metrics::histogram::Histogram,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hub command")
    }
}

impl Hub {
    /// Starts the hub task; it ends when every handle is dropped.
    pub fn spawn(queue: usize) -> (Hub, tokio::task::JoinHandle<()>) {
        Self::spawn_publishing(queue, None)
    }

    /// [`Hub::spawn`], telling `publish` of every change of this tracker's
    /// part of a user's presence (in order; a full queue drops none).
    pub fn spawn_publishing(
        queue: usize,
        publish: Option<mpsc::UnboundedSender<LocalChange>>,
    ) -> (Hub, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue);
        let fanout = crate::metrics::fanout_histogram();
        let task = tokio::spawn(run(rx, publish, fanout.clone()));
        (Hub { tx, fanout }, task)
    }

    /// How long each presence change took to reach every subscriber's
    /// queue, for the metrics.
    pub fn fanout(&self) -> prometheus_client::metrics::histogram::Histogram {
        self.fanout.clone()
    }

    /// Folds in `user`'s presence on another tracker (`None`: none there).
    pub async fn set_remote(&self, tracker: String, user: String, part: Option<Remote>) {
        self.send(Command::SetRemote { tracker, user, part }).await;
    }

    /// Replaces everything other trackers said with `parts` (tracker, user,
    /// part), as read from the store after missing some of it.
    pub async fn replace_remote(&self, parts: Vec<(String, String, Remote)>) {
        self.send(Command::ReplaceRemote { parts }).await;
    }

    /// Forgets what another tracker said (it is gone).
    pub async fn drop_tracker(&self, tracker: String) {
        self.send(Command::DropTracker { tracker }).await;
    }

    async fn send(&self, cmd: Command) {
        // The hub only stops at shutdown, when nobody is waiting any more.
        let _ = self.tx.send(cmd).await;
    }

    /// Registers a logged-in connection.
    pub async fn register(&self, conn: ConnId, session: LiveSession, out: Outgoing, end: CancellationToken) {
        self.send(Command::Register { conn, session, out, end }).await;
    }

    /// Removes a connection; returns the user id and the time it was last
    /// seen if it was visible.
    pub async fn unregister(&self, conn: ConnId) -> Option<(i64, u64)> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Unregister { conn, reply }).await;
        rx.await.ok().flatten()
    }

    /// Sets a connection's presence.
    pub async fn set_status(&self, conn: ConnId, status: PresenceStatus, note: Option<String>) {
        self.send(Command::SetStatus { conn, status, note }).await;
    }

    /// Subscribes a connection; returns the snapshot.
    pub async fn subscribe(&self, conn: ConnId, sub: Subscription) -> Vec<PresenceEntry> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Subscribe { conn, sub, reply }).await;
        rx.await.unwrap_or_default()
    }

    /// Stops a connection's presence pushes.
    pub async fn unsubscribe(&self, conn: ConnId) {
        self.send(Command::Unsubscribe { conn }).await;
    }

    /// Current presence of these users.
    pub async fn entries(&self, users: Vec<String>) -> Vec<PresenceEntry> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Entries { users, reply }).await;
        rx.await.unwrap_or_default()
    }

    /// Records the addresses a connection's node reported.
    pub async fn set_addresses(&self, conn: ConnId, addresses: Addresses) {
        self.send(Command::SetAddresses { conn, addresses }).await;
    }

    /// Devices of `user` that are connected and reachable.
    pub async fn online(&self, user: &str) -> Vec<OnlineDevice> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Online { user: user.to_owned(), reply }).await;
        rx.await.unwrap_or_default()
    }

    /// Ends matching sessions that started no later than `before_ms`,
    /// telling each why; returns how many.
    pub async fn end_sessions(&self, filter: SessionFilter, before_ms: u64, reason: ErrorBody) -> u32 {
        let (reply, rx) = oneshot::channel();
        self.send(Command::End { filter, before_ms, reason, reply }).await;
        rx.await.unwrap_or(0)
    }

    /// Sends `event` to every logged-in connection that speaks
    /// `min_protocol` or later.
    pub async fn broadcast(&self, event: Event, min_protocol: u16) {
        self.send(Command::Broadcast { event, min_protocol }).await;
    }

    /// Sends `event` to every logged-in connection of these users.
    pub async fn to_users(&self, users: HashSet<String>, event: Event) {
        self.send(Command::ToUsers { users, event }).await;
    }

    /// Tells a device's connections that mail is waiting.
    pub async fn mail_waiting(&self, user_id: i64, device: DeviceId, count: u32) {
        self.send(Command::MailWaiting { user_id, device, count }).await;
    }
}

async fn run(
    mut rx: mpsc::Receiver<Command>,
    publish: Option<mpsc::UnboundedSender<LocalChange>>,
    fanout: prometheus_client::metrics::histogram::Histogram,
) {
    let mut book = PresenceBook::new();
    let mut live: HashMap<ConnId, Live> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        // This tracker's part of the presence of the user a command
        // concerns, and the state of its device, before it, when someone
        // listens.
        let watched = match (&publish, &cmd) {
            (
                Some(_),
                Command::Unregister { conn, .. } | Command::SetStatus { conn, .. } | Command::SetAddresses { conn, .. },
            ) => match (book.user_of(*conn), live.get(conn)) {
                (Some(u), Some(l)) => {
                    let device = l.session.device_id;
                    Some((u.to_owned(), book.local_part(u), device, device_here(&book, &live, device)))
                }
                _ => None,
            },
            _ => None,
        };
        // The commands that change someone's presence, whose subscribers
        // each get an event.
        let changes = matches!(
            cmd,
            Command::Register { .. }
                | Command::Unregister { .. }
                | Command::SetStatus { .. }
                | Command::SetRemote { .. }
                | Command::ReplaceRemote { .. }
                | Command::DropTracker { .. }
        );
        let started = std::time::Instant::now();
        command(&mut book, &mut live, cmd);
        if changes {
            fanout.observe(started.elapsed().as_secs_f64());
        }
        if let (Some(publish), Some((user, before, device, was))) = (&publish, watched) {
            let now = device_here(&book, &live, device);
            if now != was {
                let _ = publish.send(LocalChange::Device(device, now));
            }
            let after = book.local_part(&user);
            if after != before {
                let _ = publish.send(LocalChange::Presence(user, after));
            }
        }
    }
}

fn command(book: &mut PresenceBook, live: &mut HashMap<ConnId, Live>, cmd: Command) {
    {
        match cmd {
            Command::Register { conn, session, out, end } => {
                book.connect(conn, &session.user);
                live.insert(conn, Live { session, out, end, addresses: Addresses::default() });
            }
            Command::Unregister { conn, reply } => {
                let visible = book.is_visible(conn);
                let now = now_ms();
                let pushes = book.disconnect(conn, now);
                deliver(live, pushes);
                let gone = live.remove(&conn);
                let _ = reply.send(gone.filter(|_| visible).map(|l| (l.session.user_id, now)));
            }
            Command::SetStatus { conn, status, note } => {
                let pushes = book.set_status(conn, status, note, now_ms());
                deliver(live, pushes);
            }
            Command::Subscribe { conn, sub, reply } => {
                let _ = reply.send(book.subscribe(conn, sub));
            }
            Command::Unsubscribe { conn } => book.unsubscribe(conn),
            Command::Entries { users, reply } => {
                let _ = reply.send(users.iter().map(|u| book.entry(u)).collect());
            }
            Command::SetAddresses { conn, addresses } => {
                if let Some(l) = live.get_mut(&conn) {
                    l.addresses = addresses;
                }
            }
            Command::Online { user, reply } => {
                let devices = book
                    .connections_of(&user)
                    .into_iter()
                    .filter_map(|c| live.get(&c).map(|l| (c, l)))
                    .filter(|(_, l)| {
                        !l.addresses.listen.is_empty()
                            || !l.addresses.relayed.is_empty()
                            || !l.addresses.observed.is_empty()
                    })
                    .map(|(c, l)| OnlineDevice {
                        device_id: l.session.device_id,
                        status: if book.is_visible(c) { book.entry(&user).status } else { PresenceStatus::Offline },
                        addresses: l.addresses.clone(),
                    })
                    .collect();
                let _ = reply.send(devices);
            }
            Command::End { filter, before_ms, reason, reply } => {
                let mut n = 0u32;
                for l in live.values() {
                    let s = &l.session;
                    let hit = match &filter {
                        SessionFilter::User(u) => s.user_id == *u,
                        SessionFilter::Device(u, d) => s.user_id == *u && s.device_id == *d,
                        SessionFilter::Token(t) => s.token_hash == *t,
                        SessionFilter::UserExcept(u, keep) => s.user_id == *u && !keep.contains(&s.token_hash),
                    };
                    if hit && s.started_ms <= before_ms && !l.end.is_cancelled() {
                        let _ = l.out.try_send(Box::new(ServerFrame::Event(Event::SessionEnded(reason.clone()))));
                        l.end.cancel();
                        n += 1;
                    }
                }
                let _ = reply.send(n);
            }
            Command::Broadcast { event, min_protocol } => {
                for l in live.values().filter(|l| l.session.protocol >= min_protocol) {
                    push(l, &event);
                }
            }
            Command::ToUsers { users, event } => {
                for l in live.values().filter(|l| users.contains(&l.session.user)) {
                    push(l, &event);
                }
            }
            Command::MailWaiting { user_id, device, count } => {
                for l in live.values().filter(|l| l.session.user_id == user_id && l.session.device_id == device) {
                    if l.out.try_send(Box::new(ServerFrame::Event(Event::MailWaiting { count }))).is_err() {
                        l.end.cancel();
                    }
                }
            }
            Command::SetRemote { tracker, user, part } => {
                let pushes = book.set_remote(&tracker, &user, part, now_ms());
                deliver(live, pushes);
            }
            Command::ReplaceRemote { parts } => {
                let now = now_ms();
                let fresh: HashSet<(&str, &str)> = parts.iter().map(|(t, u, _)| (t.as_str(), u.as_str())).collect();
                for (t, u) in book.remote_parts() {
                    if !fresh.contains(&(t.as_str(), u.as_str())) {
                        let pushes = book.set_remote(&t, &u, None, now);
                        deliver(live, pushes);
                    }
                }
                for (t, u, part) in parts {
                    let pushes = book.set_remote(&t, &u, Some(part), now);
                    deliver(live, pushes);
                }
            }
            Command::DropTracker { tracker } => {
                let pushes = book.drop_tracker(&tracker, now_ms());
                deliver(live, pushes);
            }
        }
    }
}

/// `device` as other trackers' lookups show it: its connection here that
/// reported addresses, if any.
fn device_here(book: &PresenceBook, live: &HashMap<ConnId, Live>, device: DeviceId) -> Option<OnlineHere> {
    let has = |a: &Addresses| !a.listen.is_empty() || !a.relayed.is_empty() || !a.observed.is_empty();
    live.iter().filter(|(_, l)| l.session.device_id == device && has(&l.addresses)).max_by_key(|(c, _)| **c).map(
        |(c, l)| OnlineHere {
            user: l.session.user.clone(),
            visible: book.is_visible(*c),
            addresses: l.addresses.clone(),
        },
    )
}

/// Queues `event` for one connection, closing it when it is too slow to
/// take it.
fn push(l: &Live, event: &Event) {
    if l.out.try_send(Box::new(ServerFrame::Event(event.clone()))).is_err() && !l.end.is_cancelled() {
        tracing::warn!(user = %l.session.user, "closing a connection too slow to take its events");
        l.end.cancel();
    }
}

fn deliver(live: &HashMap<ConnId, Live>, pushes: Vec<Push>) {
    for p in pushes {
        if let Some(l) = live.get(&p.to)
            && l.out.try_send(Box::new(ServerFrame::Event(Event::Presence(p.entry)))).is_err()
            && !l.end.is_cancelled()
        {
            tracing::warn!(conn = p.to, user = %l.session.user, "closing a connection too slow to take presence updates");
            l.end.cancel();
        }
    }
}
