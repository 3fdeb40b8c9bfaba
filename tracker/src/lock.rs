//! One tracker per data directory, and per SQLite store.
//!
//! A data directory holds one tracker's certificate and its relay's
//! identity, and an SQLite store is one tracker's: two trackers on either
//! would answer as the same relay, or write one file from two processes
//! that each think they alone know who is online. So a tracker takes an
//! operating-system lock on `tracker.lock` in its data directory, and in
//! the directory of its SQLite file when that lies elsewhere, before it
//! touches anything; a second one is refused and told who holds it. The
//! lock ends with the process however that ends; the file only says who
//! holds it. Admin commands take no lock: they work beside a running
//! tracker, through the store's own locking.

use skein_certs::files::{LockFailure, lock_file, say_holder};
use std::path::{Path, PathBuf};

/// The lock file's name in a locked directory.
pub const LOCK_FILE: &str = "tracker.lock";

/// Why a directory could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another tracker serves the directory.
    #[error(
        "{} is already served by another tracker ({holder}); stop that one first, or give this tracker a \
         data directory of its own with --data (several trackers of one organisation share a PostgreSQL \
         database: see `skein-tracker run --join`)",
        .dir.display()
    )]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// Who holds it, as its lock file says.
        holder: String,
    },
    /// The lock file could not be opened or written.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The directories a running tracker holds; dropping it lets them go.
#[derive(Debug)]
pub struct DataLock {
    files: Vec<std::fs::File>,
}

impl DataLock {
    /// Takes `data_dir`, and the directory of `sqlite_file` when given and
    /// elsewhere, for the tracker described by `holder`.
    pub fn take(data_dir: &Path, sqlite_file: Option<&Path>, holder: &str) -> Result<DataLock, LockError> {
        let mut dirs = vec![data_dir.to_path_buf()];
        if let Some(dir) = sqlite_file.and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()) {
            let same = match (dir.canonicalize(), data_dir.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => dir == data_dir,
            };
            if !same {
                dirs.push(dir.to_path_buf());
            }
        }
        let files = dirs.iter().map(|d| lock_dir(d, holder)).collect::<Result<Vec<_>, _>>()?;
        Ok(DataLock { files })
    }

    /// Says who holds the directories from now on (once the tracker knows
    /// the address it bound, say); a failure to say so only leaves the
    /// older words.
    pub fn say(&mut self, holder: &str) {
        for f in &mut self.files {
            let _ = say_holder(f, holder);
        }
    }
}

fn lock_dir(dir: &Path, holder: &str) -> Result<std::fs::File, LockError> {
    let path = dir.join(LOCK_FILE);
    std::fs::create_dir_all(dir).map_err(|source| LockError::Io {
        action: "create the directory of",
        path: path.clone(),
        source,
    })?;
    lock_file(&path, holder).map_err(|e| match e {
        LockFailure::Held(text) => {
            let holder = if text.is_empty() { "a tracker starting up".to_owned() } else { text };
            LockError::InUse { dir: dir.to_path_buf(), holder }
        }
        LockFailure::Io(action, source) => LockError::Io { action, path, source },
    })
}

/// The file of an `sqlite://` store URL, if it is one.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_tracker_on_a_directory_is_refused_and_told_who_has_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DataLock::take(dir.path(), None, "skein-tracker on UDP 127.0.0.1:7400").expect("first");
        let err = DataLock::take(dir.path(), None, "skein-tracker on UDP 127.0.0.1:7410").expect_err("second");
        let msg = err.to_string();
        assert!(msg.contains("already served by another tracker (skein-tracker on UDP 127.0.0.1:7400, pid"), "{msg}");
        assert!(msg.contains("--join"), "{msg}");
        let mut first = first;
        first.say("skein-tracker serving UDP 127.0.0.1:7400");
        let err = DataLock::take(dir.path(), None, "third").expect_err("still held");
        assert!(err.to_string().contains("(skein-tracker serving UDP 127.0.0.1:7400, pid"), "{err}");
        drop(first);
        DataLock::take(dir.path(), None, "again").expect("free once the first let go");
    }

    #[test]
    fn an_sqlite_store_elsewhere_is_locked_too() {
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let db = a.path().join("tracker.db");
        let _first = DataLock::take(a.path(), None, "first").expect("first");
        let err = DataLock::take(b.path(), Some(&db), "second").expect_err("the store's directory is taken");
        assert!(matches!(err, LockError::InUse { ref dir, .. } if dir == a.path()), "{err}");
        // The same directory named twice is locked once.
        let c = tempfile::tempdir().expect("tempdir");
        DataLock::take(c.path(), Some(&c.path().join("tracker.db")), "alone").expect("one directory");
    }

    #[test]
    fn store_urls_name_their_sqlite_file() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/t/tracker.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/t/tracker.db"))
        );
        assert_eq!(sqlite_file("sqlite:t.db"), Some(PathBuf::from("t.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
