//! The muted conversations, kept in memory: every message that arrives asks
//! whether its conversation is muted, and a query per message cost a
//! round trip to a database thread (half the receiving node's throughput,
//! measured with `skein-bench msg-hops`). The set is read again when it is
//! older than [`FRESH_FOR`], since another process sharing the file
//! (`skein mute`) may have changed it, and changes made through this
//! history apply at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a read of the muted conversations is trusted.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// When the muted conversations were read, and which they were.
type Read = Option<(Instant, HashSet<String>)>;

/// The muted conversations as last read; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Muted(Arc<Mutex<Read>>);

impl Muted {
    fn lock(&self) -> std::sync::MutexGuard<'_, Read> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `conversation` is muted, if the set is fresh enough to say.
    pub fn lookup(&self, conversation: &str) -> Option<bool> {
        let kept = self.lock();
        let (read_at, set) = kept.as_ref()?;
        (read_at.elapsed() < FRESH_FOR).then(|| set.contains(conversation))
    }

    /// Keeps a fresh read of every muted conversation.
    pub fn load(&self, all: Vec<String>) {
        *self.lock() = Some((Instant::now(), all.into_iter().collect()));
    }

    /// Applies a change made through this history.
    pub fn changed(&self, conversation: &str, muted: bool) {
        if let Some((_, set)) = self.lock().as_mut() {
            match muted {
                true => set.insert(conversation.to_owned()),
                false => set.remove(conversation),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_read_then_fresh_for_a_while_and_changes_apply() {
        let m = Muted::default();
        assert_eq!(m.lookup("bob"), None, "nothing read yet");
        m.load(vec!["bob".into()]);
        assert_eq!(m.lookup("bob"), Some(true));
        assert_eq!(m.lookup("carol"), Some(false));
        m.changed("bob", false);
        m.changed("carol", true);
        assert_eq!((m.lookup("bob"), m.lookup("carol")), (Some(false), Some(true)));
        *m.lock() = Some((Instant::now() - FRESH_FOR, HashSet::new()));
        assert_eq!(m.lookup("carol"), None, "a stale read is read again");
    }
}
