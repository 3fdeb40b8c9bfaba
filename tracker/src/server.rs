//! Starting and stopping a tracker.
//!
//! [`Tracker::start`] opens the store, loads the organisation, binds the
//! control-plane QUIC endpoint and the relay, and spawns the accept loop,
//! the hub, the relay with its allow-list refresh, and the admin watcher.
//! [`RunningTracker::shutdown`] stops accepting, tells clients to reconnect
//! elsewhere, stops the relay, drains and returns.

use crate::config::TrackerConfig;
use crate::hub::Hub;
use crate::org::Org;
use crate::relay::{self, Relay, RelayError, RelayOptions};
use crate::state::State;
use crate::store::Store;
use crate::{admin_watch, connection, tls};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Why a tracker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The organisation could not be loaded.
    #[error(transparent)]
    Org(#[from] crate::org::OrgError),
    /// Certificates could not be loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The relay could not start (its key, its address).
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The UDP port could not be bound.
    #[error(
        "cannot listen on UDP {addr}: {source}; is another tracker running there? Choose another address with --listen"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A tracker about to run.
#[derive(Debug)]
pub struct Tracker;

/// A tracker that is serving.
#[derive(Debug)]
pub struct RunningTracker {
    local_addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    endpoint: quinn::Endpoint,
    sessions: Arc<tls::Sessions>,
}

impl Tracker {
    /// Starts serving with `config`. The data directory must already be
    /// initialised (see [`crate::init`]).
    pub async fn start(config: TrackerConfig) -> Result<RunningTracker, StartError> {
        let store = Store::open(&config.database_url()).await?;
        let org = Org::load_or_init(&store, &config.org, &config.org_key_path()).await?;
        let (server_config, sessions) = tls::server_config(&config)?;
        let endpoint = quinn::Endpoint::server(server_config, config.listen)
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let local_addr = endpoint.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let (relay, relay_task) = Relay::start(RelayOptions {
            listen: config.relay_listen,
            public_addrs: config.public_addrs.clone(),
            limits: config.relay.clone(),
            keypair: relay::identity::load_or_create(&config.relay_key_path())?,
            allowed: relay::sync::valid_peers(&store).await?,
        })
        .await?;
        let (hub, hub_task) = Hub::spawn(4096);
        let shutdown = CancellationToken::new();
        let state = Arc::new(State::new(config, store, org, hub.clone(), relay.clone()));
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let _ = hub_task.await;
        });
        tasks.spawn(relay_task.run(shutdown.clone()));
        tasks.spawn(relay::sync::run(state.store.clone(), relay.clone(), relay::sync::REFRESH_EVERY, shutdown.clone()));
        let org = state.org.clone();
        tasks.spawn(admin_watch::run(state.store.clone(), org, hub, relay, state.config.admin_poll, shutdown.clone()));
        tasks.spawn(housekeeping(state.clone(), shutdown.clone()));
        tasks.spawn(accept_loop(endpoint.clone(), state.clone(), shutdown.clone()));
        tracing::info!(%local_addr, org = %state.org.name, "tracker serving");
        Ok(RunningTracker { local_addr, state, shutdown, tasks, endpoint, sessions })
    }
}

impl RunningTracker {
    /// The control-plane address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The TLS sessions kept for resumption, and how many handshakes
    /// resumed one.
    pub fn tls_sessions(&self) -> &tls::Sessions {
        &self.sessions
    }

    /// The relay's handle: its PeerId, port and byte counts.
    pub fn relay(&self) -> &Relay {
        &self.state.relay
    }

    /// The shared state (for tests and the admin API).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// A token that stops the tracker when cancelled.
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

    /// Stops accepting, tells connected clients, waits briefly for them to
    /// drain, and returns.
    pub async fn shutdown(mut self) {
        tracing::info!("tracker shutting down");
        self.shutdown.cancel();
        let drain = async {
            // Connections end their loops on the token; give them a moment to
            // send their notices, then close what is left.
            let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        };
        drain.await;
        self.endpoint.close(connection::close::DONE.into(), b"tracker shutting down");
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.state.store.close().await;
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, state: Arc<State>, shutdown: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        if endpoint.open_connections() > state.config.max_connections {
            tracing::warn!(remote = %incoming.remote_address(), "refusing connection: at the connection limit");
            incoming.refuse();
            continue;
        }
        let Some(slot) = state.strangers.admit(incoming.remote_address().ip()) else {
            tracing::debug!(remote = %incoming.remote_address(), "refusing connection: too many from its network not logged in");
            incoming.refuse();
            continue;
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), incoming).await {
                Ok(Ok(conn)) => connection::serve(state, conn, slot, shutdown).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "handshake failed"),
                Err(_) => tracing::debug!("handshake timed out"),
            }
        });
    }
    // Let connections send their shutdown notices.
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while conns.join_next().await.is_some() {} }).await;
}

async fn housekeeping(state: Arc<State>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::clock::now_ms() as i64;
        match state.store.purge_expired_sessions(now).await {
            Ok(n) if n > 0 => tracing::info!(sessions = n, "purged expired sessions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
        }
        let horizon = now - state.config.mailbox.max_age.as_millis() as i64;
        match state.store.mailbox_purge_older_than(horizon).await {
            Ok(n) if n > 0 => tracing::info!(items = n, "purged expired mailbox items"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging the mailbox failed"),
        }
    }
}
