//! When a failed plugin is started again, and when it is given up on: a
//! pure state machine over the times of its failures.
//!
//! A plugin that crashes, hangs past its timeout or writes garbage is
//! stopped and started again after a backoff that doubles with each recent
//! failure ([`BASE_BACKOFF`], [`MAX_BACKOFF`]). The [`MAX_FAILURES`]th
//! failure within [`WINDOW`] disables it until it is installed again or
//! the node restarts: a plugin that fails that often will not mend itself.

use std::collections::VecDeque;
use std::time::Duration;

/// The wait before the first restart.
pub const BASE_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait before a restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Failures within [`WINDOW`] that disable a plugin.
pub const MAX_FAILURES: usize = 3;
/// How far back failures count.
pub const WINDOW: Duration = Duration::from_secs(300);

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Start it again after this long.
    RestartAfter(Duration),
    /// Stop trying.
    Disable,
}

/// One plugin's recent failures.
#[derive(Debug, Default, Clone)]
pub struct Supervision {
    failures: VecDeque<Duration>,
}

impl Supervision {
    /// Records a failure at `now` (time since any fixed start) and says what follows.
    pub fn failed(&mut self, now: Duration) -> AfterFailure {
        while self.failures.front().is_some_and(|t| now.saturating_sub(*t) >= WINDOW) {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        let n = self.failures.len();
        if n >= MAX_FAILURES {
            return AfterFailure::Disable;
        }
        let doubled = BASE_BACKOFF.saturating_mul(1 << (n - 1).min(16));
        AfterFailure::RestartAfter(doubled.min(MAX_BACKOFF))
    }

    /// Failures that still count.
    pub fn recent(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backs_off_then_disables() {
        let mut s = Supervision::default();
        assert_eq!(s.failed(S), AfterFailure::RestartAfter(BASE_BACKOFF));
        assert_eq!(s.failed(2 * S), AfterFailure::RestartAfter(2 * BASE_BACKOFF));
        assert_eq!(s.failed(3 * S), AfterFailure::Disable);
    }

    #[test]
    fn old_failures_are_forgiven() {
        let mut s = Supervision::default();
        s.failed(S);
        s.failed(2 * S);
        assert_eq!(s.failed(2 * S + WINDOW), AfterFailure::RestartAfter(BASE_BACKOFF));
        assert_eq!(s.recent(), 1);
    }
}
