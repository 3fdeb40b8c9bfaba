//! Connections that have not logged in yet, counted per source network.
//!
//! Anyone who can reach the tracker's port can open a QUIC connection. One
//! that has not logged in costs memory and a task, so each network (an
//! IPv4 address, an IPv6 /64; see `login_guard.rs`) may hold only so many
//! at a time, and each must log in within a deadline (see
//! `connection.rs`). A connection's [`Slot`] is given back when it logs
//! in or ends.

use crate::login_guard::network_of;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Not-yet-logged-in connections per network.
#[derive(Debug)]
pub struct Strangers {
    per_network: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One not-yet-logged-in connection's place; dropping it gives it back.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<Strangers>,
    network: IpAddr,
}

impl Strangers {
    /// At most `per_network` connections waiting to log in per network.
    pub fn new(per_network: usize) -> Arc<Self> {
        Arc::new(Self { per_network: per_network.max(1), counts: Mutex::new(HashMap::new()) })
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection from `ip`, or `None` when its network
    /// already holds the most.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let network = network_of(ip);
        let mut counts = self.counts();
        let n = counts.entry(network).or_insert(0);
        if *n >= self.per_network {
            return None;
        }
        *n += 1;
        Some(Slot { owner: self.clone(), network })
    }

    /// Connections waiting to log in from `ip`'s network.
    pub fn waiting(&self, ip: IpAddr) -> usize {
        self.counts().get(&network_of(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts();
        if let Some(n) = counts.get_mut(&self.network) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.network);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_network_holds_at_most_its_share_and_slots_come_back() {
        let s = Strangers::new(2);
        let a: IpAddr = "198.18.0.1".parse().expect("ip");
        let b: IpAddr = "198.18.0.2".parse().expect("ip");
        let first = s.admit(a).expect("one");
        let _second = s.admit(a).expect("two");
        assert!(s.admit(a).is_none(), "a third from the same address waits for a place");
        assert!(s.admit(b).is_some(), "other addresses are unaffected");
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        let _x = s.admit(v6).expect("one");
        let _y = s.admit("2001:db8::ffff".parse().expect("ip")).expect("two");
        assert!(s.admit("2001:db8::abcd".parse().expect("ip")).is_none(), "one /64, one share");
        drop(first);
        assert_eq!(s.waiting(a), 1);
        assert!(s.admit(a).is_some(), "a place given back is taken again");
    }
}
