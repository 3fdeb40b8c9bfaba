//! What every connection task shares: configuration, store, organisation,
//! the hub and relay handles, the login guard and the password hasher.

use crate::config::TrackerConfig;
use crate::enrol::Enrolment;
use crate::hub::Hub;
use crate::login_guard::LoginGuard;
use crate::org::Org;
use crate::passwords::Passwords;
use crate::presence::ConnId;
use crate::relay::Relay;
use crate::store::Store;
use crate::strangers::Strangers;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shared tracker state.
#[derive(Debug)]
pub struct State {
    /// Configuration in force.
    pub config: TrackerConfig,
    /// The store.
    pub store: Store,
    /// The organisation.
    pub org: Org,
    /// The live-session and presence hub.
    pub hub: Hub,
    /// The relay.
    pub relay: Relay,
    /// Login throttles. A plain mutex: every use is a few hash-map
    /// operations, never held across an await.
    pub guard: Mutex<LoginGuard>,
    /// Password hashing, a few at a time.
    pub passwords: Passwords,
    /// Connections not logged in yet, per network.
    pub strangers: Arc<Strangers>,
    /// Stores logins and resumes, several to a commit.
    pub enrolment: Enrolment,
    /// Requests answered, by kind.
    pub requests: crate::requests::counts::RequestCounts,
    /// The other trackers of the store running now, whose online devices
    /// peer lookups include (none on SQLite).
    pub live_trackers: crate::presence_sync::LiveTrackers,
    /// What `/metrics` shows.
    pub metrics: crate::metrics::Metrics,
    next_conn: AtomicU64,
}

impl State {
    /// Assembles the shared state (and starts the enrolment writer, so
    /// call it inside the runtime).
    pub fn new(config: TrackerConfig, store: Store, org: Org, hub: Hub, relay: Relay) -> Self {
        let guard = LoginGuard::new(config.account_throttle.clone(), config.address_throttle.clone());
        let passwords = Passwords::per_core(config.password_cost.clone());
        let strangers = Strangers::new(config.max_strangers_per_network);
        let enrolment = Enrolment::spawn(store.clone());
        let metrics = crate::metrics::Metrics::new(hub.fanout());
        Self {
            config,
            store,
            org,
            hub,
            relay,
            guard: Mutex::new(guard),
            passwords,
            strangers,
            enrolment,
            requests: Default::default(),
            live_trackers: Default::default(),
            metrics,
            next_conn: AtomicU64::new(1),
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `f` on the login guard.
    pub fn with_guard<R>(&self, f: impl FnOnce(&mut LoginGuard) -> R) -> R {
        let mut guard = match self.guard.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}
