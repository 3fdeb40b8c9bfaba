//! Ending access: what a logout, a password change or reset, a disabled
//! account or a revoked device does to the store, in one transaction.
//!
//! Ending a session is not enough: a device's certificate would still open
//! the relay and its peers' doors until it expired. So the same
//! transaction revokes the sessions in scope, ends the certificates of the
//! devices in scope (their expiry becomes the moment of the change, which
//! is also how the admin event names them), bumps the user's session epoch
//! when all sessions end (so a login that checked its password before the
//! change is refused when it is stored), and records the admin event every
//! tracker acts on (see `admin_watch.rs`).

use super::events::{Concerning, insert_event};
use super::{AdminEvent, Store, StoreError, fixed};
use std::collections::HashSet;

/// Which of a user's devices lose access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceScope {
    /// Every device.
    All,
    /// Every device but this one (a password changed from it).
    AllBut([u8; 16]),
    /// This device only (a logout, a revoked device).
    One([u8; 16]),
}

/// One change that ends access.
#[derive(Debug, Clone)]
pub struct AccessEnd {
    /// The user concerned.
    pub user_id: i64,
    /// Whose devices lose access.
    pub scope: DeviceScope,
    /// The admin event kind to record.
    pub kind: &'static str,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// A new password hash to store with the change. One the user chose
    /// clears the mark of a one-time password.
    pub password_hash: Option<String>,
    /// Disable the account.
    pub disable: bool,
    /// Revoke the device for good (only with [`DeviceScope::One`]).
    pub revoke_device: bool,
}

impl AccessEnd {
    /// A change of `kind` to `scope` at `at_ms` and nothing else.
    pub fn new(user_id: i64, scope: DeviceScope, kind: &'static str, at_ms: i64) -> Self {
        Self { user_id, scope, kind, at_ms, password_hash: None, disable: false, revoke_device: false }
    }
}

impl Store {
    /// Applies `end` in one transaction; returns the admin event it
    /// recorded. Fails with [`StoreError::NotFound`] when the user, or the
    /// device to revoke, does not exist.
    pub async fn end_access(&self, end: AccessEnd) -> Result<AdminEvent, StoreError> {
        let mut tx = self.begin_write().await?;
        let (op, device) = match end.scope {
            DeviceScope::All => ("", None),
            DeviceScope::AllBut(d) => ("<>", Some(d)),
            DeviceScope::One(d) => ("=", Some(d)),
        };
        // The user row first: a login being stored for this user waits for
        // this change, or this change waits for it (see `sessions.rs`).
        let epoch_bump = if matches!(end.scope, DeviceScope::One(_)) { 0 } else { 1 };
        let user = sqlx::query(
            "UPDATE users SET session_epoch = session_epoch + $1, \
               disabled = CASE WHEN $2 = 1 THEN 1 ELSE disabled END, \
               password_hash = COALESCE($3, password_hash), updated_at_ms = $4, \
               must_change_password = CASE WHEN $3 IS NULL THEN must_change_password ELSE 0 END \
             WHERE id = $5",
        )
        .bind(epoch_bump)
        .bind(i64::from(end.disable))
        .bind(end.password_hash.as_deref())
        .bind(end.at_ms)
        .bind(end.user_id)
        .execute(&mut *tx)
        .await?;
        if user.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no user with id {}", end.user_id)));
        }
        if end.revoke_device {
            let d = device.ok_or_else(|| StoreError::InvalidInput("revoking needs one device".into()))?;
            let hit = sqlx::query("UPDATE devices SET revoked = 1 WHERE user_id = $1 AND device_id = $2")
                .bind(end.user_id)
                .bind(&d[..])
                .execute(&mut *tx)
                .await?;
            if hit.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("the user has no device {}", hex::encode(d))));
            }
        }
        let session_sql = match device {
            Some(_) => {
                format!("UPDATE sessions SET revoked = 1 WHERE user_id = $1 AND revoked = 0 AND device_id {op} $2")
            }
            None => "UPDATE sessions SET revoked = 1 WHERE user_id = $1 AND revoked = 0".to_owned(),
        };
        let cert_sql = match device {
            Some(_) => format!(
                "UPDATE devices SET cert_expires_at_ms = $2 \
                 WHERE user_id = $1 AND cert_expires_at_ms > $2 AND device_id {op} $3"
            ),
            None => {
                "UPDATE devices SET cert_expires_at_ms = $2 WHERE user_id = $1 AND cert_expires_at_ms > $2".to_owned()
            }
        };
        let revoke_sessions = sqlx::query(sqlx::AssertSqlSafe(session_sql)).bind(end.user_id);
        let end_certs = sqlx::query(sqlx::AssertSqlSafe(cert_sql)).bind(end.user_id).bind(end.at_ms);
        match device {
            Some(d) => {
                revoke_sessions.bind(d.to_vec()).execute(&mut *tx).await?;
                end_certs.bind(d.to_vec()).execute(&mut *tx).await?;
            }
            None => {
                revoke_sessions.execute(&mut *tx).await?;
                end_certs.execute(&mut *tx).await?;
            }
        }
        // The event names a device only when it concerns that one alone.
        let named = if let DeviceScope::One(d) = end.scope { Some(d) } else { None };
        let about = Concerning { device: named, group: None };
        let seq = insert_event(&mut tx, self.backend(), end.kind, end.user_id, about, end.at_ms).await?;
        tx.commit().await?;
        Ok(AdminEvent {
            seq,
            kind: end.kind.to_owned(),
            user_id: end.user_id,
            device_id: named,
            at_ms: end.at_ms,
            group_id: None,
        })
    }

    /// The token hashes of a user's sessions that are not revoked (expired
    /// or not): what may stay connected after an [`AccessEnd`].
    pub async fn live_tokens_of(&self, user_id: i64) -> Result<HashSet<[u8; 32]>, StoreError> {
        let rows =
            sqlx::query_scalar::<_, Vec<u8>>("SELECT token_hash FROM sessions WHERE user_id = $1 AND revoked = 0")
                .bind(user_id)
                .fetch_all(self.pool())
                .await?;
        rows.into_iter().map(|h| fixed(h, "session token hash")).collect()
    }
}
