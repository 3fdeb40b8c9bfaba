//! The organisation's identity as the store keeps it: its name and the
//! ed25519 key that signs device certificates.
//!
//! Both are created by whichever tracker first opens an empty store and are
//! shared by every tracker on that store, so redundant trackers issue
//! certificates that every node accepts.

use crate::store::{Store, StoreError};
use skein_certs::device::OrgSigningKey;

const NAME_KEY: &str = "org_name";
const SIGNING_KEY: &str = "org_signing_key";

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
    /// The stored signing key is not a valid key.
    #[error("the organisation signing key in the store is corrupt ({0}); restore the database from a backup")]
    CorruptKey(String),
}

impl Org {
    /// Loads the organisation, creating it with `default_name` if the store is new.
    pub async fn load_or_init(store: &Store, default_name: &str) -> Result<Org, OrgError> {
        let name = store.put_setting_if_absent(NAME_KEY, default_name.as_bytes()).await?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let fresh = OrgSigningKey::generate();
        let seed = store.put_setting_if_absent(SIGNING_KEY, &fresh.to_bytes()[..]).await?;
        let signing = OrgSigningKey::from_bytes(&seed).map_err(|e| OrgError::CorruptKey(e.to_string()))?;
        Ok(Org { name, signing })
    }
}
