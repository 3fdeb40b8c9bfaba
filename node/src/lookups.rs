//! What the tracker last said about users' devices, and whether it is
//! answering; shared by every send of one tracker connection.
//!
//! Each send needs the recipient's devices. The tracker's answer is kept
//! for [`FRESH_FOR`] and forgotten as soon as anything suggests it changed:
//! the tracker reports a change of that user's presence (a device
//! connecting or leaving changes the device count it reports), a listed
//! device cannot be reached, or the tracker connection is replaced. Without
//! it, every message waited for a tracker round trip, queued behind every
//! other request of this connection: under load, most of a message's time.

use skein_proto::control::PeerInfo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an answer is used without asking again.
pub const FRESH_FOR: Duration = Duration::from_secs(30);
/// Users remembered at most; the oldest answers make room.
const MAX_USERS: usize = 4096;

/// Shared lookup state; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Lookups(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    stalled: Option<Instant>,
    users: HashMap<String, (Arc<PeerInfo>, Instant)>,
    /// Bumped by every forgetting, so an answer asked for before it is not
    /// remembered after it.
    generation: u64,
}

impl Lookups {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// When the tracker last failed to answer a lookup in time, if it has
    /// not answered since.
    pub fn stalled(&self) -> Option<Instant> {
        self.with(|i| i.stalled)
    }

    /// Records a stall (`Some`) or an answer (`None`).
    pub fn set_stalled(&self, at: Option<Instant>) {
        self.with(|i| i.stalled = at);
    }

    /// The devices of `user`, if the tracker said so recently (shared, not
    /// copied: every send to `user` reads it).
    pub fn cached(&self, user: &str) -> Option<Arc<PeerInfo>> {
        self.with(|i| i.users.get(user).filter(|(_, at)| at.elapsed() < FRESH_FOR).map(|(p, _)| p.clone()))
    }

    /// The current generation, to pass to [`Lookups::remember`] with the
    /// answer to a lookup started now.
    pub fn generation(&self) -> u64 {
        self.with(|i| i.generation)
    }

    /// Keeps the tracker's answer, unless something was forgotten since
    /// `generation` (the answer may predate the change).
    pub fn remember(&self, info: impl Into<Arc<PeerInfo>>, generation: u64) {
        let info = info.into();
        self.with(|i| {
            if i.generation != generation {
                return;
            }
            if i.users.len() >= MAX_USERS && !i.users.contains_key(&info.user) {
                i.users.retain(|_, (_, at)| at.elapsed() < FRESH_FOR);
                if i.users.len() >= MAX_USERS {
                    let oldest = i.users.iter().min_by_key(|(_, (_, at))| *at).map(|(u, _)| u.clone());
                    if let Some(u) = oldest {
                        i.users.remove(&u);
                    }
                }
            }
            i.users.insert(info.user.clone(), (info, Instant::now()));
        });
    }

    /// Forgets what is known of `user`'s devices.
    pub fn forget(&self, user: &str) {
        self.with(|i| {
            i.generation += 1;
            i.users.remove(user);
        });
    }

    /// Forgets everything (a new tracker connection).
    pub fn reset(&self) {
        self.with(|i| {
            i.generation += 1;
            i.users.clear();
            i.stalled = None;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(user: &str) -> PeerInfo {
        PeerInfo { user: user.into(), online: Vec::new(), known: Vec::new() }
    }

    #[test]
    fn answers_are_kept_until_forgotten() {
        let l = Lookups::default();
        assert!(l.cached("bob").is_none());
        l.remember(info("bob"), l.generation());
        assert_eq!(l.cached("bob").map(|p| p.user.clone()), Some("bob".into()));
        l.forget("bob");
        assert!(l.cached("bob").is_none());
    }

    #[test]
    fn an_answer_older_than_a_change_is_not_kept() {
        let l = Lookups::default();
        let asked = l.generation();
        l.forget("bob"); // a presence change arrives while the lookup runs
        l.remember(info("bob"), asked);
        assert!(l.cached("bob").is_none());
    }

    #[test]
    fn reset_forgets_everything_and_the_stall() {
        let l = Lookups::default();
        l.remember(info("bob"), l.generation());
        l.set_stalled(Some(Instant::now()));
        l.reset();
        assert!(l.cached("bob").is_none());
        assert!(l.stalled().is_none());
    }

    #[test]
    fn bounded() {
        let l = Lookups::default();
        for n in 0..MAX_USERS + 10 {
            l.remember(info(&format!("u{n}")), l.generation());
        }
        assert_eq!(l.with(|i| i.users.len()), MAX_USERS);
        assert!(l.cached(&format!("u{}", MAX_USERS + 9)).is_some());
    }
}
