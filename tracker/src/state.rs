//! What every connection task shares: configuration, store, organisation,
//! the hub and relay handles and the login throttles.

use crate::config::TrackerConfig;
use crate::enrol::Enrolment;
use crate::hub::Hub;
use crate::org::Org;
use crate::presence::ConnId;
use crate::relay::Relay;
use crate::store::Store;
use crate::throttle::Throttle;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Failed-login tables. Guarded by a plain mutex: every use is a few
/// hash-map operations, never held across an await.
#[derive(Debug)]
pub struct Throttles {
    /// Per account name.
    pub accounts: Throttle<String>,
    /// Per source address.
    pub addresses: Throttle<IpAddr>,
}

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
    /// Login throttles.
    pub throttles: Mutex<Throttles>,
    /// Stores logins and resumes, several to a commit.
    pub enrolment: Enrolment,
    next_conn: AtomicU64,
}

impl State {
    /// Assembles the shared state (and starts the enrolment writer, so
    /// call it inside the runtime).
    pub fn new(config: TrackerConfig, store: Store, org: Org, hub: Hub, relay: Relay) -> Self {
        let throttles = Throttles {
            accounts: Throttle::new(config.account_throttle.clone()),
            addresses: Throttle::new(config.address_throttle.clone()),
        };
        let enrolment = Enrolment::spawn(store.clone());
        Self {
            config,
            store,
            org,
            hub,
            relay,
            throttles: Mutex::new(throttles),
            enrolment,
            next_conn: AtomicU64::new(1),
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `f` on the throttles.
    pub fn with_throttles<R>(&self, f: impl FnOnce(&mut Throttles) -> R) -> R {
        let mut guard = match self.throttles.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}
