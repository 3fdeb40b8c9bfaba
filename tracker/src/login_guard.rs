//! Who may try a password now: the failed-login throttles per account and
//! per source network, and the networks each account has logged in from.
//!
//! A pure state machine (callers pass `now`), held by the tracker's shared
//! state behind a plain mutex.
//!
//! - Every attempt is counted when it is admitted, before its password is
//!   checked, so attempts in flight at the same time cannot all slip past
//!   a check that none of them has failed yet. A success hands its count
//!   back.
//! - Source addresses are keyed by network: an IPv4 address as it is, an
//!   IPv6 address by its /64 (one customer's allocation, which a single
//!   host can fill with as many addresses as it likes).
//! - The account lockout is soft: it slows guessing from networks that
//!   have never logged in to the account, and never stops a login from a
//!   network the account has used before. So a stranger who fails on
//!   purpose cannot lock a colleague out of their own office or home.

use crate::throttle::{Throttle, ThrottlePolicy};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Networks remembered per account at most, over all accounts.
const MAX_KNOWN: usize = 200_000;
/// A network unused this long for an account is forgotten.
const KNOWN_FOR: Duration = Duration::from_secs(90 * 86400);

/// The key a source address is throttled by: IPv4 as is (IPv4-mapped IPv6
/// too), IPv6 by its /64.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A password attempt let through; report its outcome with
/// [`LoginGuard::succeeded`] (a failure needs no report: it was counted).
#[derive(Debug)]
#[must_use]
pub struct Admission {
    account: String,
    network: IpAddr,
}

/// The throttles and the known networks.
#[derive(Debug)]
pub struct LoginGuard {
    accounts: Throttle<String>,
    networks: Throttle<IpAddr>,
    known: HashMap<(String, IpAddr), Instant>,
}

impl LoginGuard {
    /// An empty guard with the given policies.
    pub fn new(account: ThrottlePolicy, network: ThrottlePolicy) -> Self {
        Self { accounts: Throttle::new(account), networks: Throttle::new(network), known: HashMap::new() }
    }

    /// Admits a password attempt on `account` from `ip`, or says how long
    /// to wait. The attempt counts as a failure until it succeeds.
    pub fn admit(&mut self, account: &str, ip: IpAddr, now: Instant) -> Result<Admission, Duration> {
        let network = network_of(ip);
        self.networks.check(&network, now)?;
        let account = account.to_owned();
        let known = self.known.contains_key(&(account.clone(), network));
        if !known {
            self.accounts.check(&account, now)?;
        }
        self.networks.fail(&network, now);
        // Failures from known networks still count: they slow strangers.
        self.accounts.fail(&account, now);
        Ok(Admission { account, network })
    }

    /// Admits a guess at the current password from a logged-in session (a
    /// password change): the account's lockout applies whatever the
    /// network, since a session proves nothing about who is typing.
    pub fn admit_strict(&mut self, account: &str, ip: IpAddr, now: Instant) -> Result<Admission, Duration> {
        let network = network_of(ip);
        self.networks.check(&network, now)?;
        let account = account.to_owned();
        self.accounts.attempt(&account, now)?;
        self.networks.fail(&network, now);
        Ok(Admission { account, network })
    }

    /// Admits an attempt that is checked by network only (a session resume).
    pub fn admit_network(&mut self, ip: IpAddr, now: Instant) -> Result<Admission, Duration> {
        let network = network_of(ip);
        self.networks.attempt(&network, now)?;
        Ok(Admission { account: String::new(), network })
    }

    /// The admitted attempt succeeded: hand back its count, clear the
    /// account's failures and remember the network for the account.
    pub fn succeeded(&mut self, a: Admission, now: Instant) {
        self.networks.refund(&a.network);
        if a.account.is_empty() {
            return;
        }
        self.accounts.succeed(&a.account);
        if self.known.len() >= MAX_KNOWN {
            self.known.retain(|_, seen| now.saturating_duration_since(*seen) < KNOWN_FOR);
            if self.known.len() >= MAX_KNOWN {
                let mut ages: Vec<_> = self.known.iter().map(|(k, t)| (*t, k.clone())).collect();
                ages.sort_by_key(|(t, _)| *t);
                for (_, k) in ages.into_iter().take(MAX_KNOWN / 10) {
                    self.known.remove(&k);
                }
            }
        }
        self.known.insert((a.account, a.network), now);
    }

    /// Networks remembered, over all accounts.
    pub fn known_len(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> LoginGuard {
        let account = ThrottlePolicy { free_failures: 3, ..ThrottlePolicy::default() };
        let network = ThrottlePolicy { free_failures: 10, ..ThrottlePolicy::default() };
        LoginGuard::new(account, network)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        assert_eq!(network_of(ip("2001:db8:1:2:aaaa::1")), network_of(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(network_of(ip("2001:db8:1:2::1")), network_of(ip("2001:db8:1:3::1")));
        assert_eq!(network_of(ip("::ffff:198.18.0.7")), ip("198.18.0.7"));
        assert_ne!(network_of(ip("198.18.0.7")), network_of(ip("198.18.0.8")));
    }

    #[test]
    fn a_64_cannot_dodge_the_network_throttle_by_changing_addresses() {
        let mut g = guard();
        let now = Instant::now();
        let admitted =
            (0..100u16).filter(|i| g.admit(&format!("user{i}"), ip(&format!("2001:db8::{i:x}")), now).is_ok()).count();
        assert_eq!(admitted, 11, "ten free failures and the one that locks, for the whole /64");
    }

    #[test]
    fn parallel_attempts_are_counted_before_any_fails() {
        let mut g = guard();
        let now = Instant::now();
        let mut held = Vec::new();
        for i in 0..200u32 {
            if let Ok(a) = g.admit("alice", IpAddr::from([198, 18, (i / 250) as u8, (i % 250) as u8 + 1]), now) {
                held.push(a);
            }
        }
        assert_eq!(held.len(), 4, "three free failures and the one that locks");
    }

    #[test]
    fn known_networks_are_never_locked_out_by_the_account() {
        let mut g = guard();
        let now = Instant::now();
        let home = ip("198.18.5.5");
        let a = g.admit("alice", home, now).expect("first login");
        g.succeeded(a, now);
        // A stranger fails on purpose until the account is locked.
        for _ in 0..10 {
            let _ = g.admit("alice", ip("198.18.9.9"), now);
        }
        assert!(g.admit("alice", ip("198.18.7.7"), now).is_err(), "new networks are slowed");
        assert!(g.admit("alice", home, now).is_ok(), "alice's own network is not");
        assert!(g.admit_strict("alice", home, now).is_err(), "but guesses from a session are");
    }

    #[test]
    fn successes_do_not_build_up_on_a_shared_network() {
        let mut g = guard();
        let now = Instant::now();
        let office = ip("198.18.1.1");
        for i in 0..500 {
            let a = g.admit(&format!("user{i}"), office, now).expect("an office full of good logins");
            g.succeeded(a, now);
        }
        let resumes = g.admit_network(office, now).expect("resume");
        g.succeeded(resumes, now);
        assert_eq!(g.known_len(), 500);
    }
}
