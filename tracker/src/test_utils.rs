//! Helpers for tests (feature `test-utils`): a real tracker (control plane
//! and relay) on `127.0.0.1:0` in a temporary directory, users made directly in its
//! store, and [`wait_for`] to wait on a condition instead of sleeping.

use crate::auth::PasswordCost;
use crate::config::TrackerConfig;
use crate::init::ensure_initialised;
use crate::server::{RunningTracker, Tracker};
use crate::store::Store;
use skein_proto::control::NewUser;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A tracker for tests, with its data directory.
#[derive(Debug)]
pub struct TestTracker {
    /// The temporary data directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The configuration it runs with.
    pub config: TrackerConfig,
    running: Option<RunningTracker>,
    addr: SocketAddr,
}

/// Cheap argon2 parameters so tests do not spend their time hashing.
pub fn test_password_cost() -> PasswordCost {
    PasswordCost { m_cost: 1024, t_cost: 1, p_cost: 1 }
}

impl TestTracker {
    /// Starts a tracker on SQLite with test-friendly settings.
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    /// Starts a tracker after `tweak` adjusts the configuration.
    pub async fn start_with(tweak: impl FnOnce(TrackerConfig) -> TrackerConfig) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = TrackerConfig::new(dir.path())
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .relay_listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .idle_timeout(Duration::from_secs(3))
            .password_cost(test_password_cost());
        config.admin_poll = Duration::from_millis(200);
        let config = tweak(config);
        ensure_initialised(&config).await.expect("initialise tracker data");
        let running = Tracker::start(config.clone()).await.expect("start tracker");
        let addr = running.local_addr();
        Self { dir, config, running: Some(running), addr }
    }

    /// The control-plane address, as `HOST:PORT`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The bound socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate nodes must trust.
    pub fn ca_path(&self) -> PathBuf {
        self.config.ca_cert_path()
    }

    /// The running tracker.
    pub fn running(&self) -> &RunningTracker {
        self.running.as_ref().expect("tracker is running")
    }

    /// Opens the tracker's store (a second handle, as the admin CLI would).
    pub async fn store(&self) -> Store {
        Store::open(&self.config.database_url()).await.expect("open store")
    }

    /// Creates a user with a password.
    pub async fn add_user(&self, name: &str, password: &str) {
        let store = self.store().await;
        let new = NewUser {
            name: name.into(),
            display_name: format!("{}{}", name[..1].to_uppercase(), &name[1..]),
            password: password.into(),
            department: None,
            title: None,
            email: None,
            phone: None,
            admin: false,
        };
        crate::admin::add_user(&store, new, &self.passwords()).await.expect("add user");
        store.close().await;
    }

    /// A password hasher at this tracker's cost, as the admin CLI uses.
    pub fn passwords(&self) -> crate::passwords::Passwords {
        crate::passwords::Passwords::per_core(self.config.password_cost.clone())
    }

    /// Stops the tracker (keeping its data).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Starts it again on the same address and data.
    pub async fn restart(&mut self) {
        self.stop().await;
        let config = self.config.clone().listen(self.addr);
        let running = Tracker::start(config).await.expect("restart tracker");
        self.running = Some(running);
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics naming
/// `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
