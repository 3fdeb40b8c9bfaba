//! The history's error type.
//!
//! Wrapping variants keep the underlying error as their `source()` rather
//! than repeating it in `Display`; print the whole chain (`{:#}` with
//! anyhow) to see the cause. Errors from opening name the file.

use std::path::PathBuf;

/// Why a history operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The history file could not be created or its permissions set.
    #[error("cannot create the history file {}: check that the profile directory is writable", path.display())]
    Create {
        /// The history file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// SQLite could not open the file or refused it as a database.
    #[error(
        "cannot open the history database {}: if it is corrupt, move it aside and Skein starts a new, empty history",
        path.display()
    )]
    Open {
        /// The history file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: sqlx::Error,
    },
    /// Bringing the schema up to date failed.
    #[error("cannot bring the history schema of {} up to date", path.display())]
    Migrate {
        /// The history file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The file was written by a newer Skein than this one.
    #[error(
        "the history {} has schema version {db_version} but this build only knows up to {code_version}: run a newer Skein",
        path.display()
    )]
    TooNew {
        /// The history file.
        path: PathBuf,
        /// Highest migration applied to the file.
        db_version: i64,
        /// Highest migration this build knows.
        code_version: i64,
    },
    /// An argument is unusable, such as an unknown delivery path.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A stored value has an impossible shape, such as a 15-byte message id.
    #[error("corrupt history data: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("history database operation failed")]
    Database(#[from] sqlx::Error),
    /// A statement shared with other operations failed as a whole.
    #[error("storing in the history failed: {0}")]
    Shared(String),
}
