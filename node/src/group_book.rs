//! The groups this node knows: the newest membership certificate of each,
//! checked against the organisation key, learnt from the tracker's group
//! list at connect and from every pushed change. A group message is taken
//! only from a member under the newest certificate; one that names a
//! newer version than this node knows makes it ask the tracker first. It
//! also keeps the node's clock for ordering group messages (see `hlc.rs`).

use crate::hlc::Hlc;
use crate::tracker_client::TrackerClient;
use skein_proto::bytes::{GroupId, PublicKey};
use skein_proto::control::{Request, Response};
use skein_proto::group::MembershipCert;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Debug, Default)]
struct Inner {
    certs: HashMap<GroupId, MembershipCert>,
    org_key: Option<PublicKey>,
    tracker: Option<TrackerClient>,
    clock: Hlc,
    next_seq: HashMap<GroupId, u64>,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct GroupBook {
    inner: Arc<Mutex<Inner>>,
}

impl GroupBook {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A clock reading for a group message sent now.
    pub fn tick(&self) -> u64 {
        self.lock().clock.tick(crate::now_ms())
    }

    /// The number for this device's next message to `group`: after
    /// `last_stored` (the highest in the history) and after any number
    /// handed out before.
    pub fn claim_seq(&self, group: GroupId, last_stored: u64) -> u64 {
        let mut inner = self.lock();
        let next = inner.next_seq.entry(group).or_insert(0);
        let seq = (*next).max(last_stored + 1);
        *next = seq + 1;
        seq
    }

    /// Takes in the reading of a group message received, so the next one
    /// sent comes after it.
    pub fn observe(&self, reading: u64) {
        self.lock().clock.observe(reading);
    }

    /// The organisation key, once known.
    pub fn org_key(&self) -> Option<PublicKey> {
        self.lock().org_key
    }

    /// The organisation key certificates must verify under (and app
    /// messages).
    pub fn set_org_key(&self, key: PublicKey) {
        self.lock().org_key = Some(key);
    }

    /// The tracker to ask, while connected.
    pub fn set_tracker(&self, client: Option<TrackerClient>) {
        self.lock().tracker = client;
    }

    /// Keeps `cert` if it verifies and is newer than what is known; returns
    /// whether it was kept.
    pub fn learn(&self, cert: MembershipCert) -> bool {
        let mut inner = self.lock();
        let Some(key) = inner.org_key else { return false };
        if let Err(e) = skein_certs::verify_membership(&key, &cert) {
            tracing::warn!(group = %cert.body.group, error = %e, "ignoring a group certificate that does not verify");
            return false;
        }
        let newer = inner.certs.get(&cert.body.group).is_none_or(|known| known.body.version < cert.body.version);
        if newer {
            inner.certs.insert(cert.body.group, cert);
        }
        newer
    }

    /// Every group known, by name.
    pub fn all(&self) -> Vec<MembershipCert> {
        let mut all: Vec<MembershipCert> = self.lock().certs.values().cloned().collect();
        all.sort_by(|a, b| a.body.name.cmp(&b.body.name).then(a.body.group.0.cmp(&b.body.group.0)));
        all
    }

    /// Asks the tracker for the newest certificates of this user's groups.
    /// `false` when it cannot be asked.
    pub async fn refresh(&self) -> bool {
        let Some(client) = self.lock().tracker.clone() else { return false };
        match client.request(Request::GroupList).await {
            Ok(Response::Groups(certs)) => {
                for c in certs {
                    self.learn(c);
                }
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::info!(error = %e, "could not list groups");
                false
            }
        }
    }

    /// The newest certificate of `group`, at `at_least` or later: asks the
    /// tracker when only an older one is known. `None` when this node
    /// knows no such group of its user.
    pub async fn current(&self, group: GroupId, at_least: u64) -> Option<MembershipCert> {
        let known = self.lock().certs.get(&group).cloned();
        match known {
            Some(c) if c.body.version >= at_least => Some(c),
            _ => {
                self.refresh().await;
                self.lock().certs.get(&group).cloned().or(known)
            }
        }
    }
}
