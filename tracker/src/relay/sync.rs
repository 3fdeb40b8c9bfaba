//! Keeps the relay's allow-list in step with the store.
//!
//! The store says who may use the relay: every device with an unexpired,
//! unrevoked certificate whose user is enabled. Logins and resumes allow
//! their device at once (see `requests/session.rs`); this module loads the
//! list at start, refreshes it every minute (catching expired certificates
//! and changes made through other trackers). Devices whose access ends are
//! taken off at once by the admin watch (`admin_watch.rs`).

use super::{Relay, RelayStopped};
use crate::clock::now_ms;
use crate::store::{Store, StoreError};
use libp2p::PeerId;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the allow-list is reloaded from the store.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);

fn parse(bytes: &[u8]) -> Option<PeerId> {
    PeerId::from_bytes(bytes).ok()
}

/// The PeerIds that may use the relay now, according to the store.
pub async fn valid_peers(store: &Store) -> Result<HashSet<PeerId>, StoreError> {
    let rows = store.valid_peer_ids(now_ms() as i64).await?;
    Ok(rows.iter().filter_map(|b| parse(b)).collect())
}

/// Reloads the allow-list every `every` until `shutdown`.
pub async fn run(store: Store, relay: Relay, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the list was loaded at start
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let queried_at = Instant::now();
        let valid = match valid_peers(&store).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "reloading the relay allow-list failed; keeping the current one");
                continue;
            }
        };
        match relay.refresh(valid, queried_at).await {
            Ok(n) if n > 0 => tracing::info!(peers = n, "relay access ended for devices without a valid certificate"),
            Ok(_) => {}
            Err(RelayStopped) => return,
        }
    }
}

/// Allows a device's PeerId (binary form) on the relay.
pub async fn allow_bytes(relay: &Relay, peer_id: &[u8]) {
    match parse(peer_id) {
        Some(p) => relay.allow(p).await,
        None => tracing::debug!("device PeerId does not parse; not allowed on the relay"),
    }
}
