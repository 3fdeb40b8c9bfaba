//! A hybrid logical clock: readings that follow wall-clock time, never go
//! backwards on one node, and always come after every reading the node has
//! seen from others. Group messages carry one, so every member orders a
//! group's conversation the same way: by (reading, sender, id).
//!
//! A reading is a `u64`: milliseconds since the Unix epoch in the high 48
//! bits, a counter in the low 16 for events within one millisecond (or
//! while this node's clock is behind one it has seen). A pure type: time
//! comes in as `now_ms`.

/// Bits of a reading kept for the counter.
const COUNTER_BITS: u32 = 16;

/// One node's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hlc {
    last: u64,
}

/// The first reading of the millisecond `ms` (since the Unix epoch): what
/// every node gives an event whose time someone else fixed.
pub fn reading_at(ms: u64) -> u64 {
    ms << COUNTER_BITS
}

/// The wall-clock part of a reading, in ms since the Unix epoch.
pub fn physical_ms(reading: u64) -> u64 {
    reading >> COUNTER_BITS
}

impl Hlc {
    /// A reading for an event now (a message sent): later than every
    /// reading before it.
    pub fn tick(&mut self, now_ms: u64) -> u64 {
        let wall = now_ms << COUNTER_BITS;
        self.last = if wall > self.last { wall } else { self.last + 1 };
        self.last
    }

    /// Takes in a reading seen from another node, so that the next tick
    /// comes after it.
    pub fn observe(&mut self, remote: u64) {
        self.last = self.last.max(remote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_follow_the_wall_clock_and_never_go_back() {
        let mut c = Hlc::default();
        let a = c.tick(1_000);
        let b = c.tick(1_000);
        let late = c.tick(999); // the wall clock stepped back
        assert!(a < b && b < late);
        assert_eq!(physical_ms(a), 1_000);
        assert_eq!(physical_ms(c.tick(2_000)), 2_000);
    }

    #[test]
    fn a_reading_seen_from_another_node_comes_before_the_next_one() {
        let (mut mine, mut theirs) = (Hlc::default(), Hlc::default());
        let remote = theirs.tick(5_000); // their clock runs ahead
        mine.observe(remote);
        let next = mine.tick(1_000);
        assert!(next > remote, "a reply is ordered after what it answers");
    }
}
