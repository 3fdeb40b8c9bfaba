//! Who is online, and who wants to know.
//!
//! [`PresenceBook`] is a pure state machine: connections come and go, set
//! their status and subscribe; every call returns the [`Push`]es the async
//! layer must deliver. A device counts towards its user's presence only once
//! it has set a status, so one-shot CLI commands never make a user flicker
//! online. A user's combined status is the one most recently set by any of
//! their visible devices; when the last one leaves, the user is offline and
//! `last_seen` is the time it left.
//!
//! Devices on other trackers of the organisation count too: each tracker
//! publishes its own devices' part of a user's presence ([`Remote`], see
//! [`PresenceBook::local_part`]), and the others fold it in
//! ([`PresenceBook::set_remote`]) until that tracker changes it or is gone
//! ([`PresenceBook::drop_tracker`]).

use skein_proto::control::{PresenceEntry, PresenceStatus, Subscription};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Identifies one client connection within a tracker.
pub type ConnId = u64;

/// A presence change to deliver to one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The subscribed connection.
    pub to: ConnId,
    /// The user's new presence.
    pub entry: PresenceEntry,
}

/// One user's presence on another tracker: its devices there, and the
/// status most recently set on one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The status (never offline: a tracker with no visible device of the
    /// user publishes nothing).
    pub status: PresenceStatus,
    /// Its note.
    pub note: Option<String>,
    /// Visible devices there.
    pub devices: u16,
    /// When the status was set, ms since the Unix epoch.
    pub at_ms: u64,
}

/// A status a device set: what, its note, when, and its place in the
/// order this book saw them (which orders this tracker's devices; the
/// time orders them against other trackers').
#[derive(Debug, Clone)]
struct Set {
    status: PresenceStatus,
    note: Option<String>,
    at_ms: u64,
    seq: u64,
}

#[derive(Debug)]
struct Conn {
    user: String,
    /// `None` while invisible (not yet set, or set to offline).
    status: Option<Set>,
    subscription: Option<Subscription>,
}

/// Presence state of every connected device and every subscription.
#[derive(Debug, Default)]
pub struct PresenceBook {
    conns: HashMap<ConnId, Conn>,
    by_user: HashMap<String, HashSet<ConnId>>,
    subs_all: HashSet<ConnId>,
    subs_user: HashMap<String, HashSet<ConnId>>,
    last_seen: HashMap<String, u64>,
    seq: u64,
    /// Users' presence on other trackers, by user, then tracker.
    remote: HashMap<String, BTreeMap<String, Remote>>,
}

impl PresenceBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a new authenticated connection for `user`, invisible.
    pub fn connect(&mut self, conn: ConnId, user: &str) {
        self.conns.insert(conn, Conn { user: user.to_owned(), status: None, subscription: None });
        self.by_user.entry(user.to_owned()).or_default().insert(conn);
    }

    /// Sets a connection's status; `Offline` makes it invisible.
    pub fn set_status(&mut self, conn: ConnId, status: PresenceStatus, note: Option<String>, now_ms: u64) -> Vec<Push> {
        self.seq += 1;
        let seq = self.seq;
        let Some(c) = self.conns.get_mut(&conn) else { return Vec::new() };
        let user = c.user.clone();
        let before = self.entry(&user);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.status = (status != PresenceStatus::Offline).then_some(Set { status, note, at_ms: now_ms, seq });
        }
        if before.status != PresenceStatus::Offline {
            self.last_seen.insert(user.clone(), now_ms);
        }
        self.changed(&user, before, now_ms)
    }

    /// Removes a connection (logout, close or timeout).
    pub fn disconnect(&mut self, conn: ConnId, now_ms: u64) -> Vec<Push> {
        let Some(c) = self.conns.get(&conn) else { return Vec::new() };
        let user = c.user.clone();
        let before = self.entry(&user);
        self.unsubscribe(conn);
        self.conns.remove(&conn);
        if let Some(set) = self.by_user.get_mut(&user) {
            set.remove(&conn);
            if set.is_empty() {
                self.by_user.remove(&user);
            }
        }
        if before.status != PresenceStatus::Offline {
            self.last_seen.insert(user.clone(), now_ms);
        }
        self.changed(&user, before, now_ms)
    }

    /// Subscribes a connection (replacing any earlier subscription) and
    /// returns the users it now follows that the book knows about.
    pub fn subscribe(&mut self, conn: ConnId, sub: Subscription) -> Vec<PresenceEntry> {
        if !self.conns.contains_key(&conn) {
            return Vec::new();
        }
        self.unsubscribe(conn);
        let snapshot = match &sub {
            Subscription::All => {
                self.subs_all.insert(conn);
                let users: BTreeMap<&String, ()> = self
                    .by_user
                    .keys()
                    .chain(self.last_seen.keys())
                    .chain(self.remote.keys())
                    .map(|u| (u, ()))
                    .collect();
                users.keys().map(|u| self.entry(u)).collect()
            }
            Subscription::Users(users) => {
                for u in users {
                    self.subs_user.entry(u.clone()).or_default().insert(conn);
                }
                users.iter().map(|u| self.entry(u)).collect()
            }
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.subscription = Some(sub);
        }
        snapshot
    }

    /// Ends a connection's subscription.
    pub fn unsubscribe(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        match c.subscription.take() {
            Some(Subscription::All) => {
                self.subs_all.remove(&conn);
            }
            Some(Subscription::Users(users)) => {
                for u in users {
                    if let Some(set) = self.subs_user.get_mut(&u) {
                        set.remove(&conn);
                        if set.is_empty() {
                            self.subs_user.remove(&u);
                        }
                    }
                }
            }
            None => {}
        }
    }

    /// The user's current combined presence. `last_seen_ms` is 0 if the
    /// book has not seen the user since it started; callers fill it from
    /// the store.
    pub fn entry(&self, user: &str) -> PresenceEntry {
        let mine = self.local_part(user);
        let theirs = self.remote.get(user).into_iter().flat_map(|m| m.values());
        let devices = theirs.clone().fold(mine.as_ref().map_or(0, |m| m.devices), |n, r| n.saturating_add(r.devices));
        let mut latest = mine.as_ref();
        for r in theirs {
            if latest.is_none_or(|l| r.at_ms > l.at_ms) {
                latest = Some(r);
            }
        }
        PresenceEntry {
            user: user.to_owned(),
            status: latest.map_or(PresenceStatus::Offline, |l| l.status),
            note: latest.and_then(|l| l.note.clone()),
            last_seen_ms: self.last_seen.get(user).copied().unwrap_or(0),
            devices,
        }
    }

    fn local_sets(&self, user: &str) -> impl Iterator<Item = &Set> {
        self.by_user.get(user).into_iter().flatten().filter_map(|id| self.conns.get(id).and_then(|c| c.status.as_ref()))
    }

    /// This tracker's part of `user`'s presence, as other trackers fold it
    /// in: `None` while no device of theirs here is visible.
    pub fn local_part(&self, user: &str) -> Option<Remote> {
        let mut devices = 0u16;
        let mut latest: Option<&Set> = None;
        for s in self.local_sets(user) {
            devices = devices.saturating_add(1);
            if latest.is_none_or(|l| s.seq > l.seq) {
                latest = Some(s);
            }
        }
        latest.map(|l| Remote { status: l.status, note: l.note.clone(), devices, at_ms: l.at_ms })
    }

    /// Folds in `user`'s presence on `tracker` (`None`: no visible device
    /// there any more).
    pub fn set_remote(&mut self, tracker: &str, user: &str, part: Option<Remote>, now_ms: u64) -> Vec<Push> {
        let before = self.entry(user);
        match part.filter(|p| p.status != PresenceStatus::Offline) {
            Some(p) => {
                self.remote.entry(user.to_owned()).or_default().insert(tracker.to_owned(), p);
            }
            None => {
                if let Some(m) = self.remote.get_mut(user) {
                    m.remove(tracker);
                    if m.is_empty() {
                        self.remote.remove(user);
                    }
                }
            }
        }
        if before.status != PresenceStatus::Offline {
            self.last_seen.insert(user.to_owned(), now_ms);
        }
        self.changed(user, before, now_ms)
    }

    /// Forgets everything another tracker said (it is gone).
    pub fn drop_tracker(&mut self, tracker: &str, now_ms: u64) -> Vec<Push> {
        let users: Vec<String> =
            self.remote.iter().filter(|(_, m)| m.contains_key(tracker)).map(|(u, _)| u.clone()).collect();
        users.iter().flat_map(|u| self.set_remote(tracker, u, None, now_ms)).collect()
    }

    /// What other trackers said, as (tracker, user) pairs.
    pub fn remote_parts(&self) -> Vec<(String, String)> {
        self.remote.iter().flat_map(|(u, m)| m.keys().map(move |t| (t.clone(), u.clone()))).collect()
    }

    /// Connections of `user`, visible or not.
    pub fn connections_of(&self, user: &str) -> Vec<ConnId> {
        self.by_user.get(user).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    /// The user of a connection.
    pub fn user_of(&self, conn: ConnId) -> Option<&str> {
        self.conns.get(&conn).map(|c| c.user.as_str())
    }

    /// Whether `conn` is visible (has set a status other than offline).
    pub fn is_visible(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.status.is_some())
    }

    fn changed(&mut self, user: &str, before: PresenceEntry, now_ms: u64) -> Vec<Push> {
        let mut after = self.entry(user);
        if after.status != PresenceStatus::Offline {
            after.last_seen_ms = now_ms;
            self.last_seen.insert(user.to_owned(), now_ms);
        }
        if after.status == before.status && after.note == before.note && after.devices == before.devices {
            return Vec::new();
        }
        let mut targets: Vec<ConnId> = self.subs_all.iter().copied().collect();
        if let Some(set) = self.subs_user.get(user) {
            targets.extend(set.iter().copied().filter(|c| !self.subs_all.contains(c)));
        }
        targets.sort_unstable();
        targets.into_iter().map(|to| Push { to, entry: after.clone() }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PresenceStatus::*;

    fn statuses(pushes: &[Push]) -> Vec<(ConnId, &str, PresenceStatus)> {
        pushes.iter().map(|p| (p.to, p.entry.user.as_str(), p.entry.status)).collect()
    }

    #[test]
    fn connections_are_invisible_until_they_set_a_status() {
        let mut b = PresenceBook::new();
        b.connect(1, "alice");
        b.subscribe(1, Subscription::All);
        b.connect(2, "bob");
        assert_eq!(b.entry("bob").status, Offline);
        let p = b.set_status(2, Online, None, 100);
        assert_eq!(statuses(&p), vec![(1, "bob", Online)]);
        assert_eq!(p[0].entry.devices, 1);
    }

    #[test]
    fn disconnect_marks_offline_with_last_seen_and_pushes() {
        let mut b = PresenceBook::new();
        b.connect(1, "alice");
        b.subscribe(1, Subscription::Users(vec!["bob".into()]));
        b.connect(2, "bob");
        b.set_status(2, Online, None, 100);
        let p = b.disconnect(2, 500);
        assert_eq!(statuses(&p), vec![(1, "bob", Offline)]);
        assert_eq!(p[0].entry.last_seen_ms, 500);
        assert_eq!(b.entry("bob").last_seen_ms, 500);
        assert!(b.connections_of("bob").is_empty());
    }

    #[test]
    fn latest_status_wins_across_devices_and_falls_back() {
        let mut b = PresenceBook::new();
        b.connect(1, "bob");
        b.connect(2, "bob");
        b.set_status(1, Online, None, 1);
        b.set_status(2, Busy, Some("meeting".into()), 2);
        let e = b.entry("bob");
        assert_eq!((e.status, e.note.as_deref(), e.devices), (Busy, Some("meeting"), 2));
        b.disconnect(2, 3);
        assert_eq!(b.entry("bob").status, Online);
        b.set_status(1, Offline, None, 4);
        assert_eq!(b.entry("bob").status, Offline, "offline means invisible");
    }

    #[test]
    fn unchanged_status_pushes_nothing_and_unsubscribe_stops_pushes() {
        let mut b = PresenceBook::new();
        b.connect(1, "alice");
        b.subscribe(1, Subscription::All);
        b.connect(2, "bob");
        assert_eq!(b.set_status(2, Away, None, 1).len(), 1);
        assert!(b.set_status(2, Away, None, 2).is_empty());
        b.unsubscribe(1);
        assert!(b.set_status(2, Online, None, 3).is_empty());
    }

    #[test]
    fn snapshot_lists_known_users_and_named_users() {
        let mut b = PresenceBook::new();
        b.connect(2, "bob");
        b.set_status(2, Online, None, 1);
        b.connect(3, "carol");
        b.set_status(3, Online, None, 1);
        b.disconnect(3, 9);
        b.connect(1, "alice");
        let all = b.subscribe(1, Subscription::All);
        let names: Vec<_> = all.iter().map(|e| (e.user.as_str(), e.status)).collect();
        // Alice is connected but invisible: listed, as offline.
        assert_eq!(names, vec![("alice", Offline), ("bob", Online), ("carol", Offline)]);
        let some = b.subscribe(1, Subscription::Users(vec!["dave".into()]));
        assert_eq!(some[0].status, Offline);
        assert!(b.set_status(2, Busy, None, 2).is_empty(), "resubscribing replaced the All subscription");
    }

    #[test]
    fn subscriber_in_both_sets_gets_one_push_and_gone_conns_get_none() {
        let mut b = PresenceBook::new();
        b.connect(1, "alice");
        b.subscribe(1, Subscription::Users(vec!["bob".into()]));
        b.connect(4, "erin");
        b.subscribe(4, Subscription::All);
        b.connect(2, "bob");
        let p = b.set_status(2, Online, None, 1);
        assert_eq!(statuses(&p), vec![(1, "bob", Online), (4, "bob", Online)]);
        b.disconnect(1, 2);
        let p = b.set_status(2, Busy, None, 3);
        assert_eq!(statuses(&p), vec![(4, "bob", Busy)]);
    }

    #[test]
    fn devices_on_other_trackers_count_until_their_tracker_says_otherwise_or_is_gone() {
        let mut b = PresenceBook::new();
        b.connect(1, "alice");
        b.subscribe(1, Subscription::All);
        let part = |status, devices, at_ms| Some(Remote { status, note: None, devices, at_ms });
        // Bob is online on tracker T2 only.
        let p = b.set_remote("T2", "bob", part(Online, 1, 100), 100);
        assert_eq!(statuses(&p), vec![(1, "bob", Online)]);
        assert_eq!(b.local_part("bob"), None, "nothing of bob's is here");
        assert_eq!(
            b.subscribe(1, Subscription::All).iter().map(|e| e.user.as_str()).collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        // A device of his here too: two devices; the newest status wins, wherever set.
        b.connect(2, "bob");
        let p = b.set_status(2, Busy, None, 200);
        assert_eq!((p[0].entry.status, p[0].entry.devices), (Busy, 2));
        assert_eq!(b.local_part("bob").map(|r| (r.status, r.devices)), Some((Busy, 1)));
        let p = b.set_remote("T2", "bob", part(Away, 1, 300), 300);
        assert_eq!(statuses(&p), vec![(1, "bob", Away)]);
        // T2 is gone: what it said goes with it.
        let p = b.drop_tracker("T2", 400);
        assert_eq!((p[0].entry.status, p[0].entry.devices), (Busy, 1));
        assert!(b.remote_parts().is_empty());
        // And the last device here leaving makes him offline, seen then.
        b.set_remote("T3", "bob", part(Online, 1, 450), 450);
        b.set_remote("T3", "bob", None, 500);
        let p = b.disconnect(2, 600);
        assert_eq!((p[0].entry.status, p[0].entry.last_seen_ms), (Offline, 600));
    }
}
