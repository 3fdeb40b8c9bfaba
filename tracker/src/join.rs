//! Preparing the data directory of a further tracker of an organisation
//! (`skein-tracker run --join DIR`).
//!
//! Trackers of one organisation share its PostgreSQL database (users,
//! sessions, devices, groups, the mailbox, the list of trackers) and three
//! files that the database does not hold:
//!
//! - `ca.pem`, the organisation CA's certificate, which nodes trust;
//! - `org.key`, the key that signs device certificates at login: every
//!   tracker that logs devices in needs it (mode 0600 in a 0700 directory,
//!   readable by the account the tracker runs as and by root);
//! - `ca.key`, the CA's private key, used here once, to issue the new
//!   tracker's own TLS certificate for its own addresses. It is read from
//!   DIR and not copied: it stays wherever the administrator keeps it (the
//!   first tracker's data directory, or an offline copy), since a tracker
//!   needs it only to issue its certificate.
//!
//! DIR is the data directory of one of the organisation's trackers, or a
//! directory holding copies of those three files. Files already in the new
//! data directory must be the same as DIR's: a directory of another
//! organisation is refused, never overwritten.

use crate::config::TrackerConfig;
use skein_certs::OrgCa;
use skein_certs::files::{read_file, write_private, write_public};
use std::path::{Path, PathBuf};

/// What joining did.
#[derive(Debug, Default)]
pub struct JoinReport {
    /// Files copied from DIR.
    pub copied: Vec<PathBuf>,
    /// The tracker certificate was issued with these names.
    pub issued_cert: Option<Vec<String>>,
}

/// Why the directory could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The store is not PostgreSQL.
    #[error(
        "--join needs the organisation's PostgreSQL database (--database postgres://…): trackers share it, \
         while an SQLite store belongs to one tracker"
    )]
    NeedsPostgres,
    /// DIR is this tracker's own data directory.
    #[error("--join {0} names this tracker's own data directory; give it the data directory of another tracker")]
    SameDirectory(String),
    /// A file DIR must hold is not there.
    #[error(
        "{path} is missing: --join needs the data directory of one of the organisation's trackers, or a \
         directory holding copies of its ca.pem, ca.key and org.key ({why})"
    )]
    Missing {
        /// The file.
        path: String,
        /// What it is for.
        why: &'static str,
    },
    /// A file of the new data directory differs from DIR's.
    #[error(
        "{ours} differs from {theirs}: this data directory belongs to another organisation; use an empty \
         --data directory for the new tracker"
    )]
    Differs {
        /// The new data directory's file.
        ours: String,
        /// DIR's.
        theirs: String,
    },
    /// Reading, writing or issuing failed.
    #[error(transparent)]
    Certs(#[from] skein_certs::CertError),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Prepares `config.data_dir` for a tracker of the organisation whose
/// files are in `from`: copies `ca.pem` and `org.key`, and issues this
/// tracker's certificate with `from`'s CA key unless it has one.
pub fn prepare(config: &TrackerConfig, from: &Path) -> Result<JoinReport, JoinError> {
    let url = config.database_url();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(JoinError::NeedsPostgres);
    }
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| JoinError::DataDir { path: dir.display().to_string(), source })?;
    if let (Ok(a), Ok(b)) = (from.canonicalize(), dir.canonicalize())
        && a == b
    {
        return Err(JoinError::SameDirectory(from.display().to_string()));
    }
    let theirs = TrackerConfig::new(from);
    let mut report = JoinReport::default();
    let files = [
        (theirs.ca_cert_path(), config.ca_cert_path(), false, "the organisation CA's certificate"),
        (theirs.org_key_path(), config.org_key_path(), true, "the key that signs device certificates"),
    ];
    for (src, dst, private, why) in files {
        let bytes = read_required(&src, why)?;
        match std::fs::read(&dst) {
            Ok(have) if have == bytes => {}
            Ok(_) => {
                return Err(JoinError::Differs { ours: dst.display().to_string(), theirs: src.display().to_string() });
            }
            Err(_) => {
                if private {
                    write_private(&dst, &bytes, false)?;
                } else {
                    write_public(&dst, &bytes, false)?;
                }
                report.copied.push(dst);
            }
        }
    }
    let (cert, key) = (config.tracker_cert_path(), config.tracker_key_path());
    if !cert.exists() || !key.exists() {
        read_required(&theirs.ca_key_path(), "the CA's private key, to issue this tracker's certificate")?;
        let ca = OrgCa::load(&theirs.ca_cert_path(), &theirs.ca_key_path())?;
        let names = crate::init::certificate_names(config);
        ca.issue_tracker_cert(&names, crate::init::TRACKER_CERT_DAYS)?.save(&cert, &key, true)?;
        report.issued_cert = Some(names);
    }
    Ok(report)
}

fn read_required(path: &Path, why: &'static str) -> Result<Vec<u8>, JoinError> {
    if !path.exists() {
        return Err(JoinError::Missing { path: path.display().to_string(), why });
    }
    Ok(read_file("file", path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str = "postgres://skein@127.0.0.1/skein";

    /// A first tracker's files: its CA, its org key.
    fn first_tracker(dir: &Path) -> TrackerConfig {
        let c = TrackerConfig::new(dir);
        std::fs::create_dir_all(dir).expect("dir");
        let ca = OrgCa::generate("Org", 30).expect("ca");
        ca.save(&c.ca_cert_path(), &c.ca_key_path(), false).expect("save ca");
        write_private(&c.org_key_path(), b"seed", false).expect("org key");
        c
    }

    #[test]
    fn joining_copies_the_ca_certificate_and_org_key_and_issues_a_certificate_leaving_the_ca_key() {
        let (one, two) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let first = first_tracker(one.path());
        let mut second = TrackerConfig::new(two.path().join("data")).database(PG);
        second.public_addrs = vec!["198.18.0.2".into()];
        let report = prepare(&second, one.path()).expect("join");
        assert_eq!(report.copied, vec![second.ca_cert_path(), second.org_key_path()]);
        assert_eq!(
            report.issued_cert.as_deref(),
            Some(&["localhost".into(), "127.0.0.1".into(), "198.18.0.2".into()][..])
        );
        assert!(!second.ca_key_path().exists(), "the CA key is not copied");
        assert_eq!(std::fs::read(second.org_key_path()).expect("key"), b"seed");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(second.org_key_path()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The certificate chains to the organisation's CA.
        let now = time::OffsetDateTime::now_utc();
        skein_certs::verify_chain(&second.tracker_cert_path(), &first.ca_cert_path(), now).expect("issued by the CA");
        // Again: nothing to do.
        let again = prepare(&second, one.path()).expect("again");
        assert!(again.copied.is_empty() && again.issued_cert.is_none());
        // Once issued, the CA key is no longer needed.
        std::fs::remove_file(first.ca_key_path()).expect("rm");
        prepare(&second, one.path()).expect("without the CA key");
    }

    #[test]
    fn another_organisations_directory_an_sqlite_store_and_missing_files_are_refused() {
        let (one, two, other) =
            (tempfile::tempdir().expect("t"), tempfile::tempdir().expect("t"), tempfile::tempdir().expect("t"));
        first_tracker(one.path());
        let sqlite = TrackerConfig::new(two.path());
        assert!(matches!(prepare(&sqlite, one.path()), Err(JoinError::NeedsPostgres)));
        let second = TrackerConfig::new(two.path()).database(PG);
        assert!(matches!(prepare(&second, two.path()), Err(JoinError::SameDirectory(_))));
        let err = prepare(&second, other.path()).expect_err("an empty directory");
        assert!(err.to_string().contains("ca.pem is missing"), "{err}");
        // A data directory of another organisation.
        let theirs = first_tracker(&other.path().join("org2"));
        std::fs::copy(theirs.ca_cert_path(), second.ca_cert_path()).expect("copy");
        let err = prepare(&second, one.path()).expect_err("another CA");
        assert!(matches!(err, JoinError::Differs { .. }), "{err}");
        assert!(!second.org_key_path().exists(), "nothing more is written");
    }
}
