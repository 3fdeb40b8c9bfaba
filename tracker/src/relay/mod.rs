//! The tracker's relay: libp2p circuit relay v2 over QUIC, for nodes whose
//! hole punching failed.
//!
//! One task ([`actor`]) owns the libp2p swarm (relay + identify + ping +
//! connection limits). Everything else holds a cloneable [`Relay`] handle
//! that sends it commands:
//! - [`Relay::allow`] / [`Relay::revoke`] keep the allow-list: only devices
//!   with a valid, unrevoked certificate may reserve a slot or open a
//!   circuit. Logins and resumes allow their device; [`sync`] refreshes the
//!   list from the store every minute and revokes devices and users that an
//!   administrator revoked or disabled.
//! - [`Relay::stats`] reports the bytes relayed per peer and in total (see
//!   [`counting`]) and the reservations and circuits open.
//!
//! Limits come from [`RelayLimits`]; the relay's identity lives in
//! `DATA/relay.key` ([`identity`]); what it announces is worked out in
//! [`addrs`].

pub mod actor;
pub mod addrs;
pub mod config;
pub mod counting;
pub mod identity;
pub mod sniff;
pub mod sync;

pub use config::RelayLimits;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Commands queued for the relay task before callers wait.
const COMMAND_QUEUE: usize = 1024;

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The identity file is unreadable or corrupt.
    #[error("relay key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The UDP address could not be bound.
    #[error(
        "cannot listen on UDP {addr} for the relay: {reason}; is another tracker running there? Choose another address with --relay-listen"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The libp2p swarm could not be built.
    #[error("cannot set up the relay: {0}")]
    Setup(String),
}

/// The relay task has stopped (the tracker is shutting down). Only
/// [`Relay::refresh`] reports it; the other methods answer with nothing to
/// do or empty values, and [`Relay::is_stopped`] tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the relay has stopped")]
pub struct RelayStopped;

/// Bytes one peer moved through the relay's connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerBytes {
    /// Read from the peer: what it sent through the relay (plus control traffic).
    pub rx: u64,
    /// Written to the peer: what it received through the relay (plus control traffic).
    pub tx: u64,
}

/// A snapshot of the relay's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Bytes relayed since start: the sum of every peer's `rx`. An upper
    /// bound: identify, ping and the relay handshakes (about 2 KB per
    /// connection) are included.
    pub total_relayed_bytes: u64,
    /// Per peer, largest `rx` first. Peers without a connection may be
    /// dropped from this list when many peers have come and gone; their
    /// bytes stay in the total.
    pub per_peer: Vec<(PeerId, PeerBytes)>,
    /// Peers holding a reservation.
    pub reservations: usize,
    /// Circuits open.
    pub circuits: usize,
}

impl RelayStats {
    /// The counts of one peer, if known.
    pub fn peer(&self, peer: &PeerId) -> Option<PeerBytes> {
        self.per_peer.iter().find(|(p, _)| p == peer).map(|(_, b)| *b)
    }
}

/// What to start a relay with.
#[derive(Debug)]
pub struct RelayOptions {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// The tracker's public DNS names or IPs.
    pub public_addrs: Vec<String>,
    /// Limits.
    pub limits: RelayLimits,
    /// The relay's identity.
    pub keypair: Keypair,
    /// Peers allowed from the start (devices with valid certificates).
    pub allowed: HashSet<PeerId>,
}

#[derive(Debug)]
pub(crate) enum Command {
    Allow { peer: PeerId, done: oneshot::Sender<()> },
    Revoke { peer: PeerId, done: oneshot::Sender<()> },
    Refresh { valid: HashSet<PeerId>, queried_at: std::time::Instant, done: oneshot::Sender<usize> },
    Stats { reply: oneshot::Sender<RelayStats> },
    Info { reply: oneshot::Sender<Vec<Multiaddr>> },
}

/// A handle on the running relay; cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    port: u16,
    advertised: Arc<[Multiaddr]>,
}

impl Relay {
    /// Binds the relay and returns its handle and the task to run (until
    /// the token given to [`actor::RelayTask::run`] is cancelled).
    pub async fn start(options: RelayOptions) -> Result<(Relay, actor::RelayTask), RelayError> {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let listen_ip = options.listen.ip();
        let public = options.public_addrs.clone();
        let task = actor::RelayTask::bind(options, rx).await?;
        let port = task.port();
        let advertised = addrs::advertised_addrs(listen_ip, &public, port).into();
        Ok((Relay { tx, peer_id: task.peer_id(), port, advertised }, task))
    }

    /// A handle on no relay, for a tracker that runs the control plane
    /// alone (`--roles control`): it keeps `keypair`'s PeerId, which names
    /// the tracker in the list of trackers, advertises nothing, and acts as
    /// a relay that has stopped.
    pub fn detached(keypair: &Keypair) -> Relay {
        let (tx, _) = mpsc::channel(1);
        Relay { tx, peer_id: keypair.public().to_peer_id(), port: 0, advertised: Arc::from(Vec::new()) }
    }

    /// The relay's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The UDP port the relay is bound to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The addresses (without `/p2p/`) nodes are told to use, best first.
    pub fn advertised(&self) -> &[Multiaddr] {
        &self.advertised
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, RelayStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| RelayStopped)?;
        rx.await.map_err(|_| RelayStopped)
    }

    /// Whether the relay task has ended (after the tracker's shutdown).
    pub fn is_stopped(&self) -> bool {
        self.tx.is_closed()
    }

    /// Lets `peer` reserve and open circuits. Returns once in force (at
    /// once if the relay has stopped).
    pub async fn allow(&self, peer: PeerId) {
        if self.call(|done| Command::Allow { peer, done }).await.is_err() {
            tracing::debug!(%peer, "relay stopped; not allowing");
        }
    }

    /// Removes `peer` from the allow-list and closes its connections to the
    /// relay, ending its reservation and circuits. Returns once done.
    pub async fn revoke(&self, peer: PeerId) {
        if self.call(|done| Command::Revoke { peer, done }).await.is_err() {
            tracing::debug!(%peer, "relay stopped; nothing to revoke");
        }
    }

    /// Replaces the allow-list with `valid`, a store query started at
    /// `queried_at`; allows and revocations made since then win. Peers
    /// dropped are disconnected. Returns how many were dropped.
    pub async fn refresh(&self, valid: HashSet<PeerId>, queried_at: std::time::Instant) -> Result<usize, RelayStopped> {
        self.call(|done| Command::Refresh { valid, queried_at, done }).await
    }

    /// The current counters (all zero once the relay has stopped).
    pub async fn stats(&self) -> RelayStats {
        self.call(|reply| Command::Stats { reply }).await.unwrap_or_default()
    }

    /// The relay's PeerId and the addresses it listens on (none once it
    /// has stopped).
    pub async fn info(&self) -> (PeerId, Vec<Multiaddr>) {
        (self.peer_id, self.call(|reply| Command::Info { reply }).await.unwrap_or_default())
    }
}
