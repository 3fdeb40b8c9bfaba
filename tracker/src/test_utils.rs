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

    /// A tracker that also serves the HTTP API, on a free loopback port,
    /// and the API's address.
    pub async fn start_with_api() -> (Self, std::net::SocketAddr) {
        let t = Self::start_with(|mut c| {
            c.roles = crate::roles::Roles { api: true, ..crate::roles::Roles::default() };
            c.api_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            c
        })
        .await;
        let api = t.running().api_addr().expect("the API listens");
        (t, api)
    }

    /// [`TestTracker::start_with_api`] serving HTTPS with the tracker's certificate.
    pub async fn start_with_api_tls() -> (Self, std::net::SocketAddr) {
        let t = Self::start_with(|mut c| {
            c.roles = crate::roles::Roles { api: true, ..crate::roles::Roles::default() };
            c.api_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            c.api_tls = true;
            c
        })
        .await;
        let api = t.running().api_addr().expect("the API listens");
        (t, api)
    }

    /// Starts a second tracker of `first`'s organisation, joined to it
    /// (`run --join`), on the same PostgreSQL store.
    pub async fn join(first: &TestTracker) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = first.config.clone();
        config.data_dir = dir.path().to_path_buf();
        config.tracker_id = String::new();
        let config =
            config.listen(SocketAddr::from(([127, 0, 0, 1], 0))).relay_listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        crate::join::prepare(&config, &first.config.data_dir).expect("join the first tracker's organisation");
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
        self.add(name, password, None, false).await;
    }

    /// Creates a user with a password in the department at `dept`.
    pub async fn add_user_in(&self, name: &str, password: &str, dept: &str) {
        self.add(name, password, Some(dept), false).await;
    }

    /// Creates an administrator with a password (no one-time password).
    pub async fn add_admin(&self, name: &str, password: &str) {
        self.add(name, password, None, true).await;
    }

    async fn add(&self, name: &str, password: &str, department: Option<&str>, admin: bool) {
        let store = self.store().await;
        let new = NewUser {
            name: name.into(),
            display_name: format!("{}{}", name[..1].to_uppercase(), &name[1..]),
            password: password.into(),
            department: department.map(str::to_owned),
            title: None,
            email: None,
            phone: None,
            admin,
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

/// The environment variable naming a PostgreSQL server for tests: a URL
/// whose user may create databases.
pub const POSTGRES_ENV: &str = "SKEIN_TEST_POSTGRES_URL";

/// A throwaway database on the server [`POSTGRES_ENV`] names, dropped by
/// [`PgDatabase::drop_now`] (tests call it at their end; a test that fails
/// first leaves it to the throwaway server's end).
#[derive(Debug)]
pub struct PgDatabase {
    /// The database's URL.
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// Creates a database with a random name. Fails, saying what to do,
    /// when no server is named: tests that need one run only when asked
    /// for, and asking without a server is a mistake to report, not a pass.
    pub async fn create() -> PgDatabase {
        use sqlx::Connection;
        let admin_url = match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => panic!(
                "this test needs a PostgreSQL server: set {POSTGRES_ENV} to a URL whose user may create databases \
                 (for example postgres://skein@127.0.0.1:5432/postgres), or run scripts/test, which starts a \
                 throwaway one"
            ),
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let name = format!("skein_test_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::postgres::PgConnection::connect(&admin_url).await.expect("connect to PostgreSQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        PgDatabase { url: with_database(&admin_url, &name), admin_url, name }
    }

    /// Ends every connection to the database that listens for
    /// notifications (`LISTEN`), as a database restart or a network cut
    /// would; returns how many.
    pub async fn cut_listeners(&self) -> usize {
        use sqlx::Connection;
        let mut admin = sqlx::postgres::PgConnection::connect(&self.admin_url).await.expect("connect to PostgreSQL");
        let cut: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE '%LISTEN%' \
             AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_all(&mut admin)
        .await
        .expect("end the listening connections");
        let _ = admin.close().await;
        cut.into_iter().filter(|(ok,)| *ok).count()
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop_now(self) {
        use sqlx::Connection;
        if let Ok(mut admin) = sqlx::postgres::PgConnection::connect(&self.admin_url).await {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
            let _ = admin.close().await;
        }
    }
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{db}?{query}"),
        None => format!("{base}/{db}"),
    }
}
