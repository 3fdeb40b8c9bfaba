//! The receiving side's plan of which chunks to ask for, free of IO.
//!
//! A [`Fetch`] keeps up to `window` chunk requests in flight, asks for the
//! missing chunks in order, asks again at once for a chunk that failed
//! verification, and after a dropped connection asks only for what was in
//! flight or never asked: at most one window of chunks is sent twice.

use super::manifest::Have;
use std::collections::BTreeSet;

/// What became of a received chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Verified and new: store it.
    Store,
    /// Failed verification: it is asked for again.
    Refetch,
    /// Not asked for, or already stored: ignore it.
    Ignore,
}

/// The receiver's request plan for one file.
#[derive(Debug, Clone)]
pub struct Fetch {
    have: Have,
    inflight: BTreeSet<u64>,
    again: BTreeSet<u64>,
    window: usize,
    refetched: u64,
}

impl Fetch {
    /// Plans the chunks `have` lacks, `window` at a time (at least one).
    pub fn new(have: Have, window: usize) -> Fetch {
        Fetch { have, inflight: BTreeSet::new(), again: BTreeSet::new(), window: window.max(1), refetched: 0 }
    }

    /// Chunks to ask for now, filling the window: refetches first, then
    /// missing chunks in order.
    pub fn next_requests(&mut self) -> Vec<u64> {
        let room = self.window.saturating_sub(self.inflight.len());
        let mut picked: Vec<u64> = self.again.iter().copied().take(room).collect();
        for i in &picked {
            self.again.remove(i);
        }
        if picked.len() < room {
            let more: Vec<u64> = self
                .have
                .missing()
                .filter(|i| !self.inflight.contains(i) && !picked.contains(i))
                .take(room - picked.len())
                .collect();
            picked.extend(more);
        }
        self.inflight.extend(picked.iter().copied());
        picked
    }

    /// Records chunk `index` arriving, `verified` or not.
    pub fn received(&mut self, index: u64, verified: bool) -> Received {
        if !self.inflight.remove(&index) || self.have.contains(index) {
            return Received::Ignore;
        }
        if verified {
            self.have.insert(index);
            Received::Store
        } else {
            self.refetched += 1;
            self.again.insert(index);
            Received::Refetch
        }
    }

    /// Whether chunk `index` is asked for and not yet recorded.
    pub fn expects(&self, index: u64) -> bool {
        self.inflight.contains(&index)
    }

    /// The connection dropped: what was in flight is asked for again.
    pub fn lost(&mut self) {
        self.inflight.clear();
    }

    /// Whether every chunk is stored.
    pub fn is_done(&self) -> bool {
        self.have.is_complete()
    }

    /// The verified chunks.
    pub fn have(&self) -> &Have {
        &self.have
    }

    /// How many chunks failed verification and were asked for again.
    pub fn refetched(&self) -> u64 {
        self.refetched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_fills_in_order_and_refills_as_chunks_arrive() {
        let mut f = Fetch::new(Have::none(10), 4);
        assert_eq!(f.next_requests(), vec![0, 1, 2, 3]);
        assert_eq!(f.next_requests(), Vec::<u64>::new());
        assert_eq!(f.received(1, true), Received::Store);
        assert_eq!(f.next_requests(), vec![4]);
        assert_eq!(f.received(1, true), Received::Ignore, "a duplicate is ignored");
        assert_eq!(f.received(9, true), Received::Ignore, "so is a chunk never asked for");
    }

    #[test]
    fn a_bad_chunk_is_asked_for_again_first() {
        let mut f = Fetch::new(Have::none(6), 2);
        assert_eq!(f.next_requests(), vec![0, 1]);
        assert_eq!(f.received(0, false), Received::Refetch);
        assert_eq!(f.next_requests(), vec![0]);
        assert_eq!(f.received(0, true), Received::Store);
        assert_eq!(f.refetched(), 1);
    }

    #[test]
    fn resuming_asks_only_for_what_is_missing() {
        let mut have = Have::none(8);
        for i in [0, 1, 2, 5] {
            have.insert(i);
        }
        let mut f = Fetch::new(have, 16);
        assert_eq!(f.next_requests(), vec![3, 4, 6, 7]);
    }

    #[test]
    fn a_dropped_connection_resends_at_most_one_window() {
        let (count, window) = (100u64, 8usize);
        let mut f = Fetch::new(Have::none(count), window);
        let mut asked = vec![0u32; count as usize];
        let mut step = 0;
        while !f.is_done() {
            for i in f.next_requests() {
                asked[i as usize] += 1;
            }
            // Half-way through, the connection drops with a window in flight.
            if step == 6 {
                f.lost();
                step += 1;
                continue;
            }
            let first = f.inflight.iter().next().copied();
            if let Some(i) = first {
                f.received(i, true);
            }
            step += 1;
        }
        let twice = asked.iter().filter(|n| **n > 1).count();
        assert!(twice <= window, "{twice} chunks were asked for twice");
        assert!(asked.iter().all(|n| *n >= 1));
    }
}
