//! Whether to trust a peer's device when the tracker cannot say.
//!
//! A peer's certificate proves it was valid when issued; only the tracker
//! knows whether it has been revoked since (a logout, a password reset, a
//! disabled account, a revoked device). The daemon asks the tracker for
//! every new peer. When the tracker cannot answer (unreachable, timed
//! out, not connected), a device it confirmed within the grace period is
//! still accepted, and any other is refused: doubt means no, for a short
//! while at most, never "yes forever".
//!
//! A pure table: callers pass `now`. Bounded: when full, the oldest
//! confirmations are forgotten.

use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a confirmation stands in for the tracker's answer.
pub const GRACE: Duration = Duration::from_secs(10 * 60);
/// Confirmations remembered at most.
const MAX_REMEMBERED: usize = 4096;

/// What the tracker said of a peer's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Valid: its user is enabled and it holds a current certificate.
    Valid,
    /// Revoked, signed out, or its user is gone or disabled.
    Invalid,
    /// No answer (no connection, a time-out, a tracker failure).
    Unknown,
}

/// How long a revocation is remembered, so the same one pushed twice (by
/// the tracker that made it and again by its poll of the store) is acted
/// on once.
const REVOCATION_ECHO: Duration = Duration::from_secs(5);

/// Recent confirmations and revocations.
#[derive(Debug)]
pub struct Trust {
    grace: Duration,
    confirmed: HashMap<PeerId, Instant>,
    revoked: HashMap<PeerId, Instant>,
}

impl Default for Trust {
    fn default() -> Self {
        Self::new(GRACE)
    }
}

impl Trust {
    /// An empty table whose confirmations stand for `grace`.
    pub fn new(grace: Duration) -> Self {
        Self { grace, confirmed: HashMap::new(), revoked: HashMap::new() }
    }

    /// Records the tracker's answer for `peer` and decides whether to
    /// accept it.
    pub fn decide(&mut self, peer: PeerId, answer: Answer, now: Instant) -> bool {
        match answer {
            Answer::Valid => {
                if self.confirmed.len() >= MAX_REMEMBERED && !self.confirmed.contains_key(&peer) {
                    let grace = self.grace;
                    self.confirmed.retain(|_, at| now.saturating_duration_since(*at) < grace);
                    if self.confirmed.len() >= MAX_REMEMBERED
                        && let Some(oldest) = self.confirmed.iter().min_by_key(|(_, at)| **at).map(|(p, _)| *p)
                    {
                        self.confirmed.remove(&oldest);
                    }
                }
                self.confirmed.insert(peer, now);
                // Valid again: a later revocation is news.
                self.revoked.remove(&peer);
                true
            }
            Answer::Invalid => {
                self.confirmed.remove(&peer);
                false
            }
            Answer::Unknown => {
                self.confirmed.get(&peer).is_some_and(|at| now.saturating_duration_since(*at) < self.grace)
            }
        }
    }

    /// Forgets `peer` (its device was revoked). Returns `false` when the
    /// same revocation was taken a moment ago (a repeat to ignore).
    pub fn revoke(&mut self, peer: &PeerId, now: Instant) -> bool {
        self.confirmed.remove(peer);
        self.revoked.retain(|_, at| now.saturating_duration_since(*at) < REVOCATION_ECHO);
        self.revoked.insert(*peer, now).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubt_is_no_unless_recently_confirmed() {
        let mut t = Trust::new(Duration::from_secs(60));
        let (a, b) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        assert!(!t.decide(a, Answer::Unknown, now), "never confirmed: refused");
        assert!(t.decide(a, Answer::Valid, now));
        assert!(t.decide(a, Answer::Unknown, now + Duration::from_secs(59)), "within the grace");
        assert!(!t.decide(a, Answer::Unknown, now + Duration::from_secs(61)), "after the grace");
        assert!(t.decide(b, Answer::Valid, now));
        assert!(!t.decide(b, Answer::Invalid, now));
        assert!(!t.decide(b, Answer::Unknown, now), "a refusal ends the grace");
        t.decide(a, Answer::Valid, now);
        assert!(t.revoke(&a, now));
        assert!(!t.decide(a, Answer::Unknown, now), "a revocation ends the grace");
        assert!(!t.revoke(&a, now + Duration::from_secs(1)), "the same revocation again is a repeat");
        t.decide(a, Answer::Valid, now + Duration::from_secs(2));
        assert!(t.revoke(&a, now + Duration::from_secs(3)), "after a new confirmation it is news");
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut t = Trust::default();
        let now = Instant::now();
        for _ in 0..MAX_REMEMBERED + 100 {
            t.decide(PeerId::random(), Answer::Valid, now);
        }
        assert!(t.confirmed.len() <= MAX_REMEMBERED);
    }
}
