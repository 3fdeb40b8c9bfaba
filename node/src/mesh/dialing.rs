//! The dialing policy, free of IO: direct addresses first, relayed ones
//! after a short head start.
//!
//! A peer on the same LAN answers a direct dial within milliseconds, and a
//! connection made then never touches the tracker's relay. A peer behind
//! another NAT does not answer directly until hole punching has opened the
//! way, which needs a relayed connection first; so the relayed addresses are
//! dialled [`RELAY_HEAD_START`] later, when no connection exists by then.
//! This module keeps the dials in flight and the fallbacks scheduled, so the
//! mesh reports a peer unreachable only once every attempt has failed.

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long direct addresses have to themselves before relayed ones are
/// dialled too.
pub const RELAY_HEAD_START: Duration = Duration::from_millis(300);

/// Whether `a` goes through a relay (`/p2p-circuit`).
pub fn is_relayed(a: &Multiaddr) -> bool {
    a.iter().any(|p| p == Protocol::P2pCircuit)
}

/// Splits `addrs` into what to dial now and what to dial after the head
/// start. Without direct addresses (or with direct dialing off) the relayed
/// ones are dialled at once.
pub fn plan(addrs: Vec<Multiaddr>, direct_allowed: bool) -> (Vec<Multiaddr>, Vec<Multiaddr>) {
    let (relayed, direct): (Vec<_>, Vec<_>) = addrs.into_iter().partition(is_relayed);
    if direct.is_empty() || !direct_allowed { (relayed, Vec::new()) } else { (direct, relayed) }
}

/// Dials in flight and relayed fallbacks waiting for their turn.
#[derive(Debug, Default)]
pub struct Dialing {
    inflight: HashMap<ConnectionId, PeerId>,
    fallbacks: Vec<(Instant, PeerId, Vec<Multiaddr>)>,
}

impl Dialing {
    /// Records a dial the swarm accepted.
    pub fn started(&mut self, id: ConnectionId, peer: PeerId) {
        self.inflight.insert(id, peer);
    }

    /// A dial ended (connected or failed). Returns its peer if it was ours.
    pub fn finished(&mut self, id: ConnectionId) -> Option<PeerId> {
        self.inflight.remove(&id)
    }

    /// Schedules `addrs` for `peer` at `at`, unless already scheduled.
    pub fn schedule(&mut self, at: Instant, peer: PeerId, addrs: Vec<Multiaddr>) {
        if !addrs.is_empty() && !self.fallbacks.iter().any(|(_, p, _)| *p == peer) {
            self.fallbacks.push((at, peer, addrs));
        }
    }

    /// Takes the fallbacks due at `now`.
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let (due, keep): (Vec<_>, Vec<_>) = self.fallbacks.drain(..).partition(|(at, _, _)| *at <= now);
        self.fallbacks = keep;
        due.into_iter().map(|(_, p, a)| (p, a)).collect()
    }

    /// When the next fallback is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.fallbacks.iter().map(|(at, _, _)| *at).min()
    }

    /// Whether some attempt for `peer` is still under way or scheduled.
    pub fn pending(&self, peer: &PeerId) -> bool {
        self.inflight.values().any(|p| p == peer) || self.fallbacks.iter().any(|(_, p, _)| p == peer)
    }

    /// Forgets the fallback of a peer that is now connected.
    pub fn cancel_fallback(&mut self, peer: &PeerId) {
        self.fallbacks.retain(|(_, p, _)| p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    const LAN: &str = "/ip4/198.19.1.3/udp/4000/quic-v1";
    const CIRCUIT: &str =
        "/ip4/198.18.0.1/udp/7401/quic-v1/p2p/12D3KooWGSBEdvnW2gqJpr6PFTMSqE2G4QBVQm6tCxugBMQbvtXj/p2p-circuit";

    #[test]
    fn direct_first_relayed_later() {
        let (now, later) = plan(vec![addr(CIRCUIT), addr(LAN)], true);
        assert_eq!(now, vec![addr(LAN)]);
        assert_eq!(later, vec![addr(CIRCUIT)]);
    }

    #[test]
    fn relayed_at_once_without_direct_addresses_or_when_direct_is_off() {
        assert_eq!(plan(vec![addr(CIRCUIT)], true), (vec![addr(CIRCUIT)], vec![]));
        assert_eq!(plan(vec![addr(CIRCUIT), addr(LAN)], false), (vec![addr(CIRCUIT)], vec![]));
        assert_eq!(plan(vec![addr(LAN)], true), (vec![addr(LAN)], vec![]));
    }

    #[test]
    fn a_peer_is_pending_until_every_attempt_is_over() {
        let mut d = Dialing::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        let id = ConnectionId::new_unchecked(1);
        d.started(id, peer);
        d.schedule(t0 + RELAY_HEAD_START, peer, vec![addr(CIRCUIT)]);
        d.schedule(t0 + RELAY_HEAD_START * 2, peer, vec![addr(CIRCUIT)]);
        assert_eq!(d.next_due(), Some(t0 + RELAY_HEAD_START));
        assert_eq!(d.finished(id), Some(peer));
        assert!(d.pending(&peer), "the fallback is still to come");
        assert!(d.due(t0).is_empty());
        assert_eq!(d.due(t0 + RELAY_HEAD_START), vec![(peer, vec![addr(CIRCUIT)])]);
        assert!(!d.pending(&peer));
        assert_eq!(d.finished(id), None);
    }

    #[test]
    fn a_connected_peer_loses_its_fallback() {
        let mut d = Dialing::default();
        let peer = PeerId::random();
        d.schedule(Instant::now(), peer, vec![addr(CIRCUIT)]);
        d.cancel_fallback(&peer);
        assert!(!d.pending(&peer));
        assert_eq!(d.next_due(), None);
    }
}
