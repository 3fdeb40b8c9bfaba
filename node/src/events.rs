//! The node's event stream: every event the node reports (a message came,
//! a peer connected, a transfer moved on), as the JSON objects `skein
//! daemon` prints, to every listener. The daemon prints them; the desktop
//! app turns them into screens. A listener that goes away is dropped; no
//! listener holds up the node, and none misses an event.

use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Where the node's events go; cheap to clone.
#[derive(Clone, Default)]
pub struct Events {
    listeners: Arc<Mutex<Vec<mpsc::UnboundedSender<Value>>>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// Sends `v` to every listener.
    pub fn emit(&self, v: Value) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        listeners.retain(|l| l.send(v.clone()).is_ok());
    }

    /// A new listener, which gets every event from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.listeners.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn every_listener_gets_every_event_and_a_gone_one_is_dropped() {
        let events = Events::default();
        let mut a = events.subscribe();
        let b = events.subscribe();
        events.emit(json!({"type": "one"}));
        drop(b);
        events.emit(json!({"type": "two"}));
        assert_eq!(a.recv().await, Some(json!({"type": "one"})));
        assert_eq!(a.recv().await, Some(json!({"type": "two"})));
        assert_eq!(events.listeners.lock().expect("lock").len(), 1, "the gone listener was dropped");
    }
}
