//! Admin events: an append-only log through which a running tracker learns
//! about changes another process (the admin CLI, another tracker) made to
//! the same database, such as a disabled user or a revoked device. The
//! tracker reads [`Store::events_since`] the last sequence number it has
//! seen: on PostgreSQL when told of a new event ([`ADMIN_CHANNEL`], sent by
//! the event's own transaction as it commits), on SQLite (one tracker, and
//! the admin CLI beside it) every second.
//!
//! Sequence numbers become visible in order: on PostgreSQL, where a
//! `BIGSERIAL`-style value is allocated before commit, writers take a table
//! lock so a reader can never see event N+1 while N is still uncommitted
//! (and then skip N forever). SQLite serialises writers anyway.

use super::{Backend, Store, StoreError, fixed};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// One admin event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminEvent {
    /// Position in the log, increasing.
    pub seq: i64,
    /// What happened, such as `user_disabled`.
    pub kind: String,
    /// The user concerned.
    pub user_id: i64,
    /// The device concerned, if any.
    pub device_id: Option<[u8; 16]>,
    /// When it happened, ms since the Unix epoch.
    pub at_ms: i64,
    /// The group concerned, for group events.
    pub group_id: Option<[u8; 16]>,
}

impl Store {
    /// Appends an event and returns its sequence number.
    pub async fn record_event(
        &self,
        kind: &str,
        user_id: i64,
        device_id: Option<[u8; 16]>,
        at_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let about = Concerning { device: device_id, group: None };
        let seq = insert_event(&mut tx, self.backend(), kind, user_id, about, at_ms).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Records that a group changed outside a tracker (`kind` is
    /// `group_created` or `group_changed`; `user_id` the user concerned).
    pub async fn record_group_event(
        &self,
        kind: &str,
        group: [u8; 16],
        user_id: i64,
        at_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let about = Concerning { device: None, group: Some(group) };
        let seq = insert_event(&mut tx, self.backend(), kind, user_id, about, at_ms).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Events after `seq`, oldest first, at most `limit`.
    pub async fn events_since(&self, seq: i64, limit: i64) -> Result<Vec<AdminEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, kind, user_id, device_id, at_ms, group_id FROM admin_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The newest event's sequence number, or 0 if there are none. A
    /// tracker starts polling from here.
    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let seq =
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM admin_events").fetch_one(self.pool()).await?;
        Ok(seq.unwrap_or(0))
    }
}

fn event_from_row(row: &AnyRow) -> Result<AdminEvent, StoreError> {
    let device_id: Option<Vec<u8>> = row.try_get("device_id")?;
    let group_id: Option<Vec<u8>> = row.try_get("group_id")?;
    Ok(AdminEvent {
        group_id: group_id.map(|g| fixed(g, "event group id")).transpose()?,
        seq: row.try_get("seq")?,
        kind: row.try_get("kind")?,
        user_id: row.try_get("user_id")?,
        device_id: device_id.map(|d| fixed(d, "event device id")).transpose()?,
        at_ms: row.try_get("at_ms")?,
    })
}

/// Event kind: a group changed outside a tracker (a department move).
pub const EVENT_GROUP_CHANGED: &str = "group_changed";

/// What an admin event concerns besides its user.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Concerning {
    /// One device.
    pub device: Option<[u8; 16]>,
    /// One group.
    pub group: Option<[u8; 16]>,
}

/// Appends an event inside a write transaction; on PostgreSQL the table
/// lock it takes is held until that transaction ends.
pub(super) async fn insert_event(
    conn: &mut AnyConnection,
    backend: Backend,
    kind: &str,
    user_id: i64,
    about: Concerning,
    at_ms: i64,
) -> Result<i64, StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("LOCK TABLE admin_events IN EXCLUSIVE MODE").execute(&mut *conn).await?;
    }
    let seq = sqlx::query_scalar::<_, i64>(
        "INSERT INTO admin_events (kind, user_id, device_id, group_id, at_ms) VALUES ($1, $2, $3, $4, $5) \
         RETURNING seq",
    )
    .bind(kind)
    .bind(user_id)
    .bind(about.device.map(|d| d.to_vec()))
    .bind(about.group.map(|g| g.to_vec()))
    .bind(at_ms)
    .fetch_one(&mut *conn)
    .await?;
    // Delivered when the transaction commits, to every tracker listening
    // (see `listen.rs`); none is sent if it rolls back.
    super::listen::notify(backend, &mut *conn, ADMIN_CHANNEL, "").await?;
    Ok(seq)
}

/// The channel on which PostgreSQL tells trackers of new admin events.
pub const ADMIN_CHANNEL: &str = "skein_admin_events";
