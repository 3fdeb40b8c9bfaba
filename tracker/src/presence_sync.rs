//! Presence across the trackers of one PostgreSQL store.
//!
//! Each tracker writes its own devices' part of each user's presence to
//! the store as it changes, and the store tells the other trackers as the
//! write commits (`NOTIFY`); each reads the part named and folds it into
//! its hub, whose subscribers are pushed the combined presence like any
//! other change. A tracker reads every running tracker's parts when it
//! starts and whenever its listening connection comes back, since it may
//! have missed notifications meanwhile.
//!
//! A tracker that stops cleanly clears its parts. One that vanishes stops
//! announcing itself (every [`BEAT`], see [`crate::roster`]): after
//! [`SILENT_AFTER`] without a word from it, the others drop what it said.
//! A write that fails (the database away) is tried again at each beat
//! until it succeeds, newest part first.
//!
//! Mail stored through one tracker for a device connected to another is
//! announced to that device by its tracker ([`MAIL_CHANNEL`]), and a device
//! that logs in through one tracker is admitted at once by the others'
//! relays ([`DEVICES_CHANNEL`]), which its peers may reach it through.
//!
//! Online devices that reported their addresses are written the same way
//! (no notification: a peer lookup reads them, from the trackers this one
//! hears running, [`LiveTrackers`]).

use crate::hub::{Hub, LocalChange};
use crate::roster::{BEAT, SILENT_AFTER, standing};
use crate::store::listen::{Heard, Listener, MAX_BACKOFF};
use crate::store::{DEVICES_CHANNEL, MAIL_CHANNEL, PRESENCE_CHANNEL, Store, StoreError, TRACKERS_CHANNEL};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The other trackers running now, as this one last heard: whose online
/// devices its peer lookups include. Cheap to clone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct LiveTrackers(Arc<RwLock<Vec<String>>>);

impl LiveTrackers {
    /// The trackers (their relays' PeerIds).
    pub fn get(&self) -> Vec<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, heard: &HashMap<String, Instant>) {
        let mut list: Vec<String> = heard.keys().cloned().collect();
        list.sort();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = list;
    }
}

/// What a tracker is doing with the others' presence.
struct Sync {
    store: Store,
    /// This tracker's id (its relay's PeerId).
    me: String,
    hub: Hub,
    /// When each other tracker last said it runs.
    heard: HashMap<String, Instant>,
    /// Changes here not yet written, by the user or device they concern.
    unwritten: HashMap<String, LocalChange>,
    /// `heard`'s trackers, for lookups.
    live: LiveTrackers,
    /// This tracker's relay, which admits devices that logged in elsewhere.
    relay: crate::relay::Relay,
}

/// Runs until `shutdown`: publishes `local` changes of the tracker `me`
/// and follows the others on `state`'s store.
pub async fn run(
    state: std::sync::Arc<crate::state::State>,
    me: String,
    mut local: mpsc::UnboundedReceiver<LocalChange>,
    shutdown: CancellationToken,
) {
    let url = state.config.database_url();
    let mut sync = Sync {
        store: state.store.clone(),
        me,
        hub: state.hub.clone(),
        heard: HashMap::new(),
        unwritten: HashMap::new(),
        live: state.live_trackers.clone(),
        relay: state.relay.clone(),
    };
    // Parts left by this tracker's previous run (it may have been killed).
    if let Err(e) = sync.store.clear_presence(&sync.me).await {
        tracing::warn!(error = %e, "cannot clear this tracker's presence left from an earlier run");
    }
    let mut listener = tokio::select! {
        _ = shutdown.cancelled() => return,
        l = listen(&url) => l,
    };
    sync.catch_up().await;
    let mut tick = tokio::time::interval(BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            Some(change) = local.recv() => sync.publish(change).await,
            heard = listener.next() => match heard {
                Heard::Reconnected => sync.catch_up().await,
                Heard::Notified { channel, payload } => sync.notified(&channel, &payload).await,
            },
            _ = tick.tick() => {
                sync.expire().await;
                let pending: Vec<_> = sync.unwritten.drain().map(|(_, c)| c).collect();
                for change in pending {
                    sync.publish(change).await;
                }
            }
        }
    }
}

async fn listen(url: &str) -> Listener {
    let mut backoff = Duration::from_millis(100);
    loop {
        match Listener::connect(url, &[PRESENCE_CHANNEL, TRACKERS_CHANNEL, MAIL_CHANNEL, DEVICES_CHANNEL]).await {
            Ok(l) => return l,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for other trackers' presence yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

impl Sync {
    /// Writes a change for the other trackers; one that fails waits for
    /// the next beat, and anything older still waiting about the same user
    /// or device is out of date.
    async fn publish(&mut self, change: LocalChange) {
        let (key, written) = match &change {
            LocalChange::Presence(user, part) => {
                (format!("user {user}"), self.store.put_presence(&self.me, user, part.as_ref()).await)
            }
            LocalChange::Device(device, here) => {
                let row = here.as_ref().map(|h| (h.user.as_str(), h.visible, &h.addresses));
                (format!("device {device}"), self.store.put_online_device(&self.me, *device, row).await)
            }
        };
        match written {
            Ok(()) => drop(self.unwritten.remove(&key)),
            Err(e) => {
                tracing::warn!(error = %e, %key, "cannot tell the other trackers of a change here; trying again");
                self.unwritten.insert(key, change);
            }
        }
    }

    async fn notified(&mut self, channel: &str, payload: &str) {
        if channel == DEVICES_CHANNEL {
            if let Some((tracker, peer)) = payload.split_once(' ')
                && tracker != self.me
                && let Ok(peer) = hex::decode(peer)
            {
                crate::relay::sync::allow_bytes(&self.relay, &peer).await;
            }
            return;
        }
        if channel == MAIL_CHANNEL {
            let mut words = payload.split(' ');
            let (Some(tracker), Some(user), Some(device), Some(count)) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return;
            };
            let device = hex::decode(device).ok().and_then(|d| <[u8; 16]>::try_from(d).ok());
            if let (false, Ok(user), Some(device), Ok(count)) =
                (tracker == self.me, user.parse(), device, count.parse())
            {
                self.hub.mail_waiting(user, skein_proto::bytes::DeviceId(device), count).await;
            }
            return;
        }
        if channel == TRACKERS_CHANNEL {
            if payload != self.me && self.heard.insert(payload.to_owned(), Instant::now()).is_none() {
                self.live.set(&self.heard);
                // A tracker started, or came back after it was taken for gone.
                if let Err(e) = self.read_tracker(payload).await {
                    tracing::warn!(error = %e, tracker = payload, "cannot read another tracker's presence");
                }
            }
            return;
        }
        let Some((tracker, user)) = payload.split_once(' ') else { return };
        if tracker == self.me {
            return;
        }
        if self.heard.insert(tracker.to_owned(), Instant::now()).is_none() {
            self.live.set(&self.heard);
        }
        if user == "*" {
            self.hub.drop_tracker(tracker.to_owned()).await;
            return;
        }
        match self.store.presence_part(tracker, user).await {
            Ok(part) => self.hub.set_remote(tracker.to_owned(), user.to_owned(), part).await,
            Err(e) => tracing::warn!(error = %e, tracker, user, "cannot read another tracker's presence"),
        }
    }

    async fn read_tracker(&self, tracker: &str) -> Result<(), StoreError> {
        for (t, u, part) in self.store.presence_of(&[tracker.to_owned()]).await? {
            self.hub.set_remote(t, u, Some(part)).await;
        }
        Ok(())
    }

    /// Reads every running tracker's parts, replacing what the hub had.
    async fn catch_up(&mut self) {
        let read = async {
            let now = crate::clock::now_ms() as i64;
            let running: Vec<String> = self
                .store
                .list_trackers()
                .await?
                .into_iter()
                .filter(|t| t.relay_peer_id != self.me && standing(t, now) == "running")
                .map(|t| t.relay_peer_id)
                .collect();
            let parts = self.store.presence_of(&running).await?;
            Ok::<_, StoreError>((running, parts))
        };
        match read.await {
            Ok((running, parts)) => {
                let now = Instant::now();
                self.heard = running.into_iter().map(|t| (t, now)).collect();
                self.live.set(&self.heard);
                self.hub.replace_remote(parts).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the other trackers' presence"),
        }
    }

    /// Drops what trackers silent for too long said.
    async fn expire(&mut self) {
        let gone: Vec<String> =
            self.heard.iter().filter(|(_, at)| at.elapsed() > SILENT_AFTER).map(|(t, _)| t.clone()).collect();
        for t in gone {
            tracing::info!(tracker = %t, "another tracker fell silent; its users' presence there is dropped");
            self.heard.remove(&t);
            self.live.set(&self.heard);
            self.hub.drop_tracker(t).await;
        }
    }
}
