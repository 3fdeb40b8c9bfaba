//! Bookkeeping of peer connections, free of IO: which connections each peer
//! has, whether they are relayed, who passed the hello, and round-trip times.
//!
//! A peer's verification ends with its last connection: a new connection
//! says hello again, so a revoked device is checked again. Each connection
//! remembers which end dialled it: the dialer presents its certificate
//! first, so the mesh never presents ours first on a connection the peer
//! dialled.
//!
//! Every change that shows in a peer's summary publishes the verified
//! peers anew ([`Published`]), so a send reads who is connected without
//! asking the mesh task, which is the busiest task of a node.

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use skein_proto::bytes::DeviceId;
use skein_proto::device::DeviceCert;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How a peer is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// A direct QUIC connection (LAN or hole-punched).
    Direct,
    /// Through a tracker's relay.
    Relayed,
}

impl Path {
    /// `direct` or `relayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Relayed => "relayed",
        }
    }
}

/// A peer that passed the hello.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its user.
    pub user: String,
    /// Its device.
    pub device: DeviceId,
    /// Its certificate.
    pub cert: DeviceCert,
}

/// A verified peer as `skein peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSummary {
    /// The peer.
    pub peer: PeerId,
    /// Its user.
    pub user: String,
    /// Its device.
    pub device: DeviceId,
    /// Direct or relayed.
    pub path: Path,
    /// Remote address of the preferred connection.
    pub remote: String,
    /// Latest round-trip time.
    pub rtt: Option<Duration>,
    /// Directly connected from one of this device's own networks (see
    /// [`super::nearby`]).
    pub nearby: bool,
}

/// One connection to a peer.
#[derive(Debug, Clone)]
struct Conn {
    remote: Multiaddr,
    relayed: bool,
    /// Whether this end dialled it.
    dialer: bool,
    /// When it was established.
    since: Instant,
}

#[derive(Debug, Default)]
struct PeerState {
    conns: HashMap<ConnectionId, Conn>,
    verified: Option<Verified>,
    hello_in_flight: bool,
    /// Its hello verified and awaits the owner's confirmation.
    confirming: bool,
    rtt: Option<Duration>,
}

/// The verified peers as of the latest change, readable from any task.
#[derive(Debug, Clone, Default)]
pub struct Published(Arc<RwLock<Arc<[PeerSummary]>>>);

impl Published {
    /// The verified peers now, by user then PeerId.
    pub fn get(&self) -> Arc<[PeerSummary]> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, peers: Vec<PeerSummary>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = peers.into();
    }
}

/// All peers.
#[derive(Debug, Default)]
pub struct Peers {
    peers: HashMap<PeerId, PeerState>,
    /// The IPs this device listens on.
    local: Vec<std::net::IpAddr>,
    published: Published,
}

impl Drop for Peers {
    /// A mesh task that ended has no peers.
    fn drop(&mut self) {
        self.published.set(Vec::new());
    }
}

impl Peers {
    /// Where the verified peers are published after each change.
    pub fn published(&self) -> Published {
        self.published.clone()
    }

    fn publish(&self) {
        self.published.set(self.summaries());
    }

    /// Sets the IPs this device listens on, which say which peers are nearby.
    pub fn set_local(&mut self, local: Vec<std::net::IpAddr>) {
        self.local = local;
        self.publish();
    }

    /// Records a new connection, established at `since`; `dialer` when
    /// this end dialled it.
    pub fn connected(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        remote: Multiaddr,
        relayed: bool,
        dialer: bool,
        since: Instant,
    ) {
        self.peers.entry(peer).or_default().conns.insert(id, Conn { remote, relayed, dialer, since });
        self.publish();
    }

    /// The connections to `peer` other than `id` that were established
    /// before `before`.
    pub fn older_connections(&self, peer: &PeerId, id: ConnectionId, before: Instant) -> Vec<ConnectionId> {
        self.peers
            .get(peer)
            .map(|p| p.conns.iter().filter(|(c, conn)| **c != id && conn.since < before).map(|(c, _)| *c).collect())
            .unwrap_or_default()
    }

    /// Whether this end dialled connection `id` to `peer`.
    pub fn dialed(&self, peer: &PeerId, id: ConnectionId) -> bool {
        self.peers.get(peer).and_then(|p| p.conns.get(&id)).is_some_and(|c| c.dialer)
    }

    /// Forgets a closed connection; the peer is forgotten with its last one.
    pub fn disconnected(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.conns.remove(&id);
            if p.conns.is_empty() {
                self.peers.remove(&peer);
            }
            self.publish();
        }
    }

    /// Forgets a peer's verification (a refused or revoked peer).
    pub fn forget(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.verified = None;
            p.confirming = false;
            self.publish();
        }
    }

    /// Whether any connection to `peer` is open.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| !p.conns.is_empty())
    }

    /// Marks `peer` verified (if still connected).
    pub fn verify(&mut self, peer: PeerId, v: Verified) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.verified = Some(v);
            self.publish();
        }
    }

    /// Whether `peer` passed the hello.
    pub fn is_verified(&self, peer: &PeerId) -> bool {
        self.verified(peer).is_some()
    }

    /// The verified identity of `peer`.
    pub fn verified(&self, peer: &PeerId) -> Option<&Verified> {
        self.peers.get(peer).and_then(|p| p.verified.as_ref())
    }

    /// Whether our hello to `peer` awaits an answer.
    pub fn hello_in_flight(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.hello_in_flight)
    }

    /// Records that a hello is (or is no longer) awaiting an answer.
    pub fn set_hello_in_flight(&mut self, peer: PeerId, on: bool) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.hello_in_flight = on;
        }
    }

    /// Whether the peer's hello verified and awaits the owner's confirmation.
    pub fn confirming(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.confirming)
    }

    /// Records that the peer's hello awaits (or no longer awaits) the
    /// owner's confirmation.
    pub fn set_confirming(&mut self, peer: PeerId, on: bool) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.confirming = on;
        }
    }

    /// Records a round-trip time.
    pub fn set_rtt(&mut self, peer: PeerId, rtt: Duration) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.rtt = Some(rtt);
            self.publish();
        }
    }

    /// The path of one connection (relayed if unknown).
    pub fn path_of_connection(&self, peer: &PeerId, id: ConnectionId) -> Path {
        match self.peers.get(peer).and_then(|p| p.conns.get(&id)) {
            Some(c) if !c.relayed => Path::Direct,
            _ => Path::Relayed,
        }
    }

    /// Relayed connections to close because a direct one exists.
    pub fn relayed_connections_if_direct(&self, peer: &PeerId) -> Vec<ConnectionId> {
        let Some(p) = self.peers.get(peer) else { return Vec::new() };
        if !p.conns.values().any(|c| !c.relayed) {
            return Vec::new();
        }
        p.conns.iter().filter(|(_, c)| c.relayed).map(|(id, _)| *id).collect()
    }

    /// The best path to a peer now: direct if any connection is, relayed
    /// if only relayed ones are open, `None` when none is.
    pub fn path(&self, peer: &PeerId) -> Option<Path> {
        let p = self.peers.get(peer).filter(|p| !p.conns.is_empty())?;
        Some(if p.conns.values().any(|c| !c.relayed) { Path::Direct } else { Path::Relayed })
    }

    /// A verified peer's summary.
    pub fn summary(&self, peer: &PeerId) -> Option<PeerSummary> {
        let p = self.peers.get(peer)?;
        let v = p.verified.as_ref()?;
        let direct = p.conns.values().find(|c| !c.relayed);
        let (remote, path) = match direct {
            Some(c) => (c.remote.to_string(), Path::Direct),
            None => (p.conns.values().next().map(|c| c.remote.to_string()).unwrap_or_default(), Path::Relayed),
        };
        let nearby = direct
            .and_then(|c| super::nearby::ip_of(&c.remote))
            .is_some_and(|ip| super::nearby::same_network(ip, &self.local));
        Some(PeerSummary { peer: *peer, user: v.user.clone(), device: v.device, path, remote, rtt: p.rtt, nearby })
    }

    /// Every verified peer, by user then PeerId.
    pub fn summaries(&self) -> Vec<PeerSummary> {
        let mut v: Vec<PeerSummary> = self.peers.keys().filter_map(|p| self.summary(p)).collect();
        v.sort_by(|a, b| a.user.cmp(&b.user).then(a.peer.cmp(&b.peer)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_proto::bytes::{PublicKey, Signature};
    use skein_proto::device::DeviceCertBody;

    fn verified(user: &str) -> Verified {
        let body = DeviceCertBody {
            version: 1,
            serial: 1,
            org: "Org".into(),
            user: user.into(),
            device_id: DeviceId([1; 16]),
            peer_id: Vec::new(),
            x25519: PublicKey([2; 32]),
            issued_at_ms: 0,
            expires_at_ms: u64::MAX,
        };
        Verified {
            user: user.into(),
            device: DeviceId([1; 16]),
            cert: DeviceCert { body, signature: Signature([0; 64]) },
        }
    }

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    #[test]
    fn verification_ends_with_the_last_connection() {
        let mut peers = Peers::default();
        let bob = PeerId::random();
        let (relayed, direct) = (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2));
        let through_the_relay = |peers: &mut Peers| {
            let circuit = addr("/ip4/198.18.0.1/udp/7401/quic-v1/p2p-circuit");
            peers.connected(bob, relayed, circuit, true, false, Instant::now());
        };
        through_the_relay(&mut peers);
        peers.verify(bob, verified("bob"));
        peers.connected(bob, direct, addr("/ip4/198.18.2.1/udp/4000/quic-v1"), false, true, Instant::now());
        let s = peers.summary(&bob).expect("summary");
        assert_eq!((s.user.as_str(), s.path), ("bob", Path::Direct));
        assert_eq!(peers.relayed_connections_if_direct(&bob), vec![relayed]);
        peers.disconnected(bob, relayed);
        assert!(peers.is_verified(&bob), "still verified over the direct connection");
        peers.disconnected(bob, direct);
        through_the_relay(&mut peers);
        assert!(!peers.is_verified(&bob), "a new connection says hello again");
    }

    #[test]
    fn the_published_peers_follow_every_change_and_empty_when_the_task_ends() {
        let mut peers = Peers::default();
        let view = peers.published();
        let bob = PeerId::random();
        let (relayed, direct) = (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2));
        let circuit = addr("/ip4/198.18.0.1/udp/7401/quic-v1/p2p-circuit");
        peers.connected(bob, relayed, circuit, true, false, Instant::now());
        assert!(view.get().is_empty(), "a peer shows once it passed the hello");
        peers.verify(bob, verified("bob"));
        assert_eq!(view.get().iter().map(|s| (s.user.as_str(), s.path)).collect::<Vec<_>>(), [("bob", Path::Relayed)]);
        peers.connected(bob, direct, addr("/ip4/198.18.2.1/udp/4000/quic-v1"), false, true, Instant::now());
        assert_eq!(view.get()[0].path, Path::Direct, "the path turning direct shows");
        peers.set_rtt(bob, Duration::from_millis(3));
        assert_eq!(view.get()[0].rtt, Some(Duration::from_millis(3)));
        peers.forget(&bob);
        assert!(view.get().is_empty(), "a refused peer is gone from the view");
        peers.verify(bob, verified("bob"));
        assert_eq!(view.get().len(), 1);
        drop(peers);
        assert!(view.get().is_empty(), "a mesh task that ended has no peers");
    }

    #[test]
    fn a_forgotten_peer_must_say_hello_again() {
        let mut peers = Peers::default();
        let eve = PeerId::random();
        let c = ConnectionId::new_unchecked(1);
        peers.connected(eve, c, addr("/ip4/198.18.2.1/udp/4000/quic-v1"), false, false, Instant::now());
        peers.verify(eve, verified("eve"));
        peers.forget(&eve);
        peers.disconnected(eve, c);
        peers.connected(
            eve,
            ConnectionId::new_unchecked(2),
            addr("/ip4/198.18.2.1/udp/4000/quic-v1"),
            false,
            false,
            Instant::now(),
        );
        assert!(!peers.is_verified(&eve));
    }

    #[test]
    fn each_connection_knows_which_end_dialled_it() {
        let mut peers = Peers::default();
        let bob = PeerId::random();
        let (theirs, ours) = (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2));
        peers.connected(bob, theirs, addr("/ip4/198.18.2.1/udp/4000/quic-v1"), false, false, Instant::now());
        peers.connected(bob, ours, addr("/ip4/198.18.2.1/udp/4001/quic-v1"), false, true, Instant::now());
        assert!(!peers.dialed(&bob, theirs));
        assert!(peers.dialed(&bob, ours));
        assert!(!peers.dialed(&bob, ConnectionId::new_unchecked(3)), "an unknown connection is not ours");
        peers.set_confirming(bob, true);
        assert!(peers.confirming(&bob));
        peers.disconnected(bob, theirs);
        peers.disconnected(bob, ours);
        assert!(!peers.confirming(&bob), "forgotten with the last connection");
    }

    #[test]
    fn older_connections_are_those_established_before_a_moment() {
        let mut peers = Peers::default();
        let bob = PeerId::random();
        let t0 = Instant::now();
        let [old, new, newest] = [1, 2, 3].map(ConnectionId::new_unchecked);
        peers.connected(bob, old, addr("/ip4/198.18.2.1/udp/4000/quic-v1"), false, true, t0);
        peers.connected(bob, new, addr("/ip4/198.18.2.1/udp/4001/quic-v1"), false, false, t0 + Duration::from_secs(9));
        peers.connected(
            bob,
            newest,
            addr("/ip4/198.18.2.1/udp/4002/quic-v1"),
            false,
            false,
            t0 + Duration::from_secs(10),
        );
        assert_eq!(peers.older_connections(&bob, newest, t0 + Duration::from_secs(5)), vec![old]);
        assert!(peers.older_connections(&bob, old, t0 + Duration::from_secs(5)).is_empty(), "never the one named");
        assert!(peers.older_connections(&PeerId::random(), old, t0 + Duration::from_secs(5)).is_empty());
    }
}
