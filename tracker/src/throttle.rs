//! Failed-login throttling, per account and per source address.
//!
//! A pure state machine: callers pass `now` in. Each key (an account name or
//! an IP address) may fail [`ThrottlePolicy::free_failures`] times in a row
//! without penalty; every further failure doubles a lockout delay, from
//! `base_delay` up to `max_delay`. A success clears the key. The table is
//! bounded: when full, the entries idle longest are forgotten first.
//!
//! An attempt is counted when it starts ([`Throttle::attempt`]), not when
//! it is found wrong: attempts in flight at the same time cannot all slip
//! through a check made before any of them failed. A success hands its
//! count back ([`Throttle::refund`]) or clears the key.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How hard throttling bites.
#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// Consecutive failures allowed before delays start.
    pub free_failures: u32,
    /// Delay after the first failure beyond the free ones.
    pub base_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Failures older than this are forgotten.
    pub forget_after: Duration,
    /// Most keys tracked at once.
    pub max_entries: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            free_failures: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            forget_after: Duration::from_secs(3600),
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Instant,
}

/// Failure counts and lockouts for one kind of key.
#[derive(Debug)]
pub struct Throttle<K> {
    policy: ThrottlePolicy,
    entries: HashMap<K, Entry>,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    /// An empty table with the given policy.
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self { policy, entries: HashMap::new() }
    }

    /// `Err(wait)` if `key` is locked out at `now`.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.entries.get(key) {
            Some(e) if e.locked_until > now => Err(e.locked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt and returns the lockout it causes, if any.
    pub fn fail(&mut self, key: &K, now: Instant) -> Option<Duration> {
        if !self.entries.contains_key(key) && self.entries.len() >= self.policy.max_entries {
            self.evict(now);
        }
        let policy = &self.policy;
        let e = self.entries.entry(key.clone()).or_insert(Entry { failures: 0, last_failure: now, locked_until: now });
        if now.saturating_duration_since(e.last_failure) > policy.forget_after {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures <= policy.free_failures {
            return None;
        }
        let doublings = (e.failures - policy.free_failures - 1).min(30);
        let delay = policy.base_delay.saturating_mul(1u32 << doublings).min(policy.max_delay);
        e.locked_until = now + delay;
        Some(delay)
    }

    /// Starts an attempt: `Err(wait)` if `key` is locked out at `now`,
    /// otherwise the attempt is counted as a failure at once (and may lock
    /// the key for the attempts after it). A success undoes the count with
    /// [`Throttle::refund`] or [`Throttle::succeed`].
    pub fn attempt(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        self.check(key, now)?;
        self.fail(key, now);
        Ok(())
    }

    /// Hands back the failure counted by a successful [`Throttle::attempt`],
    /// lifting the lockout if the key is back within its free failures.
    pub fn refund(&mut self, key: &K) {
        let free = self.policy.free_failures;
        if let Some(e) = self.entries.get_mut(key) {
            e.failures = e.failures.saturating_sub(1);
            if e.failures <= free {
                e.locked_until = e.last_failure.min(e.locked_until);
            }
            if e.failures == 0 {
                self.entries.remove(key);
            }
        }
    }

    /// Clears `key` after a successful attempt.
    pub fn succeed(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict(&mut self, now: Instant) {
        let forget = self.policy.forget_after;
        self.entries.retain(|_, e| now.saturating_duration_since(e.last_failure) <= forget && e.locked_until > now);
        if self.entries.len() >= self.policy.max_entries {
            // Still full of live lockouts: drop the oldest tenth.
            let mut ages: Vec<(Instant, K)> = self.entries.iter().map(|(k, e)| (e.last_failure, k.clone())).collect();
            ages.sort_by_key(|(t, _)| *t);
            for (_, k) in ages.into_iter().take(self.policy.max_entries / 10 + 1) {
                self.entries.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy { max_entries: 4, ..ThrottlePolicy::default() }
    }

    #[test]
    fn free_failures_then_doubling_delays_capped() {
        let mut t = Throttle::new(policy());
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.fail(&"alice", now), None);
            assert!(t.check(&"alice", now).is_ok());
        }
        assert_eq!(t.fail(&"alice", now), Some(Duration::from_secs(1)));
        assert_eq!(t.check(&"alice", now), Err(Duration::from_secs(1)));
        assert!(t.check(&"alice", now + Duration::from_secs(1)).is_ok());
        assert_eq!(t.fail(&"alice", now), Some(Duration::from_secs(2)));
        assert_eq!(t.fail(&"alice", now), Some(Duration::from_secs(4)));
        for _ in 0..40 {
            t.fail(&"alice", now);
        }
        assert_eq!(t.check(&"alice", now), Err(Duration::from_secs(300)));
        assert!(t.check(&"bob", now).is_ok(), "other keys are unaffected");
    }

    #[test]
    fn success_clears_and_old_failures_are_forgotten() {
        let mut t = Throttle::new(policy());
        let now = Instant::now();
        for _ in 0..6 {
            t.fail(&"a", now);
        }
        t.succeed(&"a");
        assert!(t.check(&"a", now).is_ok());
        for _ in 0..5 {
            t.fail(&"b", now);
        }
        let later = now + Duration::from_secs(3601);
        assert_eq!(t.fail(&"b", later), None, "the hour-old streak was forgotten");
    }

    #[test]
    fn attempts_count_before_their_outcome() {
        let mut t = Throttle::new(policy());
        let now = Instant::now();
        // Parallel attempts: none has failed yet, but each is counted.
        let admitted = (0..50).filter(|_| t.attempt(&"alice", now).is_ok()).count();
        assert_eq!(admitted, 6, "the free failures and the one that locks");
        assert!(t.check(&"alice", now).is_err());
    }

    #[test]
    fn refund_hands_back_a_successful_attempt() {
        let mut t = Throttle::new(policy());
        let now = Instant::now();
        for _ in 0..100 {
            t.attempt(&"office", now).expect("successes never lock");
            t.refund(&"office");
        }
        assert!(t.is_empty());
        for _ in 0..6 {
            let _ = t.attempt(&"office", now);
        }
        assert!(t.check(&"office", now).is_err());
        t.refund(&"office");
        assert!(t.check(&"office", now).is_ok(), "back within the free failures");
    }

    #[test]
    fn table_stays_bounded() {
        let mut t = Throttle::new(policy());
        let now = Instant::now();
        for i in 0..100 {
            for _ in 0..6 {
                t.fail(&i, now);
            }
            assert!(t.len() <= 4);
        }
    }
}
