//! Starting and stopping a tracker.
//!
//! [`Tracker::start`] takes the data directory ([`crate::lock`]), opens the
//! store, loads the organisation and checks its CA, binds the control-plane
//! QUIC endpoint and the relay, records itself in the list of trackers
//! ([`crate::roster`]), and spawns the accept loop, the hub, the relay with
//! its allow-list refresh, the admin watcher and the roster's beat.
//! [`RunningTracker::shutdown`] stops accepting, tells clients to reconnect
//! elsewhere, stops the relay, drains and returns.

use crate::config::TrackerConfig;
use crate::hub::Hub;
use crate::lock::{DataLock, LockError};
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
    /// Another tracker serves the data directory or the SQLite store.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The data directory's CA is not the one the store was set up with.
    #[error(
        "{path} is not the organisation's CA (its SHA-256 is {found}; the store was set up with {expected}): \
         this data directory belongs to another organisation. Start this tracker with an empty --data and \
         --join DIR, DIR being the data directory of one of the organisation's trackers"
    )]
    WrongCa {
        /// The data directory's `ca.pem`.
        path: String,
        /// Its fingerprint.
        found: String,
        /// The fingerprint the store keeps.
        expected: String,
    },
    /// A relay-only process was pointed at an SQLite store, which one
    /// tracker holds alone.
    #[error(
        "a relay-only tracker (--roles relay) needs the organisation's PostgreSQL database (--database postgres://...): \
         it learns there who may use it. On SQLite run one tracker with both roles"
    )]
    RelayNeedsPostgres,
    /// A relay-only process would not know what address to announce.
    #[error(
        "a relay-only tracker must say where devices reach it: give --public-addr HOST (or a --relay-listen with a \
         specific IP); devices learn its addresses from the list of trackers"
    )]
    RelayUnannounced,
    /// A relay-only process was pointed at a store without an organisation.
    #[error(
        "this database has no organisation yet: start the organisation's first tracker (with the control role) \
         before a relay-only one"
    )]
    NoOrganisation,
    /// The HTTP API could not start.
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
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
    /// This tracker's PeerId in the list of trackers.
    roster_id: String,
    /// Where the HTTP API listens, with the api role.
    api_addr: Option<SocketAddr>,
    _lock: DataLock,
}

/// The setting that keeps the SHA-256 of the organisation CA's certificate.
const CA_SETTING: &str = "org_ca_sha256";

impl Tracker {
    /// Takes `config`'s data directory (and SQLite store) for one tracker,
    /// as [`Tracker::start_locked`] needs.
    pub fn lock(config: &TrackerConfig) -> Result<DataLock, LockError> {
        let holder = format!("skein-tracker starting on UDP {}", config.listen);
        DataLock::take(&config.data_dir, crate::lock::sqlite_file(&config.database_url()).as_deref(), &holder)
    }

    /// Starts serving with `config`. The data directory must already be
    /// initialised (see [`crate::init`]).
    pub async fn start(config: TrackerConfig) -> Result<RunningTracker, StartError> {
        let lock = Self::lock(&config)?;
        Self::start_locked(config, lock).await
    }

    /// [`Tracker::start`] with the data directory already taken (the
    /// command line takes it before it initialises the directory).
    pub async fn start_locked(config: TrackerConfig, mut lock: DataLock) -> Result<RunningTracker, StartError> {
        // The API's address first: a wrong one is refused before anything starts.
        let api_listener = match config.roles.api {
            true => Some(crate::api::bind(config.api_listen, config.api_tls).await?),
            false => None,
        };
        let store = Store::open(&config.database_url()).await?;
        let org = Org::load_or_init(&store, &config.org, &config.org_key_path()).await?;
        check_ca(&store, &config).await?;
        let (server_config, sessions) = tls::server_config(&config)?;
        let api_tls = match config.roles.api && config.api_tls {
            true => Some(tls::https_config(&config)?),
            false => None,
        };
        let endpoint = quinn::Endpoint::server(server_config, config.listen)
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let local_addr = endpoint.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let config = config.named(local_addr.port());
        lock.say(&format!("skein-tracker serving UDP {local_addr}"));
        let keypair = relay::identity::load_or_create(&config.relay_key_path())?;
        let (relay, relay_task) = match config.roles.relay {
            true => {
                let (relay, task) = start_relay(&config, &store, keypair).await?;
                (relay, Some(task))
            }
            false => (Relay::detached(&keypair), None),
        };
        let me = crate::roster::entry(&config, Some(local_addr), &relay, crate::clock::now_ms() as i64);
        store.tracker_started(&me).await?;
        // On PostgreSQL other trackers may share the store: presence crosses
        // between them.
        let shared = store.backend() == crate::store::Backend::Postgres;
        let (publish, local_changes) = match shared {
            true => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let (hub, hub_task) = Hub::spawn_publishing(4096, publish);
        let shutdown = CancellationToken::new();
        let state = Arc::new(State::new(config, store, org, hub.clone(), relay.clone()));
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let _ = hub_task.await;
        });
        if let Some(task) = relay_task {
            tasks.spawn(task.run(shutdown.clone()));
            let store = state.store.clone();
            tasks.spawn(relay::sync::run(store, relay.clone(), relay::sync::REFRESH_EVERY, shutdown.clone()));
        }
        let org = state.org.clone();
        let wake = match state.store.backend() {
            crate::store::Backend::Postgres => admin_watch::Wake::Listen(state.config.database_url()),
            crate::store::Backend::Sqlite => admin_watch::Wake::Every(state.config.admin_poll),
        };
        tasks.spawn(admin_watch::run(state.store.clone(), org, hub, relay, wake, shutdown.clone()));
        tasks.spawn(housekeeping(state.clone(), shutdown.clone()));
        let roster_id = me.relay_peer_id.clone();
        if let Some(rx) = local_changes {
            tasks.spawn(crate::presence_sync::run(state.clone(), roster_id.clone(), rx, shutdown.clone()));
        }
        tasks.spawn(crate::roster::run(state.store.clone(), me, crate::roster::BEAT, shutdown.clone()));
        tasks.spawn(accept_loop(endpoint.clone(), state.clone(), shutdown.clone()));
        let api_addr = api_listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(listener) = api_listener {
            tasks.spawn(crate::api::serve(listener, api_tls, crate::api::Api::new(state.clone()), shutdown.clone()));
        }
        tracing::info!(%local_addr, org = %state.org.name, "tracker serving");
        Ok(RunningTracker { local_addr, state, shutdown, tasks, endpoint, sessions, roster_id, api_addr, _lock: lock })
    }
}

/// Binds the relay with `keypair`, allowing the devices the store holds
/// valid.
pub(crate) async fn start_relay(
    config: &TrackerConfig,
    store: &Store,
    keypair: libp2p::identity::Keypair,
) -> Result<(Relay, relay::actor::RelayTask), StartError> {
    Ok(Relay::start(RelayOptions {
        listen: config.relay_listen,
        public_addrs: config.public_addrs.clone(),
        limits: config.relay.clone(),
        keypair,
        allowed: relay::sync::valid_peers(store).await?,
    })
    .await?)
}

/// Checks that the data directory's CA is the organisation's, as the store
/// recorded it when the organisation's first tracker started.
async fn check_ca(store: &Store, config: &TrackerConfig) -> Result<(), StartError> {
    let path = config.ca_cert_path();
    let Some(ca) = skein_certs::rustls_io::load_certs(&path).map_err(tls::TlsError::from)?.into_iter().next() else {
        return Ok(());
    };
    let found = skein_certs::fingerprint(&ca);
    let expected = store.put_setting_if_absent(CA_SETTING, found.as_bytes()).await?;
    if expected != found.as_bytes() {
        return Err(StartError::WrongCa {
            path: path.display().to_string(),
            found,
            expected: String::from_utf8_lossy(&expected).into_owned(),
        });
    }
    Ok(())
}

impl RunningTracker {
    /// The control-plane address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the HTTP API listens, with the api role.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
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
        let now = crate::clock::now_ms() as i64;
        if let Err(e) = self.state.store.tracker_seen(&self.roster_id, now, false).await {
            tracing::warn!(error = %e, "cannot record in the list of trackers that this one stopped");
        }
        if let Err(e) = self.state.store.clear_presence(&self.roster_id).await {
            tracing::warn!(error = %e, "cannot clear this tracker's part of its users' presence");
        }
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
