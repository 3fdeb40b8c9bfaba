//! App messages waiting for a user's first device: a post to someone who
//! was provisioned but has never logged in is kept here, signed, until a
//! device of theirs logs in, then sealed to it and moved to its mailbox.
//! At most [`MAX_PENDING_PER_USER`] wait per user; a post beyond that is
//! not kept.

use super::{Store, StoreError};
use sqlx::Row;

/// Most app messages that wait for one user's first device.
pub const MAX_PENDING_PER_USER: i64 = 200;

/// One waiting app message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingApp {
    /// The message id.
    pub id: [u8; 16],
    /// The app that posted it.
    pub from_app: String,
    /// The signed message, encoded, ready to be sealed to a device.
    pub payload: Vec<u8>,
    /// When it was posted, ms since the Unix epoch.
    pub stored_at_ms: i64,
}

impl Store {
    /// Keeps `pending` for `user_id`; false when the user already has
    /// [`MAX_PENDING_PER_USER`] waiting (nothing is kept). The same id
    /// again (a retried post) is kept once.
    pub async fn app_pending_put(&self, user_id: i64, pending: &PendingApp) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM app_pending WHERE to_user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        if waiting >= MAX_PENDING_PER_USER {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO app_pending (id, to_user_id, from_app, payload, stored_at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (to_user_id, id) DO NOTHING",
        )
        .bind(&pending.id[..])
        .bind(user_id)
        .bind(&pending.from_app)
        .bind(&pending.payload)
        .bind(pending.stored_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The app messages waiting for `user_id`, oldest first.
    pub async fn app_pending(&self, user_id: i64) -> Result<Vec<PendingApp>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, from_app, payload, stored_at_ms FROM app_pending WHERE to_user_id = $1 \
             ORDER BY stored_at_ms, id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingApp {
                    id: super::fixed(r.try_get::<Vec<u8>, _>("id")?, "app_pending.id")?,
                    from_app: r.try_get("from_app")?,
                    payload: r.try_get("payload")?,
                    stored_at_ms: r.try_get("stored_at_ms")?,
                })
            })
            .collect()
    }

    /// Forgets the waiting app messages `ids` of `user_id` (they reached a device).
    pub async fn app_pending_done(&self, user_id: i64, ids: &[[u8; 16]]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for id in ids {
            sqlx::query("DELETE FROM app_pending WHERE to_user_id = $1 AND id = $2")
                .bind(user_id)
                .bind(&id[..])
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
