//! Organisation-wide key/value settings, such as the organisation's name
//! and the public half of its signing key. Values are opaque bytes. No
//! secret belongs here: anyone with a copy of the database can read them.

use super::{Store, StoreError};

impl Store {
    /// The value stored under `key`, if any.
    pub async fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = sqlx::query_scalar::<_, Vec<u8>>("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        Ok(value)
    }

    /// Stores `value` under `key` unless a value is already there, and
    /// returns whichever value is stored afterwards. When several processes
    /// race to create, say, the org signing key, all of them get the winner's.
    pub async fn put_setting_if_absent(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(self.pool())
            .await?;
        self.get_setting(key)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("setting {key} vanished right after it was stored")))
    }

    /// Deletes the value under `key`; returns whether there was one.
    pub async fn delete_setting(&self, key: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM settings WHERE key = $1").bind(key).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }
}
