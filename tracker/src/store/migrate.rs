//! Schema migrations, embedded in the binary.
//!
//! Each backend has its own directory (`tracker/migrations/sqlite/`,
//! `tracker/migrations/postgres/`) with the same numbered files. They run
//! through sqlx's [`Migrator`], which records applied versions and their
//! checksums in `_sqlx_migrations` and refuses edited migrations.
//!
//! Concurrent opens are serialised: on PostgreSQL sqlx holds an advisory
//! lock while migrating; on SQLite (where sqlx takes no lock) the whole run
//! happens inside one `BEGIN IMMEDIATE` transaction, and sqlx's per-migration
//! transactions become savepoints within it.

use super::{Backend, StoreError};
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, Connection, SqlSafeStr};

/// One embedded migration file.
struct Embedded {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

const SQLITE: &[Embedded] = &[
    Embedded { version: 1, description: "init", sql: include_str!("../../migrations/sqlite/0001_init.sql") },
    Embedded { version: 2, description: "trust", sql: include_str!("../../migrations/sqlite/0002_trust.sql") },
    Embedded { version: 3, description: "groups", sql: include_str!("../../migrations/sqlite/0003_groups.sql") },
    Embedded { version: 4, description: "trackers", sql: include_str!("../../migrations/sqlite/0004_trackers.sql") },
    Embedded { version: 5, description: "presence", sql: include_str!("../../migrations/sqlite/0005_presence.sql") },
    Embedded { version: 6, description: "apps", sql: include_str!("../../migrations/sqlite/0006_apps.sql") },
    Embedded { version: 7, description: "app mail", sql: include_str!("../../migrations/sqlite/0007_app_mail.sql") },
    Embedded { version: 8, description: "hooks", sql: include_str!("../../migrations/sqlite/0008_hooks.sql") },
    Embedded {
        version: 9,
        description: "app pending",
        sql: include_str!("../../migrations/sqlite/0009_app_pending.sql"),
    },
    Embedded {
        version: 10,
        description: "idempotency",
        sql: include_str!("../../migrations/sqlite/0010_idempotency.sql"),
    },
];

const POSTGRES: &[Embedded] = &[
    Embedded { version: 1, description: "init", sql: include_str!("../../migrations/postgres/0001_init.sql") },
    Embedded { version: 2, description: "trust", sql: include_str!("../../migrations/postgres/0002_trust.sql") },
    Embedded { version: 3, description: "groups", sql: include_str!("../../migrations/postgres/0003_groups.sql") },
    Embedded { version: 4, description: "trackers", sql: include_str!("../../migrations/postgres/0004_trackers.sql") },
    Embedded { version: 5, description: "presence", sql: include_str!("../../migrations/postgres/0005_presence.sql") },
    Embedded { version: 6, description: "apps", sql: include_str!("../../migrations/postgres/0006_apps.sql") },
    Embedded { version: 7, description: "app mail", sql: include_str!("../../migrations/postgres/0007_app_mail.sql") },
    Embedded { version: 8, description: "hooks", sql: include_str!("../../migrations/postgres/0008_hooks.sql") },
    Embedded {
        version: 9,
        description: "app pending",
        sql: include_str!("../../migrations/postgres/0009_app_pending.sql"),
    },
    Embedded {
        version: 10,
        description: "idempotency",
        sql: include_str!("../../migrations/postgres/0010_idempotency.sql"),
    },
];

/// The newest schema version this build knows.
pub const CODE_VERSION: i64 = 10;

/// The migrator for one backend.
fn migrator(backend: Backend) -> Migrator {
    let files = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    Migrator::with_migrations(
        files
            .iter()
            .map(|m| {
                Migration::new(m.version, m.description.into(), MigrationType::Simple, m.sql.into_sql_str(), false)
            })
            .collect(),
    )
}

/// Brings the schema up to date on `conn`, a connection outside the pool.
///
/// Uses `Migrator::run_direct` (public, doc-hidden) rather than `run`:
/// `run`'s generic `Acquire<'a>` bound makes the calling future fail the
/// `Send` check ("implementation of `Acquire` is not general enough"), so
/// `Store::open` could not be spawned. sqlx keeps `run_direct` for exactly
/// this reason.
pub(super) async fn run(conn: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    let migrator = migrator(backend);
    match backend {
        Backend::Sqlite => {
            let mut tx =
                conn.begin_with("BEGIN IMMEDIATE").await.map_err(|e| StoreError::Migrate(MigrateError::Execute(e)))?;
            match migrator.run_direct(None, &mut *tx, false).await {
                Ok(()) => tx.commit().await.map_err(|e| StoreError::Migrate(MigrateError::Execute(e))),
                Err(err) => Err(classify(err, &mut tx).await),
            }
        }
        Backend::Postgres => match migrator.run_direct(None, &mut *conn, false).await {
            Ok(()) => Ok(()),
            Err(err) => Err(classify(err, conn).await),
        },
    }
}

/// Turns "the database has a migration this build lacks" into
/// [`StoreError::TooNew`] when that migration is newer than this build.
async fn classify(err: MigrateError, conn: &mut AnyConnection) -> StoreError {
    if let MigrateError::VersionMissing(version) = err
        && version > CODE_VERSION
    {
        let db_version = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await
            .ok()
            .flatten()
            .unwrap_or(version);
        return StoreError::TooNew { db_version, code_version: CODE_VERSION };
    }
    StoreError::Migrate(err)
}

#[cfg(test)]
mod tests {
    use super::{CODE_VERSION, POSTGRES, SQLITE};

    #[test]
    fn both_backends_have_the_same_versions() {
        let sqlite: Vec<i64> = SQLITE.iter().map(|m| m.version).collect();
        let postgres: Vec<i64> = POSTGRES.iter().map(|m| m.version).collect();
        assert_eq!(sqlite, postgres);
        let expected: Vec<i64> = (1..=CODE_VERSION).collect();
        assert_eq!(sqlite, expected, "versions must be 1..=CODE_VERSION without gaps");
    }
}
