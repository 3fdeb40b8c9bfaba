//! Requests kept for peers whose hello is under way, free of IO and clock.
//!
//! A request from a peer that has not passed the hello is kept only while
//! that hello is under way (ours in flight, or theirs awaiting the owner's
//! confirmation), and only within a small budget: a number of requests and
//! of bytes per peer, and in total. Beyond it a request is refused at once,
//! so strangers cannot make a node hold their requests in memory.

use libp2p::PeerId;
use std::time::Instant;

/// How much may be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBudget {
    /// Requests held per peer.
    pub per_peer: usize,
    /// Bytes (encoded) held per peer.
    pub bytes_per_peer: usize,
    /// Requests held in all.
    pub total: usize,
    /// Bytes (encoded) held in all.
    pub bytes_total: usize,
}

impl Default for HeldBudget {
    fn default() -> Self {
        Self { per_peer: 8, bytes_per_peer: 1024 * 1024, total: 64, bytes_total: 8 * 1024 * 1024 }
    }
}

/// Why a request cannot be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    /// The peer already has its share held.
    #[error("too many requests held for this peer")]
    Peer,
    /// Every peer's held requests together are at the limit.
    #[error("too many requests held from peers whose hello is under way")]
    Total,
}

/// One held request.
#[derive(Debug)]
struct Entry<T> {
    deadline: Instant,
    peer: PeerId,
    size: usize,
    item: T,
}

/// The held requests, oldest first.
#[derive(Debug)]
pub struct Held<T> {
    budget: HeldBudget,
    entries: Vec<Entry<T>>,
    bytes: usize,
}

impl<T> Held<T> {
    /// Nothing held, within `budget`.
    pub fn new(budget: HeldBudget) -> Self {
        Self { budget, entries: Vec::new(), bytes: 0 }
    }

    /// Holds `item` (`size` bytes) for `peer` until `deadline`, or gives
    /// it back with the reason when the budget does not allow it.
    pub fn hold(&mut self, peer: PeerId, size: usize, deadline: Instant, item: T) -> Result<(), (OverBudget, T)> {
        let (count, bytes) = self
            .entries
            .iter()
            .filter(|e| e.peer == peer)
            .fold((0usize, 0usize), |(n, b), e| (n + 1, b.saturating_add(e.size)));
        if count >= self.budget.per_peer || bytes.saturating_add(size) > self.budget.bytes_per_peer {
            return Err((OverBudget::Peer, item));
        }
        if self.entries.len() >= self.budget.total || self.bytes.saturating_add(size) > self.budget.bytes_total {
            return Err((OverBudget::Total, item));
        }
        self.bytes = self.bytes.saturating_add(size);
        self.entries.push(Entry { deadline, peer, size, item });
        Ok(())
    }

    /// Takes every request held for `peer`, oldest first.
    pub fn take(&mut self, peer: &PeerId) -> Vec<T> {
        let (mine, rest): (Vec<_>, Vec<_>) = self.entries.drain(..).partition(|e| e.peer == *peer);
        self.entries = rest;
        self.bytes = self.entries.iter().map(|e| e.size).sum();
        mine.into_iter().map(|e| e.item).collect()
    }

    /// Peers with a request held past its deadline at `now`.
    pub fn late(&self, now: Instant) -> Vec<PeerId> {
        let mut late: Vec<PeerId> = self.entries.iter().filter(|e| e.deadline <= now).map(|e| e.peer).collect();
        late.sort_unstable();
        late.dedup();
        late
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budget() -> HeldBudget {
        HeldBudget { per_peer: 2, bytes_per_peer: 100, total: 3, bytes_total: 150 }
    }

    #[test]
    fn a_peer_gets_its_share_and_no_more() {
        let mut held = Held::new(budget());
        let (a, b) = (PeerId::random(), PeerId::random());
        let t = Instant::now();
        assert!(held.hold(a, 10, t, 1).is_ok());
        assert!(held.hold(a, 10, t, 2).is_ok());
        assert_eq!(held.hold(a, 10, t, 3), Err((OverBudget::Peer, 3)));
        assert!(held.hold(b, 10, t, 4).is_ok(), "another peer still has room");
        assert_eq!(held.take(&a), vec![1, 2]);
        assert!(held.hold(a, 10, t, 5).is_ok(), "room again once taken");
    }

    #[test]
    fn bytes_count_as_well_as_requests() {
        let mut held = Held::new(budget());
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let t = Instant::now();
        assert_eq!(held.hold(a, 101, t, 1), Err((OverBudget::Peer, 1)), "larger than a peer's share");
        assert!(held.hold(a, 90, t, 2).is_ok());
        assert_eq!(held.hold(a, 20, t, 3), Err((OverBudget::Peer, 3)));
        assert!(held.hold(b, 50, t, 4).is_ok());
        assert_eq!(held.hold(c, 20, t, 5), Err((OverBudget::Total, 5)), "150 bytes in all");
        held.take(&a);
        assert!(held.hold(c, 20, t, 6).is_ok());
    }

    #[test]
    fn the_total_is_shared_by_every_peer() {
        let mut held = Held::new(budget());
        let t = Instant::now();
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for (n, p) in peers.iter().enumerate() {
            assert!(held.hold(*p, 1, t, n).is_ok());
        }
        assert_eq!(held.hold(PeerId::random(), 1, t, 9), Err((OverBudget::Total, 9)));
        assert_eq!(held.take(&peers[1]), vec![1]);
        assert!(held.hold(PeerId::random(), 1, t, 10).is_ok(), "room again once taken");
    }

    #[test]
    fn late_peers_are_named_once() {
        let mut held = Held::new(budget());
        let (a, b) = (PeerId::random(), PeerId::random());
        let t = Instant::now();
        assert!(held.hold(a, 1, t, 1).is_ok());
        assert!(held.hold(b, 1, t + Duration::from_secs(5), 2).is_ok());
        assert!(held.hold(a, 1, t, 3).is_ok());
        assert_eq!(held.late(t), vec![a]);
        assert_eq!(held.late(t + Duration::from_secs(5)).len(), 2);
        assert!(held.late(t - Duration::from_secs(1)).is_empty());
    }
}
