//! The tracker's persistent store: users, departments, sessions, devices,
//! admin events, the offline mailbox and organisation settings.
//!
//! One [`Store`] type serves both SQLite and PostgreSQL through sqlx's `Any`
//! driver, so every query is written once. The rules that make that work:
//!
//! - placeholders are `$1, $2, …` (sqlx-sqlite accepts `$N` as well);
//! - times are `BIGINT` milliseconds since the Unix epoch (`i64`);
//! - flags are `INTEGER` 0/1, decoded as `i64` (the `Any` driver does not
//!   decode SQLite integers as `bool`);
//! - binary values are `BLOB`/`BYTEA` (`Vec<u8>`);
//! - aggregates are `CAST(… AS BIGINT)` (PostgreSQL's `SUM` returns
//!   `NUMERIC`, which `Any` cannot decode);
//! - write transactions go through [`Store::begin_write`], which takes
//!   SQLite's write lock up front (`BEGIN IMMEDIATE`) so a concurrent
//!   writer, such as the admin CLI, waits on the busy timeout instead of
//!   failing with `SQLITE_BUSY` halfway through.
//!
//! The store takes plain byte arrays and integers, never wire types.

mod access;
mod app_pending;
mod apps;
mod departments;
mod devices;
mod error;
mod events;
mod groups;
pub mod listen;
mod mailbox;
mod migrate;
mod presence;
mod sessions;
mod settings;
mod trackers;
mod users;

pub use access::{AccessEnd, DeviceScope};
pub use app_pending::{MAX_PENDING_PER_USER, PendingApp};
pub use apps::{AppRecord, AuditRecord};
pub use departments::DeptRecord;
pub use devices::DeviceRecord;
pub use error::{StoreError, redact_url};
pub use events::{ADMIN_CHANNEL, AdminEvent, EVENT_GROUP_CHANGED};
pub use groups::{GroupKindRecord, GroupRecord, GroupStoreChange, department_group_id};
pub use mailbox::{MailRecord, MailboxLimits, SenderShare};
pub use migrate::CODE_VERSION;
pub use presence::{DEVICES_CHANNEL, MAIL_CHANNEL, PRESENCE_CHANNEL};
pub use sessions::{Issue, SessionRecord, SessionStart};
pub use trackers::{TRACKERS_CHANNEL, TrackerRecord};
pub use users::{NewUserRecord, UserRecord};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Connection, Transaction};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A local SQLite file (WAL mode).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Connection settings for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Most pooled connections.
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection, and how long
    /// opening waits for the first connection.
    pub acquire_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { max_connections: 8, acquire_timeout: Duration::from_secs(10) }
    }
}

impl StoreConfig {
    /// Sets the most pooled connections (at least 1).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets how long an operation waits for a pooled connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

/// A handle to the tracker's database. Cheap to clone; clones share one pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// How long SQLite waits for another connection's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

impl Store {
    /// Opens `sqlite://PATH` (created if missing) or `postgres://…` with
    /// default settings and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, &StoreConfig::default()).await
    }

    /// Opens the store with explicit connection settings.
    ///
    /// Safe to call from several processes at once: migrations run under
    /// SQLite's write lock or a PostgreSQL advisory lock.
    pub async fn open_with(url: &str, config: &StoreConfig) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url_redacted = redact_url(url);
        let backend =
            backend_of(url).ok_or_else(|| StoreError::UnsupportedUrl { url_redacted: url_redacted.clone() })?;
        let url = match backend {
            Backend::Sqlite => sqlite_url_with_create(url),
            Backend::Postgres => url.to_owned(),
        };
        let open_err = |source| StoreError::Open { url_redacted: url_redacted.clone(), source };
        let options = AnyConnectOptions::from_str(&url).map_err(open_err)?;

        // Migrate on a dedicated connection so a failure cannot leave a
        // pooled connection inside a transaction or holding a lock.
        let connect = sqlx::AnyConnection::connect_with(&options);
        let mut conn = match tokio::time::timeout(config.acquire_timeout, connect).await {
            Ok(conn) => conn.map_err(open_err)?,
            Err(_) => {
                let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting timed out");
                return Err(open_err(sqlx::Error::Io(timed_out)));
            }
        };
        if backend == Backend::Sqlite {
            configure_sqlite(&mut conn).await.map_err(open_err)?;
            enable_wal(&mut conn).await.map_err(open_err)?;
        }
        let migrated = migrate::run(&mut conn, backend).await;
        // Closing releases PostgreSQL's session advisory lock even when
        // sqlx bailed out before unlocking.
        let _ = conn.close().await;
        migrated?;

        let mut pool_options = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.acquire_timeout);
        if backend == Backend::Sqlite {
            // A local file needs no liveness check before each use; the
            // check is a round trip to the connection's worker thread.
            pool_options = pool_options.after_connect(configure_pooled_sqlite).test_before_acquire(false);
        }
        let pool = pool_options.connect_with(options).await.map_err(open_err)?;
        let store = Store { pool, backend };
        store.sync_department_groups().await?;
        Ok(store)
    }

    /// Gives every department its group (departments made before groups
    /// existed); a read when there is nothing to do.
    async fn sync_department_groups(&self) -> Result<(), StoreError> {
        let missing = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM departments d WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.dept_path = d.path)",
        )
        .fetch_one(&self.pool)
        .await?;
        if missing > 0 {
            let mut tx = self.begin_write().await?;
            groups::sync_department_groups(&mut tx, now_ms()).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The database kind behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every pooled connection; later operations fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The connection pool, for the store's modules.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock immediately (waiting up to the busy timeout), so it cannot fail
    /// later when upgrading from a read lock.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}

/// The backend a URL names, from its scheme.
fn backend_of(url: &str) -> Option<Backend> {
    let scheme = url.split(':').next()?.to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => Some(Backend::Sqlite),
        "postgres" | "postgresql" => Some(Backend::Postgres),
        _ => None,
    }
}

/// Adds `mode=rwc` (create if missing) to a SQLite URL unless it sets a mode.
fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}mode=rwc")
}

/// Per-connection SQLite settings (sqlx's defaults, made explicit).
async fn configure_sqlite(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Switches a SQLite database to WAL journaling (a persistent setting), so
/// readers do not block the writer and another process can write meanwhile.
///
/// Changing the journal mode needs an exclusive lock that SQLite's busy
/// timeout does not wait for, so retry for a bounded time when two
/// processes create the file at once.
async fn enable_wal(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    const ATTEMPTS: u32 = 50;
    let mut attempt = 0;
    loop {
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL").fetch_one(&mut *conn).await {
            Ok(mode) => {
                if !mode.eq_ignore_ascii_case("wal") {
                    tracing::warn!(%mode, "SQLite store is not in WAL mode (in-memory database?)");
                }
                return Ok(());
            }
            Err(e) if is_sqlite_busy(&e) && attempt < ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error is SQLite's `SQLITE_BUSY` (any extended variant).
fn is_sqlite_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i64>().ok()).is_some_and(|code| code & 0xff == 5),
        _ => false,
    }
}

/// [`configure_sqlite`] in the shape `after_connect` wants.
fn configure_pooled_sqlite(
    conn: &mut sqlx::AnyConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + '_>> {
    Box::pin(configure_sqlite(conn))
}

/// Milliseconds since the Unix epoch, for `created_at`/`updated_at` stamps.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX)
}

/// Escapes `\`, `%` and `_` for use in `LIKE … ESCAPE '\'`.
pub(crate) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Converts a stored blob into a fixed-size array.
pub(crate) fn fixed<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], StoreError> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| StoreError::Corrupt(format!("{what} has {len} bytes, expected {N}")))
}

/// Converts a stored 0/1 flag.
pub(crate) fn flag(value: i64) -> bool {
    value != 0
}

/// Converts a count or id that must not be negative.
pub(crate) fn non_negative(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is negative ({value})")))
}

#[cfg(test)]
mod tests {
    use super::{Backend, backend_of, escape_like, sqlite_url_with_create};

    #[test]
    fn backends_from_urls() {
        assert_eq!(backend_of("sqlite:///tmp/x.db"), Some(Backend::Sqlite));
        assert_eq!(backend_of("postgres://u@h/db"), Some(Backend::Postgres));
        assert_eq!(backend_of("postgresql://u@h/db"), Some(Backend::Postgres));
        assert_eq!(backend_of("mysql://u@h/db"), None);
    }

    #[test]
    fn sqlite_urls_create_files() {
        assert_eq!(sqlite_url_with_create("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db?mode=rwc");
        assert_eq!(
            sqlite_url_with_create("sqlite:///tmp/x.db?cache=shared"),
            "sqlite:///tmp/x.db?cache=shared&mode=rwc"
        );
        assert_eq!(sqlite_url_with_create("sqlite:///tmp/x.db?mode=ro"), "sqlite:///tmp/x.db?mode=ro");
    }

    #[test]
    fn like_escapes() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }
}
