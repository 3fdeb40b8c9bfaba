//! A tracker process that runs the relay alone (`--roles relay`), near a
//! branch office while the control plane runs elsewhere.
//!
//! It holds nothing secret of the organisation: its data directory keeps
//! only its relay identity (`relay.key`) and its lock. It reads from the
//! organisation's PostgreSQL store who may use it (every device with a
//! valid, unrevoked certificate), and is told there as things change:
//! - a device logging in through any tracker is allowed at once
//!   ([`DEVICES_CHANNEL`]);
//! - an access change (a user disabled, a device revoked) reloads the
//!   allow-list at once ([`ADMIN_CHANNEL`]), which ends the reservations
//!   and circuits of devices no longer valid;
//! - the list is reloaded every minute as well (expired certificates), and
//!   whenever the listening connection comes back after a loss.
//!
//! It announces itself in the list of trackers with its relay addresses
//! and no control addresses, so devices learn of it with the list.

use crate::config::TrackerConfig;
use crate::lock::DataLock;
use crate::relay::{self, Relay};
use crate::server::StartError;
use crate::store::listen::{Heard, Listener, MAX_BACKOFF};
use crate::store::{ADMIN_CHANNEL, Backend, DEVICES_CHANNEL, Store};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A relay-only tracker that is serving.
#[derive(Debug)]
pub struct RunningRelay {
    relay: Relay,
    store: Store,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    _lock: DataLock,
}

/// Starts the relay of `config` with the data directory already taken.
pub async fn start(config: TrackerConfig, mut lock: DataLock) -> Result<RunningRelay, StartError> {
    let store = Store::open(&config.database_url()).await?;
    if store.backend() != Backend::Postgres {
        return Err(StartError::RelayNeedsPostgres);
    }
    if store.get_setting(crate::org::PUBLIC_KEY).await?.is_none() {
        return Err(StartError::NoOrganisation);
    }
    if relay::addrs::advertised_addrs(config.relay_listen.ip(), &config.public_addrs, 1).is_empty() {
        return Err(StartError::RelayUnannounced);
    }
    let keypair = relay::identity::load_or_create(&config.relay_key_path())?;
    let (relay, task) = crate::server::start_relay(&config, &store, keypair).await?;
    let config = config.named(relay.port());
    lock.say(&format!("skein-tracker relaying on UDP {}", relay.port()));
    let me = crate::roster::entry(&config, None, &relay, crate::clock::now_ms() as i64);
    store.tracker_started(&me).await?;
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(task.run(shutdown.clone()));
    tasks.spawn(relay::sync::run(store.clone(), relay.clone(), relay::sync::REFRESH_EVERY, shutdown.clone()));
    tasks.spawn(crate::roster::run(store.clone(), me, crate::roster::BEAT, shutdown.clone()));
    tasks.spawn(watch(store.clone(), relay.clone(), config.database_url(), shutdown.clone()));
    tracing::info!(port = relay.port(), peer_id = %relay.peer_id(), "relay serving (relay role only)");
    Ok(RunningRelay { relay, store, shutdown, tasks, _lock: lock })
}

impl RunningRelay {
    /// The relay's handle: its PeerId, port and byte counts.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// A token that stops the relay when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until `signal` completes, then shuts down.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        let token = self.shutdown.clone();
        tokio::select! {
            _ = signal => {}
            _ = token.cancelled() => {}
        }
        self.shutdown().await;
    }

    /// Stops relaying (ending every reservation and circuit) and records
    /// in the list of trackers that this one stopped.
    pub async fn shutdown(mut self) {
        tracing::info!("relay shutting down");
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), async { while self.tasks.join_next().await.is_some() {} })
            .await;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let now = crate::clock::now_ms() as i64;
        let me = self.relay.peer_id().to_string();
        if let Err(e) = self.store.tracker_seen(&me, now, false).await {
            tracing::warn!(error = %e, "cannot record in the list of trackers that this relay stopped");
        }
        self.store.close().await;
    }
}

/// Keeps the allow-list in step with what the store announces, until
/// `shutdown`.
async fn watch(store: Store, relay: Relay, url: String, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    let mut listener = loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            l = Listener::connect(&url, &[ADMIN_CHANNEL, DEVICES_CHANNEL]) => match l {
                Ok(l) => break l,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for access changes yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            },
        }
    };
    // Anything that changed before listening began.
    reload(&store, &relay).await;
    loop {
        let heard = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            h = listener.next() => h,
        };
        match heard {
            Heard::Notified { channel, payload } if channel == DEVICES_CHANNEL => {
                if let Some((_, peer)) = payload.split_once(' ')
                    && let Ok(peer) = hex::decode(peer)
                {
                    relay::sync::allow_bytes(&relay, &peer).await;
                }
            }
            Heard::Notified { .. } | Heard::Reconnected => reload(&store, &relay).await,
        }
    }
}

/// Replaces the allow-list with the store's; devices no longer valid lose
/// their reservations and circuits.
async fn reload(store: &Store, relay: &Relay) {
    let queried_at = Instant::now();
    match relay::sync::valid_peers(store).await {
        Ok(valid) => match relay.refresh(valid, queried_at).await {
            Ok(n) if n > 0 => tracing::info!(peers = n, "relay access ended after an access change"),
            _ => {}
        },
        Err(e) => tracing::warn!(error = %e, "reloading the relay allow-list failed; the minute's reload tries again"),
    }
}
