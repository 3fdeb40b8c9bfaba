//! group-fanout: the time from one send to a group until every member's
//! device has stored the message, against the same members sent one-to-one
//! messages one after another.
//!
//! The sender is a real `skein daemon`, driven through its control socket
//! as scripts drive it, against a real `skein-tracker`. The members are
//! devices of the node library running in this process, so that a hundred
//! fit on two cores. Each has what a daemon has for receiving: its own
//! tracker session (a password login proving its PeerId), a peer mesh on
//! loopback whose addresses it reports to the tracker, a history file, and
//! an inbox with the group book. It answers its peers as a daemon does: it
//! asks the tracker about a device it has not met before accepting it,
//! checks a group message against the newest membership certificate, and
//! stores a message before acknowledging it. Each member reports the moment
//! it stored a message new to it; a send is timed until the last report.

use crate::cluster::{Cluster, Node, PASSWORD};
use crate::cpu::{self, CpuWatch};
use crate::load;
use crate::report::{Row, Samples, ms};
use crate::scenarios::{Plan, text};
use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use skein_node::control::ControlRequest;
use skein_node::group_book::GroupBook;
use skein_node::history::History;
use skein_node::inbox::Inbox;
use skein_node::mesh::{Mesh, MeshConfig, MeshEvent, Verified};
use skein_node::profile::Profile;
use skein_node::session::{self, Connected};
use skein_node::tracker_client::TrackerClient;
use skein_proto::bytes::{MailId, PublicKey};
use skein_proto::control::{Addresses, Event, GroupCreate, Request, Response};
use skein_proto::peer::PeerRequest;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The sending user, who runs the daemon.
const SENDER: &str = "alice";
/// Rounds of one-to-one sends to every member, one after another.
const BASELINE_ROUNDS: usize = 3;
/// Members logging in and starting at the same time.
const STARTING_AT_ONCE: usize = 8;
/// Longest wait for a member to be ready, or for one send to be stored by all.
const WAIT: Duration = Duration::from_secs(30);

/// A member stored a message new to it: (member, message, when).
type Arrival = (usize, MailId, Instant);

/// One member's device, in this process.
struct Member {
    user: String,
    client: TrackerClient,
    history: History,
    book: GroupBook,
    /// Held so the mesh keeps running; it stops when the last handle goes.
    _mesh: Mesh,
    task: JoinHandle<()>,
}

impl Member {
    /// Logs `user` in as a new device, starts its mesh, history and inbox,
    /// and returns once the tracker knows where to reach it.
    async fn start(cluster: &Cluster, index: usize, user: String, arrivals: mpsc::Sender<Arrival>) -> Result<Member> {
        let profile = Profile::new(cluster.dir.path().join("members").join(&user));
        let ca = cluster.data().join("ca.pem");
        let Connected { client, events, saved, .. } =
            session::login(&profile, &cluster.addr, &ca, &user, PASSWORD.into())
                .await
                .with_context(|| format!("logging {user} in"))?;
        let identity = profile.device()?;
        let cert = saved.cert().context("the session holds no device certificate")?;
        let org_key = PublicKey::from_hex(&saved.org_signing_key).context("the session holds no organisation key")?;
        let config = MeshConfig {
            listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse()?],
            confirm: true,
            ..MeshConfig::default()
        };
        let (mesh, mesh_events) = Mesh::start(identity.keypair, cert, org_key, config)?;
        let history = History::open(&profile.history_path()).await?;
        let book = GroupBook::default();
        book.set_org_key(org_key);
        book.set_tracker(Some(client.clone()));
        let inbox = Inbox {
            history: history.clone(),
            me: user.clone(),
            transfers: None,
            groups: Some(book.clone()),
            gaps: None,
        };
        let (reported_tx, mut reported) = watch::channel(false);
        let device =
            Device { index, inbox, client: client.clone(), book: book.clone(), arrivals, reported: reported_tx };
        let task = tokio::spawn(device.serve(mesh_events, events));
        tokio::time::timeout(WAIT, reported.wait_for(|r| *r))
            .await
            .with_context(|| format!("{user}'s device never reported its addresses to the tracker"))?
            .context("the member's device stopped")?;
        Ok(Member { user, client, history, book, _mesh: mesh, task })
    }

    /// Stops the device: its event loop, its tracker session and history;
    /// the mesh stops as the handle is dropped.
    async fn stop(self) {
        self.task.abort();
        self.client.close();
        self.history.close().await;
    }
}

/// What a member's event loop needs.
struct Device {
    index: usize,
    inbox: Inbox,
    client: TrackerClient,
    book: GroupBook,
    arrivals: mpsc::Sender<Arrival>,
    reported: watch::Sender<bool>,
}

impl Device {
    /// Answers the mesh and follows the tracker, as a daemon does for
    /// receiving, until the mesh stops.
    async fn serve(self, mut mesh: mpsc::Receiver<MeshEvent>, tracker: mpsc::Receiver<Event>) {
        let mut tracker = Some(tracker);
        loop {
            tokio::select! {
                ev = mesh.recv() => match ev {
                    None => return,
                    Some(ev) => self.mesh_event(ev).await,
                },
                ev = next_event(&mut tracker) => match ev {
                    Some(Event::GroupChanged(g)) => {
                        self.book.learn(g.cert);
                    }
                    Some(_) => {}
                    None => tracker = None,
                },
            }
        }
    }

    async fn mesh_event(&self, ev: MeshEvent) {
        match ev {
            MeshEvent::Addresses { listen, observed, relayed } => {
                let some = !listen.is_empty();
                let a = Addresses { listen, observed, relayed };
                if self.client.request(Request::ReportAddresses(a)).await.is_ok() && some {
                    self.reported.send_replace(true);
                }
            }
            MeshEvent::Confirm { verified, reply, .. } => {
                let client = self.client.clone();
                tokio::spawn(async move {
                    let _ = reply.send(vouched(&client, &verified).await);
                });
            }
            MeshEvent::Request { from, path, req, reply, .. } => {
                let (inbox, arrivals, index) = (self.inbox.clone(), self.arrivals.clone(), self.index);
                tokio::spawn(async move {
                    let id = match &*req {
                        PeerRequest::Deliver(m) => Some(m.id),
                        _ => None,
                    };
                    let (resp, events) = inbox.handle_peer(&from, path.as_str(), *req).await;
                    // Events come only with a message stored for the first time.
                    if let (Some(id), false) = (id, events.is_empty()) {
                        let _ = arrivals.send((index, id, Instant::now())).await;
                    }
                    let _ = reply.send(resp);
                });
            }
            _ => {}
        }
    }
}

async fn next_event(rx: &mut Option<mpsc::Receiver<Event>>) -> Option<Event> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether the tracker lists this device, with this PeerId, for its user:
/// the check a daemon makes before accepting a device it has not met.
async fn vouched(client: &TrackerClient, v: &Verified) -> bool {
    matches!(
        client.request(Request::LookupPeer { user: v.user.clone() }).await,
        Ok(Response::Peer(info))
            if info.known.iter().any(|c| c.body.device_id == v.device && c.body.peer_id == v.cert.body.peer_id)
    )
}

/// One send, timed from the command.
#[derive(Debug, Clone, Copy)]
struct Sent {
    /// When the command was given.
    at: Instant,
    /// Until the last member stored the message.
    stored: Duration,
    /// Until the sender's daemon answered the command (after every
    /// recipient acknowledged it).
    answered: Duration,
}

/// Sends a text to `to` (a user, or a group by id) through the sender's
/// daemon and waits until `members` member devices have stored it.
async fn send(
    sender: &Node,
    to: &str,
    i: usize,
    members: usize,
    arrivals: &mut mpsc::Receiver<Arrival>,
) -> Result<Sent> {
    let at = Instant::now();
    let deadline = tokio::time::Instant::now() + WAIT;
    let req = ControlRequest::Send { to: to.into(), text: text(i) };
    let call = sender.call(&req);
    tokio::pin!(call);
    let mut answer = None;
    let mut got: Vec<Arrival> = Vec::with_capacity(members);
    while answer.is_none() || got.len() < members {
        tokio::select! {
            r = &mut call, if answer.is_none() => answer = Some((r?, Instant::now())),
            a = arrivals.recv() => got.push(a.context("the member devices stopped")?),
            _ = tokio::time::sleep_until(deadline) => {
                bail!("{} of {members} members stored message {i} within {} s", got.len(), WAIT.as_secs())
            }
        }
    }
    let Some((reply, answered)) = answer else { bail!("the sender's daemon did not answer") };
    if reply["path"] != "direct" {
        bail!("a timed message went {}", reply["path"]);
    }
    let id = reply["id"].as_str().context("the answer names no message id")?;
    if let Some((_, other, _)) = got.iter().find(|(_, m, _)| m.to_hex() != id) {
        bail!("a member stored message {other} while {id} was timed");
    }
    if got.iter().map(|(member, _, _)| member).collect::<HashSet<_>>().len() != members {
        bail!("a member stored message {id} twice");
    }
    let last = got.iter().map(|(_, _, t)| *t).max().unwrap_or(at);
    Ok(Sent { at, stored: last - at, answered: answered - at })
}

/// group-fanout: a group of the sender and `plan.group_members` members,
/// each member a device of its own; every send timed until all members
/// stored it. Baseline: one-to-one sends to the same devices, one after
/// another.
pub async fn group_fanout(plan: Plan) -> Result<Row> {
    let n = plan.group_members;
    let cfg = tempfile::NamedTempFile::new()?;
    // Password hashing is not what this measures; the logins only set it up.
    std::fs::write(cfg.path(), "password_memory_kib = 64\npassword_iterations = 1\n")?;
    let cluster = Cluster::start(&["--config", cfg.path().to_str().context("utf-8 path")?]).await?;
    cluster.admin("boss").await?;
    cluster.user(SENDER).await?;
    let eps = load::endpoints(&cluster.data().join("ca.pem"))?;
    let addr: SocketAddr = cluster.addr.parse()?;
    load::create_users(&eps, addr, n).await?;
    for ep in &eps {
        ep.close(0u32.into(), b"done");
    }
    let sender = cluster.node(SENDER, &[]).await?;

    let (tx, mut arrivals) = mpsc::channel(4 * n.max(64));
    let t0 = Instant::now();
    let members: Vec<Member> = futures::stream::iter(0..n)
        .map(|i| Member::start(&cluster, i, load::user_name(i), tx.clone()))
        .buffered(STARTING_AT_ONCE)
        .try_collect()
        .await?;
    drop(tx);
    eprintln!("skein-bench: {n} member devices started in {:.1} s", t0.elapsed().as_secs_f64());

    // The group, made by one member; everyone learns it from the tracker.
    let mut everyone: Vec<String> = members.iter().map(|m| m.user.clone()).collect();
    everyone.push(SENDER.into());
    let made = members[0]
        .client
        .request(Request::GroupCreate(GroupCreate { name: "fanout".into(), members: everyone, org: false }))
        .await?;
    let Response::Group(made) = made else { bail!("unexpected answer to making the group: {made:?}") };
    let (group, version) = (made.cert.body.group, made.cert.body.version);
    for m in &members {
        m.book.current(group, version).await.with_context(|| format!("{} does not know the group", m.user))?;
    }
    let to = group.to_hex();

    // The first send also dials every member, and each asks the tracker
    // about the sender's device.
    let first = send(&sender, &to, 0, n, &mut arrivals).await?;
    let watch = CpuWatch::start(&[
        ("the sender's daemon", sender.child.id()),
        ("the tracker", cluster.tracker.id()),
        ("the member devices (this harness)", Some(std::process::id())),
    ]);
    let mut stored = Samples::default();
    let mut answered = Samples::default();
    for i in 1..=plan.group_sends {
        let s = send(&sender, &to, i, n, &mut arrivals).await?;
        stored.push(s.stored);
        answered.push(s.answered);
    }
    let used = watch.finish();

    let mut rounds: Vec<Duration> = Vec::with_capacity(BASELINE_ROUNDS);
    let mut each = Samples::default();
    for round in 0..BASELINE_ROUNDS {
        let mut start = None;
        let mut end = Instant::now();
        for (k, m) in members.iter().enumerate() {
            let s = send(&sender, &m.user, (round + 1) * 100_000 + k, 1, &mut arrivals).await?;
            start.get_or_insert(s.at);
            end = s.at + s.stored;
            each.push(s.answered);
        }
        rounds.push(end - start.unwrap_or(end));
    }
    for m in members {
        m.stop().await;
    }

    let (p50, p99) = (stored.percentile(50.0), stored.percentile(99.0));
    let mut sorted = rounds.clone();
    sorted.sort();
    let base = sorted[sorted.len() / 2];
    let share = p50.as_secs_f64() / base.as_secs_f64() * 100.0;
    Ok(Row {
        scenario: format!("group-fanout ({n} members + sender)"),
        skein: format!(
            "p50 {}, p99 {} from the send until all {n} members stored it ({} sends)",
            ms(p50),
            ms(p99),
            stored.len()
        ),
        baseline: format!(
            "{} for {n} one-to-one sends to the same devices, one after another (median of {BASELINE_ROUNDS} \
             rounds; p50 {} each)",
            ms(base),
            ms(each.percentile(50.0))
        ),
        ratio: format!("p99 {}; p50 {share:.0}% of the sequential sends", ms(p99)),
        target: "p99 ≤ 250 ms".into(),
        met: Some(p99 <= Duration::from_millis(250)),
        measured: format!(
            "The first send, which also dialled every member (each asking the tracker about the sender's device), \
             was stored by all after {}. The sender's daemon answered each timed send (once every member had \
             acknowledged it) after p50 {}, p99 {}. The sequential rounds took {}. {}",
            ms(first.stored),
            ms(answered.percentile(50.0)),
            ms(answered.percentile(99.0)),
            rounds.iter().copied().map(ms).collect::<Vec<_>>().join(", "),
            cpu::describe(used)
        ),
    })
}
