//! The offline mailbox: sealed items waiting for a recipient device.
//!
//! Items are keyed by (recipient user, recipient device, item id), so a
//! re-sent item is stored once. A put is all-or-nothing: if accepting it
//! would exceed a per-device item limit or a per-user byte limit, nothing
//! is stored, and concurrent puts for one recipient are serialised so the
//! quota holds across processes. Fetch order is store time, then insertion
//! order.

use super::{Backend, Store, StoreError, fixed};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeSet;

/// A mailbox item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRecord {
    /// Item identifier, unique per recipient device.
    pub id: [u8; 16],
    /// The recipient user.
    pub to_user_id: i64,
    /// The recipient device.
    pub to_device: [u8; 16],
    /// The sending user.
    pub from_user_id: i64,
    /// The sender's name; filled in by fetch, ignored by put.
    pub from_user: String,
    /// The app that posted it through the HTTP API, for items the tracker
    /// made: then `from_user_id` is the recipient's own, and fetch names
    /// the sender `app:NAME`.
    pub from_app: Option<String>,
    /// Ciphertext.
    pub sealed: Vec<u8>,
    /// When the tracker stored it, ms since the Unix epoch.
    pub stored_at_ms: i64,
}

/// Mailbox quotas, checked on every put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxLimits {
    /// Most items waiting for one device (zero or negative: none).
    pub max_items_per_device: i64,
    /// Most sealed bytes waiting for one user, across their devices (zero
    /// or negative: none).
    pub max_bytes_per_user: i64,
    /// The share of one recipient's mailbox one sender may fill: at most
    /// this many items per device and this many bytes per user come from
    /// any one sender, so one sender cannot fill anyone's mailbox for
    /// everyone else.
    pub sender_share: SenderShare,
}

/// What one sender may hold in one recipient's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderShare {
    /// Items waiting for one device from one sender.
    pub items_per_device: i64,
    /// Sealed bytes waiting for one user from one sender.
    pub bytes_per_user: i64,
}

impl SenderShare {
    /// A quarter of what the whole mailbox may hold.
    pub fn quarter_of(max_items_per_device: i64, max_bytes_per_user: i64) -> Self {
        Self { items_per_device: (max_items_per_device / 4).max(1), bytes_per_user: (max_bytes_per_user / 4).max(1) }
    }
}

impl Default for MailboxLimits {
    fn default() -> Self {
        let (items, bytes) = (10_000, 256 * 1024 * 1024);
        Self {
            max_items_per_device: items,
            max_bytes_per_user: bytes,
            sender_share: SenderShare::quarter_of(items, bytes),
        }
    }
}

impl Store {
    /// Stores `items` in one transaction and returns how many were new.
    /// Items already stored under the same key are ignored. Fails with
    /// [`StoreError::MailboxFull`], storing nothing, if the new items would
    /// push a device or user past `limits`.
    pub async fn mailbox_put(&self, items: &[MailRecord], limits: MailboxLimits) -> Result<u32, StoreError> {
        let mut tx = self.begin_write().await?;
        self.lock_recipients(&mut tx, items.iter()).await?;
        let stored = put_in(&mut tx, items, limits).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Several puts in one transaction, each all-or-nothing on its own
    /// (a savepoint each): one that would overfill a mailbox is refused
    /// while the others are stored. Returns each put's outcome, in order;
    /// fails as a whole only when the store itself does.
    pub async fn mailbox_put_each(
        &self,
        puts: &[Vec<MailRecord>],
        limits: MailboxLimits,
    ) -> Result<Vec<Result<u32, StoreError>>, StoreError> {
        let mut tx = self.begin_write().await?;
        self.lock_recipients(&mut tx, puts.iter().flatten()).await?;
        let mut results = Vec::with_capacity(puts.len());
        for items in puts {
            let mut savepoint = sqlx::Acquire::begin(&mut tx).await?;
            match put_in(&mut savepoint, items, limits).await {
                Ok(stored) => {
                    savepoint.commit().await?;
                    results.push(Ok(stored));
                }
                Err(e @ StoreError::MailboxFull { .. }) => {
                    savepoint.rollback().await?;
                    results.push(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        Ok(results)
    }

    /// On PostgreSQL, serialises puts per recipient so concurrent puts
    /// cannot both pass the quota check (SQLite's write lock already does
    /// this). Sorted order keeps two multi-recipient puts from deadlocking.
    async fn lock_recipients<'a>(
        &self,
        tx: &mut AnyConnection,
        items: impl Iterator<Item = &'a MailRecord>,
    ) -> Result<(), StoreError> {
        if self.backend() == Backend::Postgres {
            let recipients: BTreeSet<i64> = items.map(|i| i.to_user_id).collect();
            for user_id in recipients {
                sqlx::query("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(())
    }

    /// Items waiting in the whole mailbox, and when the oldest was stored.
    pub async fn mailbox_stats(&self) -> Result<(i64, Option<i64>), StoreError> {
        Ok(sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(MIN(stored_at_ms) AS BIGINT) FROM mailbox",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// Up to `limit` items waiting for one device, oldest first.
    pub async fn mailbox_fetch(
        &self,
        user_id: i64,
        device: [u8; 16],
        limit: i64,
    ) -> Result<Vec<MailRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.to_user_id, m.to_device, m.from_user_id, \
                    CASE WHEN m.from_app IS NULL THEN u.name ELSE 'app:' || m.from_app END AS from_user, \
                    m.from_app, m.sealed, m.stored_at_ms \
             FROM mailbox m JOIN users u ON u.id = m.from_user_id \
             WHERE m.to_user_id = $1 AND m.to_device = $2 \
             ORDER BY m.stored_at_ms, m.seq LIMIT $3",
        )
        .bind(user_id)
        .bind(&device[..])
        .bind(limit.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(mail_from_row).collect()
    }

    /// Deletes the given items of one device; returns how many existed.
    pub async fn mailbox_ack(&self, user_id: i64, device: [u8; 16], ids: &[[u8; 16]]) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        for id in ids {
            let done = sqlx::query("DELETE FROM mailbox WHERE to_user_id = $1 AND to_device = $2 AND id = $3")
                .bind(user_id)
                .bind(&device[..])
                .bind(&id[..])
                .execute(&mut *tx)
                .await?;
            removed += done.rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Items waiting for one device.
    pub async fn mailbox_count(&self, user_id: i64, device: [u8; 16]) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM mailbox WHERE to_user_id = $1 AND to_device = $2")
            .bind(user_id)
            .bind(&device[..])
            .fetch_one(self.pool())
            .await?)
    }

    /// Deletes items stored before `ms`; returns how many.
    pub async fn mailbox_purge_older_than(&self, ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM mailbox WHERE stored_at_ms < $1").bind(ms).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }
}

/// A user's name for messages, or their id if the row is gone.
async fn user_name(conn: &mut AnyConnection, user_id: i64) -> Result<String, StoreError> {
    let name = sqlx::query_scalar::<_, String>("SELECT name FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(name.unwrap_or_else(|| format!("user #{user_id}")))
}

/// Stores `items` within the caller's transaction, checking the quotas;
/// the caller rolls back on [`StoreError::MailboxFull`].
async fn put_in(tx: &mut AnyConnection, items: &[MailRecord], limits: MailboxLimits) -> Result<u32, StoreError> {
    let mut stored: u32 = 0;
    let mut devices: BTreeSet<(i64, [u8; 16])> = BTreeSet::new();
    let mut users: BTreeSet<i64> = BTreeSet::new();
    let mut senders: BTreeSet<(i64, String, i64)> = BTreeSet::new();
    for item in items {
        let size = i64::try_from(item.sealed.len()).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "INSERT INTO mailbox (id, to_user_id, to_device, from_user_id, sealed, size, stored_at_ms, from_app) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (to_user_id, to_device, id) DO NOTHING",
        )
        .bind(&item.id[..])
        .bind(item.to_user_id)
        .bind(&item.to_device[..])
        .bind(item.from_user_id)
        .bind(&item.sealed[..])
        .bind(size)
        .bind(item.stored_at_ms)
        .bind(item.from_app.as_deref())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            stored += 1;
            devices.insert((item.to_user_id, item.to_device));
            users.insert(item.to_user_id);
            senders.insert((item.from_user_id, item.from_app.clone().unwrap_or_default(), item.to_user_id));
        }
    }
    for (user_id, device) in &devices {
        let count =
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM mailbox WHERE to_user_id = $1 AND to_device = $2")
                .bind(*user_id)
                .bind(&device[..])
                .fetch_one(&mut *tx)
                .await?;
        if count > limits.max_items_per_device.max(0) {
            let user = user_name(tx, *user_id).await?;
            return Err(StoreError::MailboxFull {
                user,
                limit: format!("at most {} items per device", limits.max_items_per_device),
            });
        }
    }
    for user_id in &users {
        let bytes = sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM mailbox WHERE to_user_id = $1",
        )
        .bind(*user_id)
        .fetch_one(&mut *tx)
        .await?;
        if bytes > limits.max_bytes_per_user.max(0) {
            let user = user_name(tx, *user_id).await?;
            return Err(StoreError::MailboxFull {
                user,
                limit: format!("at most {} bytes per user", limits.max_bytes_per_user),
            });
        }
    }
    let share = limits.sender_share;
    // Each app is a sender of its own.
    for (from, app, to) in &senders {
        let (items, bytes) = sqlx::query_as::<_, (i64, i64)>(
                "SELECT CAST(COALESCE(MAX(n), 0) AS BIGINT), \
                        CAST(COALESCE((SELECT SUM(size) FROM mailbox \
                                       WHERE from_user_id = $1 AND to_user_id = $2 AND COALESCE(from_app, '') = $3), 0) AS BIGINT) \
                 FROM (SELECT COUNT(*) AS n FROM mailbox \
                       WHERE from_user_id = $1 AND to_user_id = $2 AND COALESCE(from_app, '') = $3 GROUP BY to_device) per_device",
            )
            .bind(*from)
            .bind(*to)
            .bind(app.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if items > share.items_per_device.max(0) || bytes > share.bytes_per_user.max(0) {
            let user = user_name(tx, *to).await?;
            return Err(StoreError::MailboxFull {
                user,
                limit: format!(
                    "at most {} items per device and {} bytes from any one sender",
                    share.items_per_device, share.bytes_per_user
                ),
            });
        }
    }
    Ok(stored)
}

fn mail_from_row(row: &AnyRow) -> Result<MailRecord, StoreError> {
    Ok(MailRecord {
        id: fixed(row.try_get("id")?, "mail id")?,
        to_user_id: row.try_get("to_user_id")?,
        to_device: fixed(row.try_get("to_device")?, "mail device id")?,
        from_user_id: row.try_get("from_user_id")?,
        from_user: row.try_get("from_user")?,
        from_app: row.try_get("from_app")?,
        sealed: row.try_get("sealed")?,
        stored_at_ms: row.try_get("stored_at_ms")?,
    })
}
