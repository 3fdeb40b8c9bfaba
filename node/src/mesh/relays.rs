//! Which relays a node keeps a reservation on: the nearest of the
//! organisation's relays, plus a standby on a second where one exists, so
//! that peers still reach it through the standby while the first is away.
//!
//! The mesh task hands over the candidates (every relay the tracker
//! lists), dials the ones it has no reservation on, and reports each
//! connection's handshake time here; the nearest wins, ties broken at
//! random ([`crate::nearest`]), and the next to answer becomes the standby.
//! A reservation that ends is filled again at once from the remaining
//! candidates, and one that cannot be filled is tried again every
//! [`RECHECK`]. This module holds the state and makes the choices; the
//! mesh task does the dialling and listening.

use crate::nearest::Race;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Reservations kept: the nearest relay and one standby.
pub const WANTED: usize = 2;
/// How long the relays get to answer a probe before the choice is made
/// with those that did.
pub const PROBE_LIMIT: Duration = Duration::from_secs(3);
/// How often a node short of reservations tries again.
pub const RECHECK: Duration = Duration::from_secs(30);

/// One reservation: the listener on the relay's circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// The circuit listener.
    pub listener: ListenerId,
    /// The relay.
    pub peer: PeerId,
    /// Its address (with `/p2p/RELAY`).
    pub addr: Multiaddr,
    /// Asked for beside another reservation.
    pub standby: bool,
    /// The relay accepted it.
    pub accepted: bool,
}

/// A race between relays' handshakes under way.
#[derive(Debug)]
struct Probe {
    started: Instant,
    /// Dials not yet answered: connection, relay.
    pending: HashMap<ConnectionId, PeerId>,
    race: Race<PeerId>,
}

/// The node's relays: the candidates, the reservations held, a probe.
#[derive(Debug)]
pub struct Relays {
    candidates: Vec<(PeerId, Multiaddr)>,
    reserved: Vec<Reserved>,
    probe: Option<Probe>,
    next_check: Instant,
}

impl Default for Relays {
    fn default() -> Self {
        Self { candidates: Vec::new(), reserved: Vec::new(), probe: None, next_check: Instant::now() }
    }
}

/// The relay a relay address names (its last `/p2p/`).
pub fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

impl Relays {
    /// Replaces the candidates with `addrs` (each ending in `/p2p/RELAY`;
    /// others are skipped, as is a second address of one relay). Returns
    /// the reservations on relays no longer listed, for the caller to end.
    pub fn set_candidates(&mut self, addrs: Vec<Multiaddr>, now: Instant) -> Vec<Reserved> {
        let mut candidates: Vec<(PeerId, Multiaddr)> = Vec::new();
        for addr in addrs {
            match relay_of(&addr) {
                Some(peer) if !candidates.iter().any(|(p, _)| *p == peer) => candidates.push((peer, addr)),
                Some(_) => {}
                None => tracing::warn!(%addr, "relay address lacks /p2p/<relay id>; skipped"),
            }
        }
        self.candidates = candidates;
        let (keep, gone): (Vec<_>, Vec<_>) =
            self.reserved.drain(..).partition(|r| self.candidates.iter().any(|(p, _)| *p == r.peer));
        self.reserved = keep;
        self.next_check = now;
        gone
    }

    /// True if `peer` is one of the relays (a connection to it is not a
    /// connection to a peer of the mesh).
    pub fn is_relay(&self, peer: &PeerId) -> bool {
        self.candidates.iter().any(|(p, _)| p == peer) || self.reserved.iter().any(|r| r.peer == *peer)
    }

    /// The reservations held, the nearest first.
    pub fn reserved(&self) -> &[Reserved] {
        &self.reserved
    }

    /// How many more reservations are wanted.
    pub fn missing(&self) -> usize {
        WANTED.min(self.candidates.len()).saturating_sub(self.reserved.len())
    }

    /// When no probe runs, reservations are missing and it is time: the
    /// relays to dial (those without a reservation). The caller dials each
    /// and reports the dial with [`Relays::dialled`].
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        if self.probe.is_some() || self.missing() == 0 || now < self.next_check {
            return Vec::new();
        }
        self.next_check = now + RECHECK;
        let todo: Vec<_> =
            self.candidates.iter().filter(|(p, _)| !self.reserved.iter().any(|r| r.peer == *p)).cloned().collect();
        if !todo.is_empty() {
            self.probe = Some(Probe { started: now, pending: HashMap::new(), race: Race::new() });
        }
        todo
    }

    /// A probe dial of `peer` started as `connection`.
    pub fn dialled(&mut self, connection: ConnectionId, peer: PeerId) {
        if let Some(p) = &mut self.probe {
            p.pending.insert(connection, peer);
        }
    }

    /// A connection was established; true if it answered a probe.
    pub fn connected(&mut self, connection: ConnectionId, now: Instant) -> bool {
        let Some(p) = &mut self.probe else { return false };
        let Some(peer) = p.pending.remove(&connection) else { return false };
        p.race.answered(now.duration_since(p.started), peer);
        true
    }

    /// A dial failed; true if it was a probe's.
    pub fn failed(&mut self, connection: ConnectionId) -> bool {
        self.probe.as_mut().is_some_and(|p| p.pending.remove(&connection).is_some())
    }

    /// When the probe is over (every relay answered or failed, the ties
    /// are settled, or [`PROBE_LIMIT`] passed): the relays to reserve on,
    /// nearest first, as many as are missing.
    pub fn chosen(&mut self, now: Instant) -> Option<Vec<(PeerId, Multiaddr)>> {
        let p = self.probe.as_ref()?;
        let took = now.duration_since(p.started);
        let over = p.pending.is_empty() || p.race.settled(took) || took >= PROBE_LIMIT;
        if !over {
            return None;
        }
        let p = self.probe.take()?;
        let missing = self.missing();
        let Some((first, rest)) = p.race.pick(&mut rand::thread_rng()) else {
            tracing::info!(relays = self.candidates.len(), "no relay answered; trying again later");
            return Some(Vec::new());
        };
        let addr_of = |peer: PeerId| self.candidates.iter().find(|(p, _)| *p == peer).cloned();
        Some(std::iter::once(first).chain(rest).filter_map(addr_of).take(missing).collect())
    }

    /// A reservation is being made on `addr`'s relay as `listener`; a
    /// standby when another is held.
    pub fn reserving(&mut self, listener: ListenerId, peer: PeerId, addr: Multiaddr) {
        let standby = !self.reserved.is_empty();
        self.reserved.push(Reserved { listener, peer, addr, standby, accepted: false });
    }

    /// The relay accepted the reservation of `listener`: returns it the
    /// first time.
    pub fn accepted(&mut self, listener: ListenerId) -> Option<&Reserved> {
        let r = self.reserved.iter_mut().find(|r| r.listener == listener && !r.accepted)?;
        r.accepted = true;
        Some(r)
    }

    /// The reservation with this listener, if it is one.
    pub fn by_listener(&self, listener: ListenerId) -> Option<&Reserved> {
        self.reserved.iter().find(|r| r.listener == listener)
    }

    /// A reservation's listener closed: it is forgotten, and the missing
    /// one is sought again at once.
    pub fn closed(&mut self, listener: ListenerId, now: Instant) -> Option<Reserved> {
        let i = self.reserved.iter().position(|r| r.listener == listener)?;
        self.next_check = now;
        Some(self.reserved.remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(n: u8) -> (PeerId, Multiaddr) {
        let peer = PeerId::random();
        let addr: Multiaddr = format!("/ip4/198.18.0.{n}/udp/7401/quic-v1").parse().expect("addr");
        (peer, addr.with(Protocol::P2p(peer)))
    }

    fn listener() -> ListenerId {
        ListenerId::next()
    }

    #[test]
    fn the_nearest_relay_and_a_standby_are_chosen() {
        let (a, b, c) = (relay(1), relay(2), relay(3));
        let mut relays = Relays::default();
        let t0 = Instant::now();
        relays.set_candidates(vec![a.1.clone(), b.1.clone(), c.1.clone()], t0);
        assert_eq!(relays.missing(), 2);
        let todo = relays.due(t0);
        assert_eq!(todo.len(), 3);
        let ids: Vec<ConnectionId> = (1..=todo.len()).map(ConnectionId::new_unchecked).collect();
        for (id, (peer, _)) in ids.iter().zip(&todo) {
            relays.dialled(*id, *peer);
        }
        assert!(relays.due(t0).is_empty(), "one probe at a time");
        // c answers in 5 ms, a in 60 ms, b never.
        assert!(relays.connected(ids[2], t0 + Duration::from_millis(5)));
        assert!(relays.chosen(t0 + Duration::from_millis(6)).is_none(), "ties may still come");
        assert!(relays.connected(ids[0], t0 + Duration::from_millis(60)));
        let chosen = relays.chosen(t0 + Duration::from_millis(61)).expect("settled");
        assert_eq!(chosen, vec![c.clone(), a.clone()], "nearest first, then the standby");
        let ids: Vec<ListenerId> = chosen.iter().map(|_| listener()).collect();
        for (id, (peer, addr)) in ids.iter().zip(chosen) {
            relays.reserving(*id, peer, addr);
        }
        assert_eq!(relays.missing(), 0);
        assert_eq!(relays.accepted(ids[1]).map(|r| (r.peer, r.standby)), Some((a.0, true)));
        assert!(relays.accepted(ids[1]).is_none(), "accepted once");
        assert_eq!(relays.accepted(ids[0]).map(|r| (r.peer, r.standby)), Some((c.0, false)));
        assert!(relays.due(t0 + RECHECK * 2).is_empty(), "nothing missing");
        assert!(relays.is_relay(&b.0) && !relays.is_relay(&PeerId::random()));
    }

    #[test]
    fn a_lost_reservation_is_sought_again_at_once_among_the_others() {
        let (a, b) = (relay(1), relay(2));
        let mut relays = Relays::default();
        let t0 = Instant::now();
        relays.set_candidates(vec![a.1.clone(), b.1.clone()], t0);
        let (la, lb) = (listener(), listener());
        relays.due(t0);
        relays.chosen(t0 + PROBE_LIMIT);
        relays.reserving(la, a.0, a.1.clone());
        relays.reserving(lb, b.0, b.1.clone());
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(relays.closed(la, t1).map(|r| r.peer), Some(a.0));
        assert_eq!(relays.reserved().len(), 1);
        assert_eq!(relays.missing(), 1);
        assert_eq!(relays.due(t1), vec![a.clone()], "only the relay without a reservation is probed");
        // It does not answer: nothing is chosen, and the next try waits.
        let none = relays.chosen(t1 + PROBE_LIMIT).expect("over");
        assert!(none.is_empty());
        assert!(relays.due(t1 + PROBE_LIMIT).is_empty());
        assert_eq!(relays.due(t1 + RECHECK).len(), 1);
    }

    #[test]
    fn relays_no_longer_listed_lose_their_reservation() {
        let (a, b) = (relay(1), relay(2));
        let mut relays = Relays::default();
        let t0 = Instant::now();
        relays.set_candidates(vec![a.1.clone()], t0);
        assert_eq!(relays.missing(), 1, "one candidate, one reservation");
        let la = listener();
        relays.reserving(la, a.0, a.1.clone());
        let gone = relays
            .set_candidates(vec![b.1.clone(), b.1.clone(), "/ip4/198.18.0.9/udp/1/quic-v1".parse().expect("addr")], t0);
        assert_eq!(gone.iter().map(|r| r.listener).collect::<Vec<_>>(), vec![la]);
        assert_eq!(relays.missing(), 1, "a duplicate and an address without /p2p are skipped");
    }
}
