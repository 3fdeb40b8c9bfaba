//! The node's local message history, in SQLite (`PROFILE/history.db`).
//!
//! [`History`] owns a small sqlx [`SqlitePool`] over one file, private to
//! the user (mode 0600), in WAL mode so the daemon and a CLI command can
//! read while the other writes. Writes take SQLite's write lock up front
//! (`BEGIN IMMEDIATE`) and wait on a busy timeout rather than failing
//! halfway; commits are not flushed to disk one by one (`synchronous =
//! NORMAL`), which survives a crash of the process but not necessarily a
//! power cut. The schema is versioned ([`migrate`]).
//!
//! - [`messages`](History::messages) stores sent and received messages;
//!   a message id is stored at most once, so a redelivered message is seen
//!   by the user exactly once.
//! - [`files`](History::files) keeps file offers both ways and how far
//!   each transfer got; reactions are kept per message, user and emoji.
//! - [`conversations`](History::conversations) lists conversations with
//!   their unread counts; [`conversation_of`] names a message's
//!   conversation.
//! - [`search`](History::search) finds messages by what they say, through
//!   a full-text index the schema keeps up to date (see [`search`](mod@search)).
//!
//! Times are milliseconds since the Unix epoch. Values above `i64::MAX`
//! (only a broken or hostile sender's clock) are stored as `i64::MAX`.

mod batch;
mod conversations;
mod error;
mod files;
mod messages;
mod migrate;
mod muted;
pub mod search;
#[cfg(test)]
mod tests;

pub use conversations::{ConversationEvent, ConversationSummary, conversation_of};
pub use error::HistoryError;
pub use files::{FileRow, OfferState, TargetRow};
pub use messages::{MemberState, OutState, StoredMessage};
pub use migrate::CODE_VERSION;
pub use search::SearchHit;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, Sqlite, SqliteConnection, Transaction};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a write waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an operation waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most pooled connections (SQLite has one writer at a time anyway).
const MAX_CONNECTIONS: u32 = 4;

/// How a message reached this device, as stored in its `path` column.
pub const DELIVERY_PATHS: [&str; 3] = ["direct", "relayed", "mailbox"];

/// A handle to the local history. Cheap to clone; clones share one pool.
#[derive(Debug, Clone)]
pub struct History {
    /// Reads.
    pool: SqlitePool,
    /// Writes, on one connection: SQLite has one writer, and writers queued
    /// here wait their turn without polling, where pooled writers contending
    /// for the file's lock sleep in SQLite's busy handler (tens of ms each
    /// under load).
    writer: SqlitePool,
    /// New messages and state moves, many to a statement through `writer`.
    batch: batch::Writer,
    /// The muted conversations, as last read.
    muted: muted::Muted,
    path: PathBuf,
    /// Held by every clone; the checkpointing task stops when none is left.
    _alive: std::sync::Arc<()>,
}

impl History {
    /// Opens the history file at `path`, creating it (and its directory) if
    /// missing, and brings its schema up to date.
    ///
    /// Safe to call from several processes at once: the journal-mode switch
    /// is retried and migrations run under SQLite's write lock.
    pub async fn open(path: &Path) -> Result<History, HistoryError> {
        create_private_file(path).await?;
        let open_err = |source| HistoryError::Open { path: path.to_owned(), source };
        // In WAL mode, NORMAL syncs at checkpoints rather than on every
        // commit: a crash of the process loses nothing and the file stays
        // consistent; only a power cut can lose the last moments. Syncing
        // every commit cost a disk flush per message sent and received.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);

        // Prepare on a dedicated connection so a failure cannot leave a
        // pooled connection inside a transaction.
        let mut conn = SqliteConnection::connect_with(&options).await.map_err(open_err)?;
        let prepared = match enable_wal(&mut conn).await {
            Ok(()) => migrate::run(&mut conn, path).await,
            Err(e) => Err(open_err(e)),
        };
        let _ = conn.close().await;
        prepared?;

        // A local file needs no liveness check before each use; the check
        // is a round trip to the connection's worker thread per query.
        let pool_of = |connections, options: SqliteConnectOptions| {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
        };
        let pool = pool_of(MAX_CONNECTIONS, options.clone()).await.map_err(open_err)?;
        // The writer does not checkpoint the log as it commits (SQLite's
        // default, every 1000 pages): a checkpoint syncs the file, and the
        // commit that ran into it, and every write queued behind it, waited
        // for the disk. A task checkpoints from a reading connection instead,
        // beside the writer.
        let writer = pool_of(1, options.pragma("wal_autocheckpoint", "0")).await.map_err(open_err)?;
        let alive = std::sync::Arc::new(());
        let weak = std::sync::Arc::downgrade(&alive);
        tokio::spawn(every(CHECKPOINT_EVERY, pool.clone(), weak.clone(), "checkpoint the history's log", checkpoint));
        let index = |writer| async move { search::index_new(&writer).await.map(drop) };
        tokio::spawn(every(search::INDEX_EVERY, writer.clone(), weak, "add new messages to the search index", index));
        let batch = batch::Writer::spawn(writer.clone());
        Ok(History { pool, writer, batch, muted: muted::Muted::default(), path: path.to_owned(), _alive: alive })
    }

    /// The history file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every pooled connection; later operations fail.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Starts a transaction holding SQLite's write lock (waiting up to the
    /// busy timeout for it), so it cannot fail later on lock upgrade.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }
}

/// Creates `path` (and its parent directories) if missing, readable and
/// writable by the user only, and tightens the mode of an existing file.
async fn create_private_file(path: &Path) -> Result<(), HistoryError> {
    let create_err = |source| HistoryError::Create { path: path.to_owned(), source };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await.map_err(create_err)?;
    }
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    options.mode(0o600);
    let file = options.open(path).await.map_err(create_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).await.map_err(create_err)?;
    }
    drop(file);
    Ok(())
}

/// Switches the file to WAL journaling (a persistent setting).
///
/// Changing the journal mode needs an exclusive lock that SQLite's busy
/// timeout does not wait for, so retry for a bounded time when two
/// processes create the file at once.
async fn enable_wal(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    const ATTEMPTS: u32 = 50;
    let mut attempt = 0;
    loop {
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL").fetch_one(&mut *conn).await {
            Ok(mode) => {
                if !mode.eq_ignore_ascii_case("wal") {
                    tracing::warn!(%mode, "history database is not in WAL mode");
                }
                return Ok(());
            }
            Err(e) if is_busy(&e) && attempt < ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error is SQLite's `SQLITE_BUSY` (any extended variant).
fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i64>().ok()).is_some_and(|code| code & 0xff == 5),
        _ => false,
    }
}

/// Checks a delivery path against [`DELIVERY_PATHS`].
fn delivery_path(path: &str) -> Result<&str, HistoryError> {
    if DELIVERY_PATHS.contains(&path) {
        Ok(path)
    } else {
        Err(HistoryError::InvalidInput(format!("unknown delivery path {path:?}: expected one of {DELIVERY_PATHS:?}")))
    }
}

/// A time for the database, saturating at `i64::MAX`.
fn db_time(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A stored time, which must not be negative.
fn stored_time(ms: i64, what: &str) -> Result<u64, HistoryError> {
    u64::try_from(ms).map_err(|_| HistoryError::Corrupt(format!("{what} is negative ({ms})")))
}

/// Now, for the database.
fn now_db() -> i64 {
    db_time(crate::now_ms())
}

/// Converts a stored blob into a fixed-size array.
fn fixed<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], HistoryError> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| HistoryError::Corrupt(format!("{what} has {len} bytes, expected {N}")))
}

/// How often the log is checkpointed into the history file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Checkpoints the log into the file now and then, without blocking the
/// writer (`PASSIVE`: it copies what no reader still needs, and the writer
/// goes on appending meanwhile).
async fn checkpoint(pool: SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await.map(drop)
}

/// Runs `work` (`what` it does, for the log) on `pool` every `period` until
/// the history is closed or dropped.
async fn every<F, Fut>(
    period: std::time::Duration,
    pool: SqlitePool,
    alive: std::sync::Weak<()>,
    what: &'static str,
    work: F,
) where
    F: Fn(SqlitePool) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    loop {
        tokio::time::sleep(period).await;
        if pool.is_closed() || alive.strong_count() == 0 {
            return;
        }
        if let Err(e) = work(pool.clone()).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "cannot {what} now; trying again in {period:?}");
        }
    }
}
