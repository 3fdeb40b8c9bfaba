//! The organisation's identity: its name, kept in the store, and the
//! ed25519 key that signs device certificates, kept out of it.
//!
//! The signing key lives beside the CA key, in `DATA/org.key` (mode 0600),
//! so a copy of the database (a backup, a replica) cannot mint device
//! certificates. The store keeps only its public half, which makes every
//! tracker on one store check that it holds the same key: a second tracker
//! receives `org.key` the way it receives the CA key, by copying it from
//! the first tracker's data directory.
//!
//! Installations that kept the key in the store (`settings`) move it out
//! on start: the key is written to `org.key`, then deleted from the store.

use crate::store::{Store, StoreError};
use skein_certs::device::OrgSigningKey;
use std::path::Path;

const NAME_KEY: &str = "org_name";
/// Where versions before this one kept the private key, in the store.
const LEGACY_SIGNING_KEY: &str = "org_signing_key";
/// The public half, so trackers sharing a store agree on one key.
pub(crate) const PUBLIC_KEY: &str = "org_signing_public";

/// The organisation.
#[derive(Debug, Clone)]
pub struct Org {
    /// Organisation name.
    pub name: String,
    /// Signs device certificates.
    pub signing: OrgSigningKey,
}

/// Why the organisation could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrgError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key file could not be read or written.
    #[error(transparent)]
    File(#[from] skein_certs::CertError),
    /// The key stored by an earlier version is not a valid key.
    #[error("the organisation signing key in the store is corrupt ({0}); restore the database from a backup")]
    CorruptKey(String),
    /// This tracker's key is not the one the store's organisation uses.
    #[error(
        "{path} is not the organisation signing key this store was set up with; copy org.key (with ca.pem and ca.key) from the data directory of the organisation's first tracker"
    )]
    WrongKey {
        /// The key file.
        path: String,
    },
}

impl Org {
    /// Loads the organisation, creating it with `default_name` and a new
    /// key at `key_path` if the store is new, and moving a key an earlier
    /// version kept in the store out to `key_path`.
    pub async fn load_or_init(store: &Store, default_name: &str, key_path: &Path) -> Result<Org, OrgError> {
        let name = store.put_setting_if_absent(NAME_KEY, default_name.as_bytes()).await?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let legacy = match store.get_setting(LEGACY_SIGNING_KEY).await? {
            Some(seed) => Some(OrgSigningKey::from_bytes(&seed).map_err(|e| OrgError::CorruptKey(e.to_string()))?),
            None => None,
        };
        let signing = if key_path.exists() {
            OrgSigningKey::load(key_path)?
        } else {
            let key = legacy.clone().unwrap_or_else(OrgSigningKey::generate);
            key.save(key_path, false)?;
            key
        };
        if legacy.is_some_and(|l| l.public() != signing.public()) {
            return Err(OrgError::WrongKey { path: key_path.display().to_string() });
        }
        let public = store.put_setting_if_absent(PUBLIC_KEY, &signing.public().0).await?;
        if public != signing.public().0 {
            return Err(OrgError::WrongKey { path: key_path.display().to_string() });
        }
        if store.delete_setting(LEGACY_SIGNING_KEY).await? {
            tracing::info!(path = %key_path.display(), "moved the organisation signing key out of the store");
        }
        Ok(Org { name, signing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &Path) -> Store {
        Store::open(&crate::config::sqlite_url(dir)).await.expect("store")
    }

    #[tokio::test]
    async fn the_key_lives_in_a_private_file_and_the_store_holds_only_its_public_half() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path()).await;
        let path = dir.path().join("org.key");
        let org = Org::load_or_init(&s, "Acme", &path).await.expect("new organisation");
        let mode = std::fs::metadata(&path).expect("org.key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(s.get_setting(LEGACY_SIGNING_KEY).await.expect("store"), None);
        assert_eq!(s.get_setting(PUBLIC_KEY).await.expect("store"), Some(org.signing.public().0.to_vec()));
        let again = Org::load_or_init(&s, "ignored", &path).await.expect("restart");
        assert_eq!(again.signing.public(), org.signing.public());
        assert_eq!(again.name, "Acme");
    }

    #[tokio::test]
    async fn a_key_kept_in_the_store_by_an_earlier_version_moves_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path()).await;
        let old = OrgSigningKey::generate();
        s.put_setting_if_absent(LEGACY_SIGNING_KEY, &old.to_bytes()[..]).await.expect("legacy key");
        let path = dir.path().join("org.key");
        let org = Org::load_or_init(&s, "Acme", &path).await.expect("migrated");
        assert_eq!(org.signing.public(), old.public(), "certificates already issued stay valid");
        assert_eq!(OrgSigningKey::load(&path).expect("file").public(), old.public());
        assert_eq!(s.get_setting(LEGACY_SIGNING_KEY).await.expect("store"), None, "no longer in the store");
    }

    #[tokio::test]
    async fn a_tracker_with_another_key_refuses_to_start_and_says_what_to_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path()).await;
        Org::load_or_init(&s, "Acme", &dir.path().join("org.key")).await.expect("first tracker");
        let second = tempfile::tempdir().expect("tempdir");
        let e = Org::load_or_init(&s, "Acme", &second.path().join("org.key")).await.expect_err("a stranger's key");
        assert!(matches!(e, OrgError::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains("copy org.key"), "{e}");
    }
}
