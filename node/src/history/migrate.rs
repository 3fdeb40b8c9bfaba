//! Schema migrations of the history, embedded in the binary.
//!
//! The numbered files in `node/migrations/history/` run through sqlx's
//! [`Migrator`], which records applied versions and their checksums in
//! `_sqlx_migrations` and refuses edited migrations. SQLite gives sqlx no
//! lock to take, so the whole run happens inside one `BEGIN IMMEDIATE`
//! transaction (sqlx's per-migration transactions become savepoints in it):
//! two processes opening a fresh history at once migrate one after the other.

use super::HistoryError;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::{Connection, SqlSafeStr, SqliteConnection};
use std::path::Path;

/// One embedded migration file.
struct Embedded {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Embedded] = &[
    Embedded { version: 1, description: "init", sql: include_str!("../../migrations/history/0001_init.sql") },
    Embedded {
        version: 2,
        description: "files reactions",
        sql: include_str!("../../migrations/history/0002_files_reactions.sql"),
    },
    Embedded {
        version: 3,
        description: "conversation trigger",
        sql: include_str!("../../migrations/history/0003_conversation_trigger.sql"),
    },
    Embedded {
        version: 4,
        description: "group order",
        sql: include_str!("../../migrations/history/0004_group_order.sql"),
    },
    Embedded { version: 5, description: "muted", sql: include_str!("../../migrations/history/0005_muted.sql") },
    Embedded {
        version: 6,
        description: "member states",
        sql: include_str!("../../migrations/history/0006_member_states.sql"),
    },
    Embedded {
        version: 7,
        description: "conversation events",
        sql: include_str!("../../migrations/history/0007_conversation_events.sql"),
    },
    Embedded { version: 8, description: "group seq", sql: include_str!("../../migrations/history/0008_group_seq.sql") },
    Embedded { version: 9, description: "search", sql: include_str!("../../migrations/history/0009_search.sql") },
    Embedded {
        version: 10,
        description: "search later",
        sql: include_str!("../../migrations/history/0010_search_later.sql"),
    },
];

/// The newest schema version this build knows.
pub const CODE_VERSION: i64 = 10;

fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|m| {
                Migration::new(m.version, m.description.into(), MigrationType::Simple, m.sql.into_sql_str(), false)
            })
            .collect(),
    )
}

/// Brings the schema of the history at `path` up to date on `conn`, a
/// connection outside the pool.
///
/// Uses `Migrator::run_direct` (public, doc-hidden) rather than `run`:
/// `run`'s generic `Acquire<'a>` bound makes the calling future fail the
/// `Send` check, so `History::open` could not be spawned.
pub(super) async fn run(conn: &mut SqliteConnection, path: &Path) -> Result<(), HistoryError> {
    let migrate_err = |source| HistoryError::Migrate { path: path.to_owned(), source };
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(|e| migrate_err(MigrateError::Execute(e)))?;
    match migrator().run_direct(None, &mut *tx, false).await {
        Ok(()) => tx.commit().await.map_err(|e| migrate_err(MigrateError::Execute(e))),
        Err(MigrateError::VersionMissing(version)) if version > CODE_VERSION => {
            let db_version = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_one(&mut *tx)
                .await
                .ok()
                .flatten()
                .unwrap_or(version);
            Err(HistoryError::TooNew { path: path.to_owned(), db_version, code_version: CODE_VERSION })
        }
        Err(err) => Err(migrate_err(err)),
    }
}

/// Brings a new history at `path` only up to `version`, as an older build
/// would have left it, so tests can see what later migrations do to it.
#[cfg(test)]
pub(super) async fn run_up_to(path: &Path, version: i64) -> Result<(), MigrateError> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).create_if_missing(true);
    let mut conn = SqliteConnection::connect_with(&options).await.map_err(MigrateError::Execute)?;
    let done = migrator().run_direct(Some(version), &mut conn, false).await;
    let _ = conn.close().await;
    done
}

#[cfg(test)]
mod tests {
    use super::{CODE_VERSION, MIGRATIONS};

    #[test]
    fn versions_are_contiguous() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        let expected: Vec<i64> = (1..=CODE_VERSION).collect();
        assert_eq!(versions, expected, "versions must be 1..=CODE_VERSION without gaps");
    }
}
