//! The peer mesh: one task that owns the libp2p swarm.
//!
//! Callers hold a cloneable [`Mesh`] handle and send commands; the task
//! reports [`MeshEvent`]s on a bounded channel. The mesh enforces the hello
//! rule: the dialing side presents its device certificate first, the other
//! side verifies it (organisation signature, expiry, PeerId binding) before
//! answering with its own, and a peer that has not passed the hello gets no
//! answer but a refusal. Our certificate goes first only on a connection we
//! dialled (or to a peer we are trying to reach); a peer that dialled us
//! and asks anything before its hello is told to present first, and its
//! requests are kept only while its hello is under way, within a small
//! budget. Strangers are bounded: connections are capped, a connection a
//! peer dialled is closed when it has not passed the hello within
//! [`MeshConfig::hello_deadline`], and raw streams are taken only from
//! verified peers. Once a direct connection to a verified peer exists,
//! relayed connections to it are closed, so later traffic takes the direct
//! path.

pub mod behaviour;
pub mod codec;
mod dialing;
mod held;
pub mod lane;
pub mod nearby;
pub mod patience;
pub mod relays;
mod state;
mod streams;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, ping};
use skein_proto::bytes::PublicKey;
use skein_proto::device::DeviceCert;
use skein_proto::peer::{PeerHello, PeerRequest, PeerResponse};
use skein_proto::{ErrorBody, ErrorCode};
use state::Peers;
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use behaviour::{NodeBehaviour, NodeBehaviourEvent};
use dialing::{Dialing, RELAY_HEAD_START, is_relayed};
use held::Held;

/// How long a request whose connection closed waits for the peer to be
/// verified on another connection.
const RETRY_WAIT: Duration = Duration::from_secs(5);
/// How long [`Mesh::connect`] callers keep waiting after the peer's last
/// connection closed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long requests to a peer whose last connection, a relayed one, just
/// closed wait for a direct one: hole punching ends with each end closing
/// the relayed connection once it has the direct one, and the other end's
/// close can come a moment before this end hears of the direct connection.
const UPGRADE_GRACE: Duration = Duration::from_millis(1500);
/// How long a request from a peer whose hello is under way is kept.
const HOLD: Duration = Duration::from_secs(5);
/// How long a stopping node waits for its peers to hear its connections close.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// How long a peer closed for silence gets only one attempt's time to be
/// dialled again (about the tracker's time to notice it gone).
const SILENCE_MEMORY: Duration = Duration::from_secs(30);
/// A verified peer that dials us and says hello again has restarted (a
/// running peer reuses its connection, and says hello once): its
/// connections older than this are left from its previous run, dead
/// though they look established until their idle timeout. Connections
/// both ends dialled at once are far younger than this.
const RESTART_AGE: Duration = Duration::from_secs(5);
pub use behaviour::ConnectionCaps;
pub use held::HeldBudget;
pub use state::{Path, PeerSummary, Verified};
pub use streams::{Streams, VerifiedStreams};

/// How the mesh runs.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Where to listen for peers (QUIC multiaddrs).
    pub listen: Vec<Multiaddr>,
    /// `false` disables direct dialing and hole punching: every peer
    /// connection goes through the relay. For tests and locked-down networks.
    pub direct: bool,
    /// Software name for identify and hellos.
    pub agent: String,
    /// How long [`Mesh::connect`] waits for a verified connection.
    pub connect_timeout: Duration,
    /// Ask the owner ([`MeshEvent::Confirm`]) before accepting a peer whose
    /// certificate verified, so revoked devices can be refused.
    pub confirm: bool,
    /// Caps on the connections other peers open.
    pub connections: ConnectionCaps,
    /// How much is kept of requests from peers whose hello is under way.
    pub held: HeldBudget,
    /// How long a connection a peer dialled may stay open without the peer
    /// passing the hello.
    pub hello_deadline: Duration,
    /// How long one attempt of a request may wait for the peer's answer on
    /// an established connection. A peer that vanished without closing its
    /// connections (killed, or its cable pulled) still looks connected
    /// until the connection's idle timeout; this is what a send waits for
    /// it before the mailbox takes over, unless the peer shows it is there
    /// (see [`patience`]).
    pub attempt_timeout: Duration,
    /// How long a request may wait in all for the answer of a peer that
    /// showed it is there but is slow to answer.
    pub answer_timeout: Duration,
    /// Send and take requests on message lanes ([`lane`]); `false` speaks
    /// the request-response peer protocol only, as nodes before lanes did.
    pub lanes: bool,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/udp/0/quic-v1".parse().unwrap_or_else(|_| Multiaddr::empty())],
            direct: true,
            agent: crate::session::AGENT.to_owned(),
            connect_timeout: Duration::from_secs(10),
            confirm: false,
            connections: ConnectionCaps::default(),
            held: HeldBudget::default(),
            hello_deadline: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(2),
            answer_timeout: Duration::from_secs(10),
            lanes: true,
        }
    }
}

/// What the mesh reports.
#[derive(Debug)]
pub enum MeshEvent {
    /// Our reachable addresses changed.
    Addresses {
        /// Interface addresses.
        listen: Vec<String>,
        /// Addresses peers observed (NAT mappings).
        observed: Vec<String>,
        /// Relayed addresses.
        relayed: Vec<String>,
    },
    /// A peer passed the hello.
    PeerVerified(PeerSummary),
    /// A verified peer's path changed (a relayed connection became direct).
    PathChanged(PeerSummary),
    /// The last connection to a verified peer closed.
    PeerLeft {
        /// The peer.
        peer: PeerId,
        /// Its user.
        user: String,
    },
    /// A hole-punching attempt with a peer ended.
    HolePunch {
        /// The peer.
        peer: PeerId,
        /// `None` on success (a direct connection exists), else why it failed.
        error: Option<String>,
    },
    /// A peer failed the hello and was disconnected.
    PeerRefused {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A peer's certificate verified; answer whether it is still valid
    /// (not revoked). Only with [`MeshConfig::confirm`].
    Confirm {
        /// The peer.
        peer: PeerId,
        /// Who it claims to be.
        verified: Box<Verified>,
        /// `true` to accept.
        reply: oneshot::Sender<bool>,
    },
    /// A relay reservation ended (the mesh seeks another at once).
    RelayLost {
        /// Why.
        reason: String,
    },
    /// A relay accepted a reservation: on the nearest relay, or on a
    /// standby beside one already held.
    RelaySlot {
        /// The relay (`.../p2p/RELAY`).
        relay: Multiaddr,
        /// Not the first reservation held.
        standby: bool,
    },
    /// A verified peer asks something; answer on `reply`.
    Request {
        /// Who asks.
        from: Box<Verified>,
        /// The peer.
        peer: PeerId,
        /// The path it arrived on.
        path: Path,
        /// The request.
        req: Box<PeerRequest>,
        /// Where the answer goes.
        reply: oneshot::Sender<PeerResponse>,
    },
}

/// Why a mesh operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// No verified connection could be made in time.
    #[error("could not reach the peer: {0}")]
    Unreachable(String),
    /// The peer refused our hello.
    #[error("the peer refused us: {0}")]
    Refused(String),
    /// The request failed in flight.
    #[error("the request failed: {0}")]
    Failed(String),
    /// The mesh task has stopped.
    #[error("the peer network is not running")]
    Stopped,
}

enum Command {
    SetIdentity {
        cert: DeviceCert,
        org_key: PublicKey,
    },
    UseRelays {
        addrs: Vec<Multiaddr>,
    },
    Connect {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<PeerSummary, MeshError>>,
    },
    Request {
        peer: PeerId,
        req: PeerRequest,
        reply: oneshot::Sender<Result<(PeerResponse, Path), MeshError>>,
    },
    Revoke {
        peer: PeerId,
        reason: String,
    },
    IsVerified {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    OrgKey {
        reply: oneshot::Sender<PublicKey>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// Who a verified peer is and its path (`None` if not verified).
    VerifiedOf {
        peer: PeerId,
        reply: oneshot::Sender<Option<(Verified, Path)>>,
    },
    /// A request got no answer, nor did a probe, since `since`: the peer
    /// is closed unless something else came from it meanwhile.
    Silent {
        peer: PeerId,
        since: Instant,
    },
}

/// Handle to the mesh task.
#[derive(Clone)]
pub struct Mesh {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    streams: libp2p_stream::Control,
    lanes: lane::Lanes,
    handler: Arc<std::sync::Mutex<Option<lane::Handler>>>,
    /// The verified peers, as the mesh task last changed them.
    peers: state::Published,
    attempt_timeout: Duration,
    answer_timeout: Duration,
    use_lanes: bool,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").field("peer_id", &self.peer_id).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mesh command")
    }
}

impl Mesh {
    /// Starts the mesh with this device's key and certificate.
    pub fn start(
        keypair: libp2p::identity::Keypair,
        cert: DeviceCert,
        org_key: PublicKey,
        config: MeshConfig,
    ) -> Result<(Mesh, mpsc::Receiver<MeshEvent>), behaviour::BuildError> {
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = behaviour::build(keypair, config.direct, &config.agent, config.connections)?;
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| behaviour::BuildError(format!("cannot listen on {addr}: {e}")))?;
        }
        let (tx, rx) = mpsc::channel(256);
        let (events_tx, events_rx) = mpsc::channel(1024);
        let streams = swarm.behaviour().streams.new_control();
        let lanes = lane::Lanes::default();
        let handler = Arc::new(std::sync::Mutex::new(None));
        if config.lanes {
            // Not through `Streams::accept`: the one question to the mesh
            // task below both checks the peer and says who it is.
            let incoming = streams
                .clone()
                .accept(lane::PROTOCOL)
                .map_err(|e| behaviour::BuildError(format!("cannot take message lanes: {e}")))?;
            tokio::spawn(accept_lanes(incoming, tx.clone(), handler.clone(), events_tx.clone(), lanes.clone()));
        }
        let (attempt_timeout, answer_timeout, use_lanes) =
            (config.attempt_timeout, config.answer_timeout, config.lanes);
        let actor = Actor::new(swarm, cert, org_key, config, events_tx, lanes.clone());
        let peers = actor.peers.published();
        tokio::spawn(actor.run(rx));
        Ok((
            Mesh { tx, peer_id, streams, lanes, handler, peers, attempt_timeout, answer_timeout, use_lanes },
            events_rx,
        ))
    }

    /// Sets what answers verified peers' requests on their lanes, directly
    /// from the lane's task; without it they come as [`MeshEvent::Request`]
    /// like requests on the peer protocol. Lanes opened later use it.
    pub fn set_handler(&self, handler: lane::Handler) {
        *self.handler.lock().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    /// Opens and accepts raw streams (bulk content) outside the mesh task.
    /// Incoming streams are taken only from peers that passed the hello.
    pub fn streams(&self) -> Streams {
        Streams::new(self.streams.clone(), self.tx.clone())
    }

    /// The organisation key that peers' certificates are checked against
    /// (`None` once the mesh stopped).
    pub async fn org_key(&self) -> Option<PublicKey> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::OrgKey { reply }).await.ok()?;
        rx.await.ok()
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Replaces the certificate presented to peers (after a re-login).
    pub async fn set_identity(&self, cert: DeviceCert, org_key: PublicKey) {
        let _ = self.tx.send(Command::SetIdentity { cert, org_key }).await;
    }

    /// Keeps reservations on the nearest of `addrs` and a standby (each
    /// `/ip4/../udp/../quic-v1/p2p/RELAY`); see [`relays`]. Reservations
    /// on relays no longer listed end.
    pub async fn use_relays(&self, addrs: Vec<Multiaddr>) {
        let _ = self.tx.send(Command::UseRelays { addrs }).await;
    }

    /// Connects to a peer over any of `addrs` and waits until it passes the hello.
    pub async fn connect(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<PeerSummary, MeshError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Connect { peer, addrs, reply }).await.map_err(|_| MeshError::Stopped)?;
        rx.await.map_err(|_| MeshError::Stopped)?
    }

    /// Sends a request to a verified peer; returns its answer and the path
    /// the answer came on. It goes on the peer's lane (see [`lane`]), or on
    /// the peer protocol when there is no lane to be had. A peer that says
    /// nothing for [`MeshConfig::attempt_timeout`], not even to a probe,
    /// is taken for gone and its connections are closed; one that is only
    /// slow gets up to [`MeshConfig::answer_timeout`], and a request that
    /// waited that long on its lane is sent on the peer protocol as well
    /// (requests are idempotent). See [`patience`].
    pub async fn request(&self, peer: PeerId, req: PeerRequest) -> Result<(PeerResponse, Path), MeshError> {
        if !self.use_lanes || matches!(req, PeerRequest::Hello(_)) {
            return self.request_on_peer_protocol(peer, req).await;
        }
        let started = Instant::now();
        let mut on_lane = Box::pin(self.lanes.request(peer, req.clone(), || self.open_lane(peer)));
        let on_lane = match patience::attempt(&mut on_lane, self.probe(peer), self.attempt_timeout).await {
            patience::Attempt::Answered(Ok(answer)) => return Ok(answer),
            patience::Attempt::Answered(Err((why, req))) => {
                tracing::debug!(%peer, %why, "no lane to the peer; using the peer protocol");
                return self.request_on_peer_protocol(peer, req).await;
            }
            patience::Attempt::Silent => return Err(self.silent(peer, started).await),
            patience::Attempt::Alive => on_lane,
        };
        // Alive but unanswered: whichever way answers first.
        tracing::info!(%peer, "no answer on the lane yet, though the peer is there; asking on the peer protocol too");
        let on_protocol = Box::pin(self.request_on_peer_protocol(peer, req));
        let either = async {
            match futures::future::select(on_lane, on_protocol).await {
                futures::future::Either::Left((Ok(answer), _)) => Ok(answer),
                futures::future::Either::Left((Err(_), on_protocol)) => on_protocol.await,
                futures::future::Either::Right((answer, _)) => answer,
            }
        };
        let limit = self.answer_timeout.saturating_sub(started.elapsed());
        tokio::time::timeout(limit, either).await.unwrap_or_else(|_| Err(self.late()))
    }

    /// [`Mesh::request`] on the request-response peer protocol.
    async fn request_on_peer_protocol(
        &self,
        peer: PeerId,
        req: PeerRequest,
    ) -> Result<(PeerResponse, Path), MeshError> {
        let started = Instant::now();
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Request { peer, req, reply }).await.map_err(|_| MeshError::Stopped)?;
        let mut answer = Box::pin(async { rx.await.map_err(|_| MeshError::Stopped)? });
        match patience::attempt(&mut answer, self.probe(peer), self.attempt_timeout).await {
            patience::Attempt::Answered(answer) => answer,
            patience::Attempt::Silent => Err(self.silent(peer, started).await),
            patience::Attempt::Alive => {
                let limit = self.answer_timeout.saturating_sub(started.elapsed());
                tokio::time::timeout(limit, answer).await.unwrap_or_else(|_| Err(self.late()))
            }
        }
    }

    /// Whether `peer` is there: its connection answers a request for a
    /// stream (see [`patience`]). Streams are negotiated lazily, so the
    /// stream opens at once; reading it sends the request and waits for
    /// the peer's answer: "not supported" from a node that does not serve
    /// the probe (every node today), or the stream from one that does.
    async fn probe(&self, peer: PeerId) -> bool {
        use futures::AsyncReadExt;
        let mut control = self.streams.clone();
        let answered = match control.open_stream(peer, patience::PROBE).await {
            Ok(mut stream) => match stream.read(&mut [0u8; 1]).await {
                Ok(_) => Ok(()),
                Err(e) if streams::is_not_supported(&e) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &answered {
            tracing::debug!(%peer, error = %e, "the probe found no one");
        }
        answered.is_ok()
    }

    /// Tells the mesh task that `peer` said nothing since `since` (it closes
    /// the peer's connections unless it heard from it meanwhile), and says
    /// why the request failed.
    async fn silent(&self, peer: PeerId, since: Instant) -> MeshError {
        let _ = self.tx.send(Command::Silent { peer, since }).await;
        MeshError::Failed(format!("the peer did not answer within {:?}", self.attempt_timeout))
    }

    /// Why a request to a slow peer failed.
    fn late(&self) -> MeshError {
        MeshError::Failed(format!("the peer is there but did not answer within {:?}", self.answer_timeout))
    }

    /// Opens a lane to a verified peer: the stream, and the peer's path.
    /// The error says why not, and whether the peer lacks the protocol.
    async fn open_lane(&self, peer: PeerId) -> Result<(libp2p::Stream, Path), (String, bool)> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::VerifiedOf { peer, reply }).await.is_err() {
            return Err(("the peer network is not running".into(), false));
        }
        let Some((_, path)) = rx.await.ok().flatten() else {
            return Err(("no verified connection to that peer".into(), false));
        };
        let mut control = self.streams.clone();
        match control.open_stream(peer, lane::PROTOCOL).await {
            Ok(stream) => Ok((stream, path)),
            Err(e @ libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => Err((e.to_string(), true)),
            Err(e) => Err((e.to_string(), false)),
        }
    }

    /// Stops trusting a peer whose device's access ended: closes every
    /// connection to it; it must pass the hello (and the owner's check)
    /// again to be heard.
    pub async fn revoke(&self, peer: PeerId, reason: impl Into<String>) {
        let _ = self.tx.send(Command::Revoke { peer, reason: reason.into() }).await;
    }

    /// Closes every connection, so that peers learn at once that this node
    /// is going (QUIC's CONNECTION_CLOSE) rather than after their idle
    /// timeout, waits briefly for the closes to go out, and stops the mesh.
    /// Requests in flight fail with [`MeshError::Stopped`].
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// How many of this node's requests were answered on lanes and how many
    /// on the peer protocol.
    pub fn answered(&self) -> lane::Answered {
        self.lanes.answered()
    }

    /// Verified peers with their paths and round-trip times, by user then
    /// PeerId, as of the mesh task's latest change (read without asking it).
    pub async fn peers(&self) -> Vec<PeerSummary> {
        self.peers.get().to_vec()
    }
}

enum Outbound {
    Hello(PeerId),
    /// A caller's request; `retry` holds a copy while one more attempt is
    /// allowed, for when its connection closes under it (a relayed
    /// connection closed in favour of a new direct one). Peer requests are
    /// idempotent: messages and receipts carry ids. Unanswered at
    /// `deadline` ([`MeshConfig::answer_timeout`]), it fails.
    User {
        reply: oneshot::Sender<Result<(PeerResponse, Path), MeshError>>,
        retry: Option<PeerRequest>,
        deadline: Instant,
    },
}

/// A pending [`Mesh::connect`]: its deadline and where the answer goes.
type Waiter = (Instant, oneshot::Sender<Result<PeerSummary, MeshError>>);
/// A request whose connection closed under it, waiting for the peer to be
/// verified again: deadline, peer, request, the error so far, reply.
type Retry = (Instant, PeerId, PeerRequest, String, oneshot::Sender<Result<(PeerResponse, Path), MeshError>>);
/// A request from a peer whose hello has not finished: connection,
/// request, answer channel.
type HeldRequest = (libp2p::swarm::ConnectionId, PeerRequest, ResponseChannel<PeerResponse>);
type Answer = Pin<Box<dyn std::future::Future<Output = (ResponseChannel<PeerResponse>, Option<PeerResponse>)> + Send>>;
type Confirmation =
    Pin<Box<dyn std::future::Future<Output = (PeerId, Option<ResponseChannel<PeerResponse>>, Verified, bool)> + Send>>;

struct Actor {
    swarm: Swarm<NodeBehaviour>,
    cert: DeviceCert,
    org_key: PublicKey,
    config: MeshConfig,
    events: mpsc::Sender<MeshEvent>,
    peers: Peers,
    outbound: HashMap<OutboundRequestId, Outbound>,
    waiting: HashMap<PeerId, Vec<Waiter>>,
    answers: FuturesUnordered<Answer>,
    confirmations: FuturesUnordered<Confirmation>,
    relays: relays::Relays,
    listen: HashSet<Multiaddr>,
    observed: Vec<Multiaddr>,
    relayed: HashSet<Multiaddr>,
    dialing: Dialing,
    retries: Vec<Retry>,
    held: Held<HeldRequest>,
    /// Connections peers dialled that have not passed the hello yet, with
    /// the deadline for it.
    strangers: Vec<(Instant, PeerId, libp2p::swarm::ConnectionId)>,
    /// When each connected peer last answered a request or a ping.
    heard: HashMap<PeerId, Instant>,
    /// Peers whose connections were closed because they fell silent, and
    /// when: dialling one again gets one attempt's time, not the full
    /// connect timeout, while the tracker may still list it online.
    silenced: HashMap<PeerId, Instant>,
    /// Peers whose last connection was relayed and closed, perhaps as hole
    /// punching replaced it: until when their requests wait (see
    /// [`UPGRADE_GRACE`]).
    upgrading: HashMap<PeerId, Instant>,
    lanes: lane::Lanes,
}

impl Actor {
    fn new(
        swarm: Swarm<NodeBehaviour>,
        cert: DeviceCert,
        org_key: PublicKey,
        config: MeshConfig,
        events: mpsc::Sender<MeshEvent>,
        lanes: lane::Lanes,
    ) -> Self {
        let held = Held::new(config.held);
        Self {
            swarm,
            cert,
            org_key,
            config,
            events,
            peers: Peers::default(),
            outbound: HashMap::new(),
            waiting: HashMap::new(),
            answers: FuturesUnordered::new(),
            confirmations: FuturesUnordered::new(),
            relays: relays::Relays::default(),
            listen: HashSet::new(),
            observed: Vec::new(),
            relayed: HashSet::new(),
            dialing: Dialing::default(),
            retries: Vec::new(),
            held,
            strangers: Vec::new(),
            heard: HashMap::new(),
            silenced: HashMap::new(),
            upgrading: HashMap::new(),
            lanes,
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        self.shut_down().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(c) => self.command(c),
                    None => return,
                },
                ev = self.swarm.select_next_some() => self.swarm_event(ev),
                Some((channel, answer)) = self.answers.next(), if !self.answers.is_empty() => {
                    let resp = answer.unwrap_or_else(|| refused(ErrorCode::Internal, "the node could not answer"));
                    let _ = self.swarm.behaviour_mut().peer.send_response(channel, resp);
                }
                Some((peer, channel, v, ok)) = self.confirmations.next(), if !self.confirmations.is_empty() => {
                    self.confirmed(peer, channel, v, ok);
                }
                _ = tick.tick() => self.expire_waits(),
                _ = sleep_until(self.dialing.next_due()) => self.dial_fallbacks(),
            }
        }
    }

    fn emit(&self, ev: MeshEvent) {
        if self.events.try_send(ev).is_err() {
            tracing::warn!("mesh event queue full; dropping an event");
        }
    }

    fn hello(&self) -> PeerHello {
        PeerHello { cert: self.cert.clone(), agent: self.config.agent.clone() }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::SetIdentity { cert, org_key } => {
                self.cert = cert;
                self.org_key = org_key;
            }
            Command::UseRelays { addrs } => self.use_relays(addrs),
            Command::Connect { peer, addrs, reply } => {
                if let Some(s) = self.peers.summary(&peer) {
                    let _ = reply.send(Ok(s));
                    return;
                }
                let now = Instant::now();
                self.silenced.retain(|_, at| now.duration_since(*at) < SILENCE_MEMORY);
                let patience = match self.silenced.contains_key(&peer) {
                    true => self.config.attempt_timeout,
                    false => self.config.connect_timeout,
                };
                self.waiting.entry(peer).or_default().push((now + patience, reply));
                if !self.peers.is_connected(&peer) && !self.dialing.pending(&peer) {
                    let (now, later) = dialing::plan(addrs, self.config.direct);
                    if now.is_empty() {
                        let why = "no usable address is known for that device".into();
                        self.resolve_waits(&peer, Err(MeshError::Unreachable(why)));
                        return;
                    }
                    self.dial(peer, now, PeerCondition::DisconnectedAndNotDialing);
                    self.dialing.schedule(Instant::now() + RELAY_HEAD_START, peer, later);
                }
            }
            Command::Request { peer, req, reply } => {
                if !self.peers.is_verified(&peer) {
                    if self.peers.is_connected(&peer) {
                        // A new connection's hello is under way (a relayed
                        // connection gave way to a direct one as a lane
                        // request went): send once it passes.
                        let why = "the peer did not pass the hello on its new connection".to_owned();
                        self.retry_after_hello(peer, req, why, reply);
                        return;
                    }
                    if let Some(until) = self.upgrading.get(&peer).copied().filter(|u| *u > Instant::now()) {
                        // Its relayed connection just closed: a direct one
                        // may be a moment away.
                        let why = "its relayed connection closed and no direct one came".to_owned();
                        self.retries.push((until, peer, req, why, reply));
                        return;
                    }
                    let _ = reply.send(Err(MeshError::Unreachable("no verified connection to that peer".into())));
                    return;
                }
                self.send_user(peer, req, reply, true);
            }
            Command::Revoke { peer, reason } => {
                if self.peers.is_connected(&peer) || self.peers.is_verified(&peer) {
                    self.refuse(peer, reason);
                }
            }
            Command::IsVerified { peer, reply } => {
                let _ = reply.send(self.peers.is_verified(&peer));
            }
            Command::OrgKey { reply } => {
                let _ = reply.send(self.org_key);
            }
            // Handled by `run`, which stops after it.
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
            Command::VerifiedOf { peer, reply } => {
                let found = self.peers.verified(&peer).cloned().zip(self.peers.summary(&peer).map(|s| s.path));
                let _ = reply.send(found);
            }
            Command::Silent { peer, since } => {
                if self.heard.get(&peer).is_none_or(|at| *at < since) && self.peers.is_connected(&peer) {
                    self.close_silent(peer, Instant::now());
                }
            }
        }
    }

    /// Closes every connection and drives the swarm until the closes are
    /// out, for at most [`SHUTDOWN_GRACE`].
    async fn shut_down(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let grace = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        while self.swarm.connected_peers().next().is_some() {
            tokio::select! {
                _ = self.swarm.select_next_some() => {}
                _ = &mut grace => {
                    tracing::debug!("some peer connections were still closing at shutdown");
                    break;
                }
            }
        }
    }

    fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, condition: PeerCondition) {
        if addrs.is_empty() {
            return;
        }
        let opts = DialOpts::peer_id(peer).addresses(addrs).condition(condition).build();
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => self.dialing.started(id, peer),
            Err(e) => tracing::debug!(%peer, error = %e, "dial not started"),
        }
    }

    /// Dials the relayed addresses of peers that no direct address answered.
    fn dial_fallbacks(&mut self) {
        for (peer, addrs) in self.dialing.due(Instant::now()) {
            if !self.peers.is_connected(&peer) {
                tracing::debug!(%peer, "no direct answer yet; dialling through the relay");
                // Alongside the direct dial, which may still succeed.
                self.dial(peer, addrs, PeerCondition::Disconnected);
            }
        }
        self.fail_if_unreachable_all();
    }

    /// Answers waiters of peers with no connection and no attempt left.
    fn fail_if_unreachable_all(&mut self) {
        let hopeless: Vec<PeerId> =
            self.waiting.keys().filter(|p| !self.peers.is_connected(p) && !self.dialing.pending(p)).copied().collect();
        for peer in hopeless {
            self.resolve_waits(&peer, Err(MeshError::Unreachable("no address answered".into())));
        }
    }

    fn use_relays(&mut self, addrs: Vec<Multiaddr>) {
        for gone in self.relays.set_candidates(addrs, Instant::now()) {
            tracing::info!(relay = %gone.addr, "the relay is no longer listed; ending the reservation");
            self.swarm.remove_listener(gone.listener);
            self.relayed.remove(&self.circuit(&gone.addr));
        }
        self.addresses_changed();
        self.relays_step();
    }

    /// This node's address through the relay at `relay`.
    fn circuit(&self, relay: &Multiaddr) -> Multiaddr {
        relay.clone().with(Protocol::P2pCircuit).with(Protocol::P2p(*self.swarm.local_peer_id()))
    }

    /// Probes the relays when reservations are missing, and reserves on
    /// those chosen once the probe is over.
    fn relays_step(&mut self) {
        let now = Instant::now();
        for (peer, addr) in self.relays.due(now) {
            let opts = DialOpts::peer_id(peer).addresses(vec![addr]).condition(PeerCondition::Always).build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => self.relays.dialled(id, peer),
                Err(e) => tracing::debug!(relay = %peer, error = %e, "cannot dial the relay"),
            }
        }
        let Some(chosen) = self.relays.chosen(now) else { return };
        for (peer, addr) in chosen {
            match self.swarm.listen_on(addr.clone().with(Protocol::P2pCircuit)) {
                Ok(id) => {
                    tracing::info!(relay = %addr, "asking the relay for a slot");
                    self.relays.reserving(id, peer, addr);
                }
                Err(e) => self.emit(MeshEvent::RelayLost { reason: format!("cannot use relay {addr}: {e}") }),
            }
        }
    }

    fn addresses_changed(&mut self) {
        self.peers.set_local(self.listen.iter().filter_map(nearby::ip_of).collect());
        let list = |s: &mut dyn Iterator<Item = &Multiaddr>| {
            let mut v: Vec<String> = s.map(ToString::to_string).collect();
            v.sort();
            v
        };
        self.emit(MeshEvent::Addresses {
            listen: list(&mut self.listen.iter()),
            observed: list(&mut self.observed.iter()),
            relayed: list(&mut self.relayed.iter()),
        });
    }

    fn expire_waits(&mut self) {
        self.relays_step();
        let now = Instant::now();
        self.upgrading.retain(|_, until| *until > now);
        for peer in self.held.late(now) {
            if !self.peers.is_verified(&peer) {
                self.release_held(peer);
            }
        }
        self.close_strangers(now);
        let (late, keep): (Vec<_>, Vec<_>) = self.retries.drain(..).partition(|r| r.0 <= now);
        self.retries = keep;
        for (_, _, _, error, reply) in late {
            let _ = reply.send(Err(MeshError::Failed(error)));
        }
        // The caller gave up long before, telling a gone peer from a slow
        // one (see `patience`); this only forgets the request.
        let unanswered: Vec<OutboundRequestId> = self
            .outbound
            .iter()
            .filter(|(_, o)| matches!(o, Outbound::User { deadline, .. } if *deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in unanswered {
            if let Some(Outbound::User { reply, .. }) = self.outbound.remove(&id) {
                let why = format!("the peer did not answer within {:?}", self.config.answer_timeout);
                let _ = reply.send(Err(MeshError::Failed(why)));
            }
        }
        for (peer, list) in self.waiting.iter_mut() {
            let (late, keep): (Vec<_>, Vec<_>) = list.drain(..).partition(|(deadline, _)| *deadline <= now);
            *list = keep;
            for (_, reply) in late {
                let why = if self.peers.is_connected(peer) {
                    "the peer did not complete the hello"
                } else {
                    "no address answered"
                };
                let _ = reply.send(Err(MeshError::Unreachable(why.into())));
            }
        }
        self.waiting.retain(|_, l| !l.is_empty());
    }

    fn resolve_waits(&mut self, peer: &PeerId, result: Result<PeerSummary, MeshError>) {
        for (_, reply) in self.waiting.remove(peer).unwrap_or_default() {
            let _ = reply.send(result.clone());
        }
    }

    fn verify(&self, peer: &PeerId, hello: &PeerHello) -> Result<Verified, String> {
        let now = crate::now_ms();
        let body = skein_certs::verify_device_cert(&self.org_key, &hello.cert, now).map_err(|e| e.to_string())?;
        if body.peer_id != peer.to_bytes() {
            return Err("the certificate belongs to another PeerId".into());
        }
        Ok(Verified { user: body.user.clone(), device: body.device_id, cert: hello.cert.clone() })
    }

    /// Closes connections peers dialled that did not pass the hello in time.
    fn close_strangers(&mut self, now: Instant) {
        if self.strangers.is_empty() {
            return;
        }
        let (late, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.strangers)
            .into_iter()
            .filter(|(_, peer, _)| !self.peers.is_verified(peer))
            .partition(|(deadline, _, _)| *deadline <= now);
        self.strangers = keep;
        for (_, peer, conn) in late {
            tracing::debug!(%peer, "closing a connection whose peer did not pass the hello in time");
            self.swarm.close_connection(conn);
        }
    }

    /// Accepts a verified peer, after asking the owner when configured to.
    fn accept(&mut self, peer: PeerId, channel: Option<ResponseChannel<PeerResponse>>, v: Verified) {
        if !self.config.confirm {
            self.confirmed(peer, channel, v, true);
            return;
        }
        self.peers.set_confirming(peer, true);
        let (reply, rx) = oneshot::channel();
        self.emit(MeshEvent::Confirm { peer, verified: Box::new(v.clone()), reply });
        self.confirmations.push(Box::pin(async move { (peer, channel, v, rx.await.unwrap_or(false)) }));
    }

    fn confirmed(&mut self, peer: PeerId, channel: Option<ResponseChannel<PeerResponse>>, v: Verified, ok: bool) {
        self.peers.set_confirming(peer, false);
        if ok {
            if let Some(channel) = channel {
                let mine = PeerResponse::Hello(self.hello());
                let _ = self.swarm.behaviour_mut().peer.send_response(channel, mine);
            }
            self.verified(peer, v);
        } else {
            let why = "the device certificate was revoked".to_owned();
            if let Some(channel) = channel {
                let _ =
                    self.swarm.behaviour_mut().peer.send_response(channel, refused(ErrorCode::PermissionDenied, &why));
            }
            self.refuse(peer, why);
        }
    }

    fn verified(&mut self, peer: PeerId, v: Verified) {
        let first = !self.peers.is_verified(&peer);
        self.peers.verify(peer, v);
        if let Some(s) = self.peers.summary(&peer) {
            if first {
                self.emit(MeshEvent::PeerVerified(s.clone()));
            }
            self.resolve_waits(&peer, Ok(s));
        }
        self.release_held(peer);
        let (now, later): (Vec<_>, Vec<_>) = self.retries.drain(..).partition(|r| r.1 == peer);
        self.retries = later;
        for (_, _, req, _, reply) in now {
            self.send_user(peer, req, reply, false);
        }
        self.prefer_direct(peer);
    }

    fn refuse(&mut self, peer: PeerId, reason: String) {
        tracing::info!(%peer, %reason, "peer failed the hello");
        self.peers.forget(&peer);
        self.release_held(peer);
        self.emit(MeshEvent::PeerRefused { peer, reason: reason.clone() });
        self.resolve_waits(&peer, Err(MeshError::Refused(reason)));
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn send_hello(&mut self, peer: PeerId) {
        let hello = self.hello();
        let id = self.swarm.behaviour_mut().peer.send_request(&peer, PeerRequest::Hello(hello));
        self.peers.set_hello_in_flight(peer, true);
        self.outbound.insert(id, Outbound::Hello(peer));
    }

    /// Closes the connections a restarted peer left from its previous run
    /// (see [`RESTART_AGE`]), so that requests stop going to them.
    fn close_left_over(&mut self, peer: PeerId, hello_on: libp2p::swarm::ConnectionId) {
        let before = Instant::now().checked_sub(RESTART_AGE).unwrap_or_else(Instant::now);
        for id in self.peers.older_connections(&peer, hello_on, before) {
            tracing::debug!(%peer, "the peer restarted; closing a connection left from its previous run");
            self.swarm.close_connection(id);
        }
    }

    /// Closes the connections of a peer that answered neither a request
    /// nor a probe for as long as the request waited (see [`patience`]).
    fn close_silent(&mut self, peer: PeerId, now: Instant) {
        tracing::info!(
            %peer,
            "the peer answered neither a request nor a probe for {:?}; closing its connections",
            self.config.attempt_timeout
        );
        let _ = self.swarm.disconnect_peer_id(peer);
        self.silenced.insert(peer, now);
    }

    /// Closes relayed connections to a verified peer that also has a direct one.
    fn prefer_direct(&mut self, peer: PeerId) {
        let relayed = self.peers.relayed_connections_if_direct(&peer);
        for id in relayed {
            self.swarm.close_connection(id);
        }
    }

    fn swarm_event(&mut self, ev: SwarmEvent<NodeBehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { listener_id, address } => {
                if let Some(r) = self.relays.by_listener(listener_id) {
                    // The relay announces the addresses it knows itself by,
                    // which may be only loopback; peers reach it where we did.
                    let circuit = self.circuit(&r.addr);
                    self.relayed.insert(circuit);
                    if let Some(r) = self.relays.accepted(listener_id) {
                        let (relay, standby) = (r.addr.clone(), r.standby);
                        self.emit(MeshEvent::RelaySlot { relay, standby });
                    }
                } else if is_relayed(&address) {
                    self.relayed.insert(address);
                } else {
                    self.listen.insert(address);
                }
                self.addresses_changed();
            }
            SwarmEvent::ExpiredListenAddr { listener_id, address } => {
                if let Some(r) = self.relays.by_listener(listener_id) {
                    let circuit = self.circuit(&r.addr);
                    self.relayed.remove(&circuit);
                }
                self.relayed.remove(&address);
                self.listen.remove(&address);
                self.addresses_changed();
            }
            SwarmEvent::ListenerClosed { listener_id, reason, .. }
                if self.relays.by_listener(listener_id).is_some() =>
            {
                let Some(lost) = self.relays.closed(listener_id, Instant::now()) else { return };
                self.relayed.remove(&self.circuit(&lost.addr));
                self.addresses_changed();
                let reason = match reason {
                    Ok(()) => format!("the relay {} closed the reservation", lost.addr),
                    Err(e) => format!("the reservation on {} ended: {e}", lost.addr),
                };
                self.emit(MeshEvent::RelayLost { reason });
                self.relays_step();
            }
            SwarmEvent::NewExternalAddrCandidate { address } => {
                let usable = !is_relayed(&address)
                    && matches!(address.iter().next(), Some(Protocol::Ip4(_) | Protocol::Ip6(_)))
                    && !self.observed.contains(&address);
                if usable {
                    self.observed.push(address);
                    if self.observed.len() > 8 {
                        self.observed.remove(0);
                    }
                    self.addresses_changed();
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                self.dialing.finished(connection_id);
                self.dialing.cancel_fallback(&peer_id);
                if self.relays.connected(connection_id, Instant::now()) {
                    self.relays_step();
                    return;
                }
                if self.relays.is_relay(&peer_id) {
                    return;
                }
                // On the listening side of a relayed connection the circuit
                // (relay address + /p2p-circuit) is the local address.
                let remote = match &endpoint {
                    libp2p::core::ConnectedPoint::Listener { local_addr, .. } if endpoint.is_relayed() => {
                        local_addr.clone()
                    }
                    _ => endpoint.get_remote_address().clone(),
                };
                let before = self.peers.summary(&peer_id).map(|s| s.path);
                self.upgrading.remove(&peer_id);
                self.heard.insert(peer_id, Instant::now());
                self.silenced.remove(&peer_id);
                self.peers.connected(
                    peer_id,
                    connection_id,
                    remote,
                    endpoint.is_relayed(),
                    endpoint.is_dialer(),
                    Instant::now(),
                );
                self.lanes.set_path(peer_id, self.peers.path(&peer_id));
                if !endpoint.is_dialer() && !self.peers.is_verified(&peer_id) {
                    let deadline = Instant::now() + self.config.hello_deadline;
                    self.strangers.push((deadline, peer_id, connection_id));
                }
                // The dialer says hello first. So does an end with requests
                // waiting for this peer (a relayed connection gave way to a
                // direct one on which it is the listener).
                let waiting = self.retries.iter().any(|r| r.1 == peer_id) || self.waiting.contains_key(&peer_id);
                if (endpoint.is_dialer() || waiting)
                    && !self.peers.is_verified(&peer_id)
                    && !self.peers.hello_in_flight(&peer_id)
                {
                    self.send_hello(peer_id);
                }
                if self.peers.is_verified(&peer_id) {
                    self.prefer_direct(peer_id);
                    if let Some(s) = self.peers.summary(&peer_id)
                        && before != Some(s.path)
                    {
                        self.emit(MeshEvent::PathChanged(s));
                    }
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, .. } => {
                self.strangers.retain(|(_, _, c)| *c != connection_id);
                let before = self.peers.summary(&peer_id);
                self.peers.disconnected(peer_id, connection_id);
                self.lanes.set_path(peer_id, self.peers.path(&peer_id));
                if !self.peers.is_connected(&peer_id) {
                    self.heard.remove(&peer_id);
                    self.lanes.peer_gone(&peer_id);
                    // A connection that replaces this one (hole punching
                    // makes a direct one as the relayed one closes) has a
                    // moment to appear before waiters hear the bad news.
                    let soon = Instant::now() + CLOSE_GRACE;
                    for (deadline, _) in self.waiting.get_mut(&peer_id).into_iter().flatten() {
                        *deadline = (*deadline).min(soon);
                    }
                    if self.config.direct && before.as_ref().is_some_and(|b| b.path == Path::Relayed) {
                        // A relayed connection closed: perhaps the peer
                        // stopped, perhaps it closed it for the direct one
                        // hole punching just made, which this end has not
                        // heard of yet. Requests wait a moment for it.
                        let until = Instant::now() + UPGRADE_GRACE;
                        self.upgrading.insert(peer_id, until);
                        for r in self.retries.iter_mut().filter(|r| r.1 == peer_id) {
                            r.0 = r.0.min(until);
                        }
                    } else if !self.dialing.pending(&peer_id) {
                        // Requests waiting to be sent again have nowhere to
                        // go: the peer closed its last connection (it is
                        // stopping), and the caller turns to the mailbox now.
                        self.fail_retries(peer_id, "the peer closed its connection");
                    }
                }
                match (before, self.peers.summary(&peer_id)) {
                    (Some(b), None) => self.emit(MeshEvent::PeerLeft { peer: peer_id, user: b.user }),
                    (Some(b), Some(a)) if a.path != b.path => self.emit(MeshEvent::PathChanged(a)),
                    _ => {}
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                self.dialing.finished(connection_id);
                if self.relays.failed(connection_id) {
                    tracing::info!(relay = ?peer_id, %error, "a relay did not answer");
                    self.relays_step();
                    return;
                }
                if let Some(peer) = peer_id
                    && !self.peers.is_connected(&peer)
                    && !self.dialing.pending(&peer)
                {
                    self.resolve_waits(&peer, Err(MeshError::Unreachable(error.to_string())));
                }
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Peer(ev)) => self.peer_event(ev),
            SwarmEvent::Behaviour(NodeBehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
                self.peers.set_rtt(peer, rtt);
                self.heard.insert(peer, Instant::now());
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Dcutr(ev)) => {
                let error = ev.result.err().map(|e| e.to_string());
                match &error {
                    None => tracing::info!(peer = %ev.remote_peer_id, "hole punched: direct connection"),
                    Some(e) => {
                        tracing::info!(peer = %ev.remote_peer_id, error = %e, "hole punching failed; staying relayed")
                    }
                }
                self.emit(MeshEvent::HolePunch { peer: ev.remote_peer_id, error });
            }
            _ => {}
        }
    }

    fn peer_event(&mut self, ev: request_response::Event<PeerRequest, PeerResponse>) {
        match ev {
            request_response::Event::Message { peer, message, connection_id } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.inbound(peer, connection_id, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    self.heard.insert(peer, Instant::now());
                    match self.outbound.remove(&request_id) {
                        Some(Outbound::Hello(p)) => {
                            self.peers.set_hello_in_flight(p, false);
                            match response {
                                PeerResponse::Hello(h) => match self.verify(&p, &h) {
                                    Ok(v) => self.accept(p, None, v),
                                    Err(why) => self.refuse(p, why),
                                },
                                PeerResponse::Refused(b) => {
                                    self.emit(MeshEvent::PeerRefused { peer: p, reason: b.message.clone() });
                                    self.resolve_waits(&p, Err(MeshError::Refused(b.message)));
                                }
                                other => self.refuse(p, format!("unexpected answer to hello: {other:?}")),
                            }
                        }
                        Some(Outbound::User { reply, retry: Some(req), .. })
                            if not_authenticated(&response) && self.peers.is_connected(&peer) =>
                        {
                            // The peer lost our hello while we kept its (a
                            // relayed connection gave way to a direct one that
                            // it dialled): present ours, and send again once it
                            // answers.
                            tracing::debug!(%peer, "the peer asks for our hello again; sending it, then the request");
                            let why = "the peer did not accept our hello again".to_owned();
                            self.retry_after_hello(peer, req, why, reply);
                        }
                        Some(Outbound::User { reply, .. }) => {
                            self.lanes.answered_on_peer_protocol();
                            let _ = reply.send(Ok((response, self.peers.path_of_connection(&peer, connection_id))));
                        }
                        None => {}
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                match self.outbound.remove(&request_id) {
                    Some(Outbound::Hello(p)) => {
                        self.peers.set_hello_in_flight(p, false);
                        tracing::debug!(%peer, %error, "hello failed");
                        // Its connection closed (a relayed one giving way to
                        // a direct one): say hello on the connection left.
                        if self.peers.is_connected(&p) && !self.peers.is_verified(&p) {
                            self.send_hello(p);
                        }
                    }
                    // A connection giving way to another (relayed to direct)
                    // can fail a request as closed, as a stream error or as
                    // a failed negotiation; all are worth one more try.
                    // A timeout already took its time and is final.
                    Some(Outbound::User { reply, retry: Some(req), .. })
                        if !matches!(error, request_response::OutboundFailure::Timeout) =>
                    {
                        if self.peers.is_verified(&peer) {
                            tracing::debug!(%peer, "connection closed under a request; sending it again");
                            // The peer protocol picks among the peer's
                            // connections in turn, and may pick another that
                            // is closing: a closed connection leaves the turn,
                            // so trying again after each stays bounded.
                            let again = matches!(error, request_response::OutboundFailure::ConnectionClosed);
                            self.send_user(peer, req, reply, again);
                        } else if !self.peers.is_connected(&peer) && !self.dialing.pending(&peer) {
                            // No connection is left to wait on: the peer went.
                            let _ = reply.send(Err(MeshError::Failed(error.to_string())));
                        } else {
                            // The new connection may not have passed its hello yet.
                            tracing::debug!(%peer, "connection closed under a request; waiting for the peer");
                            self.retry_after_hello(peer, req, error.to_string(), reply);
                        }
                    }
                    Some(Outbound::User { reply, .. }) => {
                        let _ = reply.send(Err(MeshError::Failed(error.to_string())));
                    }
                    None => {}
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound peer request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn inbound(
        &mut self,
        peer: PeerId,
        conn: libp2p::swarm::ConnectionId,
        req: PeerRequest,
        channel: ResponseChannel<PeerResponse>,
    ) {
        match req {
            PeerRequest::Hello(h) => match self.verify(&peer, &h) {
                Ok(v) => {
                    if self.peers.is_verified(&peer) && !self.peers.dialed(&peer, conn) {
                        self.close_left_over(peer, conn);
                    }
                    self.accept(peer, Some(channel), v)
                }
                Err(why) => {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .peer
                        .send_response(channel, refused(ErrorCode::PermissionDenied, &why));
                    self.refuse(peer, why);
                }
            },
            other => match self.peers.verified(&peer).cloned() {
                Some(from) => self.serve(peer, conn, from, other, channel),
                None => self.hold(peer, conn, other, channel),
            },
        }
    }

    /// Hands a verified peer's request to the owner.
    fn serve(
        &mut self,
        peer: PeerId,
        conn: libp2p::swarm::ConnectionId,
        from: Verified,
        req: PeerRequest,
        channel: ResponseChannel<PeerResponse>,
    ) {
        let path = self.peers.path_of_connection(&peer, conn);
        let (reply, rx) = oneshot::channel();
        self.emit(MeshEvent::Request { from: Box::new(from), peer, path, req: Box::new(req), reply });
        self.answers.push(Box::pin(async move { (channel, rx.await.ok()) }));
    }

    /// Keeps a request from a peer whose hello is under way: ours is in
    /// flight, or theirs awaits the owner's confirmation. On a connection
    /// we dialled, or from a peer we are trying to reach, we say hello
    /// first if we have not (both ends' hellos can be lost when a relayed
    /// connection closes in favour of a direct one). A peer that dialled
    /// us must present first: its request is refused at once, and it says
    /// hello and sends again (see the `NotAuthenticated` answer in
    /// `peer_event`). Kept within [`MeshConfig::held`]; refused when the
    /// hello fails or does not finish within [`HOLD`].
    fn hold(
        &mut self,
        peer: PeerId,
        conn: libp2p::swarm::ConnectionId,
        req: PeerRequest,
        channel: ResponseChannel<PeerResponse>,
    ) {
        if !self.peers.is_connected(&peer) {
            self.refuse_unverified(channel);
            return;
        }
        let under_way = self.peers.hello_in_flight(&peer) || self.peers.confirming(&peer);
        let ours = self.peers.dialed(&peer, conn) || self.seeking(&peer);
        if !under_way && !ours {
            self.refuse_unverified(channel);
            return;
        }
        let size = postcard::experimental::serialized_size(&req).unwrap_or(skein_proto::peer::MAX_PEER_FRAME);
        if let Err((why, (_, _, channel))) = self.held.hold(peer, size, Instant::now() + HOLD, (conn, req, channel)) {
            tracing::debug!(%peer, %why, "refusing a request from a peer whose hello is under way");
            self.refuse_unverified(channel);
            return;
        }
        if !under_way {
            self.send_hello(peer);
        }
    }

    /// Whether we are trying to reach `peer`: callers wait for it, or
    /// requests to it wait for its hello.
    fn seeking(&self, peer: &PeerId) -> bool {
        self.waiting.contains_key(peer) || self.retries.iter().any(|r| r.1 == *peer)
    }

    /// Refuses a request from a peer that has not passed the hello.
    fn refuse_unverified(&mut self, channel: ResponseChannel<PeerResponse>) {
        let resp = refused(ErrorCode::NotAuthenticated, "present a device certificate first");
        let _ = self.swarm.behaviour_mut().peer.send_response(channel, resp);
    }

    /// Sends a caller's request on the peer protocol; with `retry`, a copy
    /// is kept for one more attempt (see [`Outbound::User`]).
    fn send_user(
        &mut self,
        peer: PeerId,
        req: PeerRequest,
        reply: oneshot::Sender<Result<(PeerResponse, Path), MeshError>>,
        retry: bool,
    ) {
        let copy = retry.then(|| req.clone());
        let id = self.swarm.behaviour_mut().peer.send_request(&peer, req);
        let deadline = Instant::now() + self.config.answer_timeout;
        self.outbound.insert(id, Outbound::User { reply, retry: copy, deadline });
    }

    /// Keeps a caller's request until `peer` passes the hello (sending ours
    /// if none is under way on a connection), then sends it a last time;
    /// `why` is the error if that does not happen within [`RETRY_WAIT`].
    fn retry_after_hello(
        &mut self,
        peer: PeerId,
        req: PeerRequest,
        why: String,
        reply: oneshot::Sender<Result<(PeerResponse, Path), MeshError>>,
    ) {
        self.retries.push((Instant::now() + RETRY_WAIT, peer, req, why, reply));
        if self.peers.is_connected(&peer) && !self.peers.hello_in_flight(&peer) {
            self.send_hello(peer);
        }
    }

    /// Fails the requests waiting to be sent again to `peer`.
    fn fail_retries(&mut self, peer: PeerId, why: &str) {
        let (gone, keep): (Vec<_>, Vec<_>) = self.retries.drain(..).partition(|r| r.1 == peer);
        self.retries = keep;
        for (_, _, _, error, reply) in gone {
            let _ = reply.send(Err(MeshError::Failed(format!("{why} ({error})"))));
        }
    }

    /// Answers or refuses the held requests of `peer`.
    fn release_held(&mut self, peer: PeerId) {
        for (conn, req, channel) in self.held.take(&peer) {
            match self.peers.verified(&peer).cloned() {
                Some(from) => self.serve(peer, conn, from, req, channel),
                None => self.refuse_unverified(channel),
            }
        }
    }
}

fn refused(code: ErrorCode, why: &str) -> PeerResponse {
    PeerResponse::Refused(ErrorBody::new(code, why))
}

/// Whether a peer answered that it does not know us (yet): it wants our hello.
fn not_authenticated(resp: &PeerResponse) -> bool {
    matches!(resp, PeerResponse::Refused(b) if b.code == ErrorCode::NotAuthenticated)
}

/// `/ip4|ip6/IP/udp/PORT/quic-v1` for a socket address.
pub fn quic_addr(addr: std::net::SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => Protocol::Ip4(v4),
        std::net::IpAddr::V6(v6) => Protocol::Ip6(v6),
    };
    Multiaddr::empty().with(ip).with(Protocol::Udp(addr.port())).with(Protocol::QuicV1)
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Serves the lanes verified peers open, each in a task of its own; a
/// lane from any other peer is dropped the moment it arrives.
async fn accept_lanes(
    mut incoming: libp2p_stream::IncomingStreams,
    mesh: mpsc::Sender<Command>,
    handler: Arc<std::sync::Mutex<Option<lane::Handler>>>,
    events: mpsc::Sender<MeshEvent>,
    lanes: lane::Lanes,
) {
    while let Some((peer, stream)) = incoming.next().await {
        let (reply, rx) = oneshot::channel();
        if mesh.send(Command::VerifiedOf { peer, reply }).await.is_err() {
            return;
        }
        let Some((from, path)) = rx.await.ok().flatten() else {
            tracing::debug!(%peer, "refusing a lane from a peer that has not passed the hello");
            continue;
        };
        let set = handler.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let handler = set.unwrap_or_else(|| as_events(peer, events.clone()));
        tokio::spawn(lane::serve(stream, peer, from, path, lanes.clone(), handler));
    }
}

/// A handler that hands requests to the owner as [`MeshEvent::Request`].
fn as_events(peer: PeerId, events: mpsc::Sender<MeshEvent>) -> lane::Handler {
    Arc::new(move |from, path, req| {
        let events = events.clone();
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            let ev = MeshEvent::Request { from, peer, path, req: Box::new(req), reply };
            if events.send(ev).await.is_err() {
                return refused(ErrorCode::Unavailable, "the node is stopping");
            }
            rx.await.unwrap_or_else(|_| refused(ErrorCode::Internal, "the node could not answer"))
        })
    })
}
