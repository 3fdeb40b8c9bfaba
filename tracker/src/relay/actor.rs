//! The task that owns the relay's libp2p swarm, its allow-list and its
//! reservation and circuit counts.
//!
//! The allow-list is an `Arc<RwLock<HashSet<PeerId>>>` shared between this
//! task and the relay behaviour's rate-limiter hooks. That is the one
//! exception to "one task owns each resource": libp2p calls the hooks
//! synchronously from inside the swarm's poll, for every reservation,
//! renewal and circuit request, so they cannot send a command and wait.
//! Only this task writes the set; the hooks only read it, and no lock is
//! held across an await.

use super::counting::ByteCounters;
use super::{Command, PeerBytes, RelayError, RelayOptions, RelayStats, addrs};
use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder, Transport, allow_block_list, connection_limits, identify, ping, quic, relay,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often the summary line is considered.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// Above this many tracked peers, peers without a connection are forgotten.
const MAX_TRACKED_PEERS: usize = 16_384;
/// How long binding may take to report the listen address.
const BIND_TIMEOUT: Duration = Duration::from_secs(5);

type Allowed = Arc<RwLock<HashSet<PeerId>>>;

/// The relay's behaviours. `gate` refuses connections from any PeerId
/// not on the allow-list (and closes those of a peer taken off it), so a
/// stranger gets no connection at all, not merely no reservation.
#[derive(NetworkBehaviour)]
pub struct RelayBehaviour {
    gate: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

impl std::fmt::Debug for RelayBehaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayBehaviour").finish_non_exhaustive()
    }
}

fn is_allowed(allowed: &Allowed, peer: &PeerId) -> bool {
    allowed.read().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(peer)
}

fn relay_config(limits: &super::RelayLimits, allowed: &Allowed) -> relay::Config {
    let (for_reservations, for_circuits) = (allowed.clone(), allowed.clone());
    relay::Config {
        max_reservations: limits.max_reservations,
        // libp2p refuses only when a peer already holds more than its
        // limit, so it lets one more through: ask for one fewer.
        max_reservations_per_peer: limits.max_reservations_per_peer.saturating_sub(1),
        reservation_duration: limits.reservation_duration,
        // Replaces libp2p's default token buckets: the allow-list is the
        // gate, and the counts above bound the rest.
        reservation_rate_limiters: vec![Box::new(move |peer: PeerId, _: &Multiaddr, _: Instant| {
            is_allowed(&for_reservations, &peer)
        })],
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.max_circuits_per_peer.saturating_sub(1),
        max_circuit_duration: limits.circuit_duration_clamped(),
        max_circuit_bytes: limits.max_circuit_bytes,
        // Only the source is checked here; the destination needed an
        // allowed reservation, and revocation disconnects it.
        circuit_src_rate_limiters: vec![Box::new(move |peer: PeerId, _: &Multiaddr, _: Instant| {
            is_allowed(&for_circuits, &peer)
        })],
    }
}

fn build_swarm(
    options: &RelayOptions,
    allowed: &Allowed,
    counters: &ByteCounters,
) -> Result<Swarm<RelayBehaviour>, RelayError> {
    let setup = |e: &dyn std::fmt::Display| RelayError::Setup(e.to_string());
    let counters = counters.clone();
    let limits = &options.limits;
    let conn_limits = connection_limits::ConnectionLimits::default()
        .with_max_established_incoming(Some(limits.max_connections))
        .with_max_established_per_peer(Some(limits.max_connections_per_peer));
    let swarm = SwarmBuilder::with_existing_identity(options.keypair.clone())
        .with_tokio()
        .with_other_transport(move |key| {
            let mut cfg = quic::Config::new(key);
            cfg.max_idle_timeout = 30_000; // ms
            quic::tokio::Transport::new(cfg)
                .map(move |(peer, muxer), _| (peer, counters.wrap(peer, StreamMuxerBox::new(muxer))))
        })
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| RelayBehaviour {
            gate: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(conn_limits),
            relay: relay::Behaviour::new(key.public().to_peer_id(), relay_config(limits, allowed)),
            identify: identify::Behaviour::new(
                identify::Config::new("/skein/1".into(), key.public())
                    .with_agent_version(concat!("skein-tracker/", env!("CARGO_PKG_VERSION")).into()),
            ),
            ping: ping::Behaviour::new(ping::Config::new()),
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    Ok(swarm)
}

fn udp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Udp(port) => Some(port),
        _ => None,
    })
}

/// The relay task, bound and ready to run.
pub struct RelayTask {
    swarm: Swarm<RelayBehaviour>,
    commands: mpsc::Receiver<Command>,
    allowed: Allowed,
    /// When each peer was last allowed or revoked explicitly, so a store
    /// refresh that started earlier does not undo it.
    changed: HashMap<PeerId, Instant>,
    counters: ByteCounters,
    /// Peers holding a reservation.
    reserved: HashSet<PeerId>,
    /// Open circuits per (source, destination). libp2p may report one
    /// circuit's end twice (once per side), so an entry is removed at zero
    /// rather than counted down past it, and dropped with its peers'
    /// last connection.
    circuits: HashMap<(PeerId, PeerId), usize>,
    listen: Vec<Multiaddr>,
    port: u16,
}

impl std::fmt::Debug for RelayTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayTask")
            .field("peer_id", self.swarm.local_peer_id())
            .field("listen", &self.listen)
            .field("reservations", &self.reserved.len())
            .field("circuits", &self.circuit_count())
            .finish_non_exhaustive()
    }
}

impl RelayTask {
    /// Builds the swarm, binds, waits for the listen address and confirms
    /// the external addresses (without one, libp2p's relay refuses all).
    pub(crate) async fn bind(options: RelayOptions, commands: mpsc::Receiver<Command>) -> Result<Self, RelayError> {
        let allowed: Allowed = Arc::new(RwLock::new(options.allowed.clone()));
        let counters = ByteCounters::default();
        let mut swarm = build_swarm(&options, &allowed, &counters)?;
        for peer in &options.allowed {
            swarm.behaviour_mut().gate.allow_peer(*peer);
        }
        let bind_error = |reason: String| RelayError::Bind { addr: options.listen, reason };
        swarm
            .listen_on(addrs::quic_addr(options.listen.ip(), options.listen.port()))
            .map_err(|e| bind_error(e.to_string()))?;
        let first = tokio::time::timeout(BIND_TIMEOUT, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                    SwarmEvent::ListenerClosed { reason: Err(e), .. } | SwarmEvent::ListenerError { error: e, .. } => {
                        return Err(e.to_string());
                    }
                    SwarmEvent::ListenerClosed { .. } => return Err("the listener closed".to_owned()),
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| bind_error("no listen address after 5 s".into()))?
        .map_err(bind_error)?;
        let port = udp_port(&first).ok_or_else(|| bind_error(format!("unexpected listen address {first}")))?;
        let external = addrs::external_addrs(options.listen.ip(), &options.public_addrs, port);
        if options.listen.ip().is_unspecified() && external.len() <= 1 {
            tracing::warn!(
                listen = %options.listen,
                "the relay listens on all interfaces but no --public-addr IP is set; it announces only loopback"
            );
        }
        for a in &external {
            swarm.add_external_address(a.clone());
        }
        tracing::info!(
            peer_id = %swarm.local_peer_id(),
            listen = %first,
            external = ?external.iter().map(ToString::to_string).collect::<Vec<_>>(),
            allowed = options.allowed.len(),
            "relay serving"
        );
        Ok(Self {
            swarm,
            commands,
            allowed,
            changed: HashMap::new(),
            counters,
            reserved: HashSet::new(),
            circuits: HashMap::new(),
            listen: vec![first],
            port,
        })
    }

    /// The relay's PeerId.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// The bound UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled or every handle is gone, then
    /// logs a last summary and drops the swarm (closing its connections).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut summary = tokio::time::interval(SUMMARY_EVERY);
        summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        summary.tick().await;
        let mut last_logged = None;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.event(event),
                _ = summary.tick() => {
                    if self.counters.len() > MAX_TRACKED_PEERS {
                        self.counters.forget_disconnected();
                    }
                    let line = self.summary_line();
                    if last_logged.as_ref() != Some(&line) {
                        self.log_summary("relay summary");
                        last_logged = Some(line);
                    }
                }
            }
        }
        self.log_summary("relay stopped");
    }

    fn circuit_count(&self) -> usize {
        self.circuits.values().sum()
    }

    fn summary_line(&self) -> (u64, u64, usize, usize) {
        let (rx, tx) = self.counters.total();
        (rx, tx, self.reserved.len(), self.circuit_count())
    }

    fn log_summary(&self, what: &'static str) {
        let (relayed_bytes, sent_bytes, reservations, circuits) = self.summary_line();
        tracing::info!(
            relayed_bytes,
            sent_bytes,
            reservations,
            circuits,
            connected_peers = self.swarm.connected_peers().count(),
            allowed_peers = self.allowed().len(),
            "{what}"
        );
    }

    fn allowed(&self) -> std::sync::RwLockReadGuard<'_, HashSet<PeerId>> {
        self.allowed.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn allowed_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<PeerId>> {
        self.allowed.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Allow { peer, done } => {
                self.allowed_mut().insert(peer);
                self.swarm.behaviour_mut().gate.allow_peer(peer);
                self.changed.insert(peer, Instant::now());
                let _ = done.send(());
            }
            Command::Revoke { peer, done } => {
                let was = self.allowed_mut().remove(&peer);
                self.changed.insert(peer, Instant::now());
                self.disconnect(peer);
                if was {
                    tracing::info!(%peer, "revoked relay access");
                }
                let _ = done.send(());
            }
            Command::Refresh { valid, queried_at, done } => {
                let _ = done.send(self.refresh(valid, queried_at));
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Command::Info { reply } => {
                let _ = reply.send(self.listen.clone());
            }
        }
    }

    fn refresh(&mut self, valid: HashSet<PeerId>, queried_at: Instant) -> usize {
        // Changes older than the query are in the store, hence in `valid`.
        self.changed.retain(|_, at| *at >= queried_at);
        let mut dropped = Vec::new();
        {
            let changed = &self.changed;
            let mut allowed = self.allowed_mut();
            allowed.retain(|p| {
                let keep = valid.contains(p) || changed.contains_key(p);
                if !keep {
                    dropped.push(*p);
                }
                keep
            });
            let added: Vec<PeerId> =
                valid.into_iter().filter(|p| !changed.contains_key(p) && !allowed.contains(p)).collect();
            allowed.extend(added.iter().copied());
            drop(allowed);
            for peer in added {
                self.swarm.behaviour_mut().gate.allow_peer(peer);
            }
        }
        for peer in &dropped {
            tracing::info!(%peer, "relay access ended: no valid device certificate");
            self.disconnect(*peer);
        }
        dropped.len()
    }

    fn disconnect(&mut self, peer: PeerId) {
        self.swarm.behaviour_mut().gate.disallow_peer(peer);
        if self.swarm.is_connected(&peer) {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// The peer's last connection closed: no reservation, no circuits.
    fn forget_peer(&mut self, peer: PeerId) {
        self.reserved.remove(&peer);
        self.circuits.retain(|(src, dst), _| *src != peer && *dst != peer);
    }

    fn stats(&self) -> RelayStats {
        let mut per_peer: Vec<(PeerId, PeerBytes)> =
            self.counters.snapshot().into_iter().map(|(p, rx, tx)| (p, PeerBytes { rx, tx })).collect();
        per_peer.sort_by(|a, b| b.1.rx.cmp(&a.1.rx).then_with(|| a.0.cmp(&b.0)));
        RelayStats {
            total_relayed_bytes: self.counters.total().0,
            per_peer,
            reservations: self.reserved.len(),
            circuits: self.circuit_count(),
        }
    }

    fn event(&mut self, event: SwarmEvent<RelayBehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(RelayBehaviourEvent::Relay(e)) => self.relay_event(e),
            SwarmEvent::NewListenAddr { address, .. } if !self.listen.contains(&address) => self.listen.push(address),
            SwarmEvent::ExpiredListenAddr { address, .. } => self.listen.retain(|a| *a != address),
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => self.forget_peer(peer_id),
            SwarmEvent::ListenerClosed { reason, addresses, .. } => {
                tracing::error!(?reason, ?addresses, "the relay's listener closed; nodes cannot reserve here");
            }
            SwarmEvent::ListenerError { error, .. } => tracing::warn!(%error, "relay listener error"),
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                tracing::debug!(remote = %send_back_addr, %error, "relay connection failed");
            }
            _ => {}
        }
    }

    #[allow(deprecated)] // the `*Failed` variants
    fn relay_event(&mut self, event: relay::Event) {
        use relay::Event as E;
        match event {
            E::ReservationReqAccepted { src_peer_id, renewed } => {
                self.reserved.insert(src_peer_id);
                if !renewed {
                    tracing::debug!(peer = %src_peer_id, "relay reservation accepted");
                }
            }
            E::ReservationReqDenied { src_peer_id, status } => {
                let allowed = is_allowed(&self.allowed, &src_peer_id);
                tracing::debug!(peer = %src_peer_id, ?status, allowed, "relay reservation refused");
            }
            // libp2p reports this for every closed connection, reservation
            // or not; the reservation is gone once no connection is left.
            E::ReservationClosed { src_peer_id } if !self.swarm.is_connected(&src_peer_id) => {
                self.reserved.remove(&src_peer_id);
            }
            E::ReservationTimedOut { src_peer_id } => {
                self.reserved.remove(&src_peer_id);
            }
            E::CircuitReqAccepted { src_peer_id, dst_peer_id } => {
                *self.circuits.entry((src_peer_id, dst_peer_id)).or_default() += 1;
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, "relay circuit opened");
            }
            E::CircuitReqDenied { src_peer_id, dst_peer_id, status } => {
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, ?status, "relay circuit refused");
            }
            E::CircuitClosed { src_peer_id, dst_peer_id, error } => {
                if let std::collections::hash_map::Entry::Occupied(mut n) =
                    self.circuits.entry((src_peer_id, dst_peer_id))
                {
                    *n.get_mut() -= 1;
                    if *n.get() == 0 {
                        n.remove();
                    }
                }
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, ?error, "relay circuit closed");
            }
            E::StatusChanged { status } => tracing::info!(?status, "relay status"),
            _ => {}
        }
    }
}
