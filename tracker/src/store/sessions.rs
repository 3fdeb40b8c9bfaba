//! Login sessions. Only the 32-byte BLAKE3 hash of a bearer token is
//! stored; rotation swaps one hash for another atomically, so a token can
//! be resumed at most once.

use super::devices::{DeviceRecord, next_serial_on, upsert_device_on};
use super::users::{USER_COLUMNS, UserRecord, user_from_row};
use super::{Store, StoreError, fixed, flag};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// BLAKE3 hash of the bearer token.
    pub token_hash: [u8; 32],
    /// The logged-in user.
    pub user_id: i64,
    /// The device the session belongs to.
    pub device_id: [u8; 16],
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Expiry time, ms since the Unix epoch.
    pub expires_at_ms: i64,
    /// Revoked sessions cannot be used or rotated.
    pub revoked: bool,
}

impl SessionRecord {
    /// Whether the session may be used at `now_ms`.
    pub fn is_usable(&self, now_ms: i64) -> bool {
        !self.revoked && now_ms < self.expires_at_ms
    }
}

/// Builds the device record of a session start (and what the caller wants
/// back, such as the signed certificate) around its certificate serial.
pub type Issue<T> = Box<dyn FnOnce(u64) -> Result<(DeviceRecord, T), StoreError> + Send>;

/// How a login or resume changes the sessions.
#[derive(Debug, Clone)]
pub enum SessionStart {
    /// A new session, stored as it is (no check of the user).
    Create(SessionRecord),
    /// A password login: a new session, stored only if the user is still
    /// enabled at the session epoch read before the password was checked,
    /// and has fewer than `max_devices` other devices with a valid
    /// certificate.
    Login {
        /// The session to store.
        session: SessionRecord,
        /// The user's session epoch when the password was checked.
        epoch: i64,
        /// Most devices with a valid certificate per user.
        max_devices: u32,
    },
    /// A resume: the old token's session is revoked and a new one takes
    /// its place (see [`Store::rotate_session`]).
    Rotate {
        /// Hash of the token presented.
        old_hash: [u8; 32],
        /// Hash of the token handed out instead.
        new_hash: [u8; 32],
        /// When the new session expires, ms since the Unix epoch.
        new_expires_ms: i64,
        /// Now, ms since the Unix epoch.
        now_ms: i64,
    },
}

impl Store {
    /// Stores a new session. Fails with [`StoreError::Conflict`] if the
    /// token hash is already stored.
    pub async fn create_session(&self, session: SessionRecord) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        insert_session(&mut conn, &session).await
    }

    /// The session with this token hash, usable or not.
    pub async fn session_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, device_id, created_at_ms, expires_at_ms, revoked \
             FROM sessions WHERE token_hash = $1",
        )
        .bind(&token_hash[..])
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// The session with this token hash and its user, in one query (what a
    /// resume needs first); `None` when either is gone.
    pub async fn session_and_user(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        let sql = format!(
            "SELECT s.token_hash, s.user_id, s.device_id, s.created_at_ms AS session_created_at_ms, \
                    s.expires_at_ms, s.revoked, {USER_COLUMNS} \
             FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN departments d ON d.id = u.dept_id \
             WHERE s.token_hash = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&token_hash[..]).fetch_optional(self.pool()).await?;
        let Some(row) = row else { return Ok(None) };
        let session = session_columns(&row, "session_created_at_ms")?;
        Ok(Some((session, user_from_row(&row)?)))
    }

    /// Replaces the session `old_hash` with `new_hash` (same user and
    /// device, created at `now_ms`, expiring at `new_expires_ms`).
    ///
    /// Atomic: returns `false` and changes nothing unless the old session
    /// exists, is not revoked and has not expired at `now_ms`. The old
    /// session is revoked, so a second rotation of it fails.
    pub async fn rotate_session(
        &self,
        old_hash: &[u8; 32],
        new_hash: &[u8; 32],
        new_expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let rotation = SessionStart::Rotate { old_hash: *old_hash, new_hash: *new_hash, new_expires_ms, now_ms };
        let mut tx = self.begin_write().await?;
        if !apply_start(&mut tx, &rotation).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Everything a login or resume writes, in one transaction (one commit
    /// to disk instead of three): the session change, a certificate serial
    /// and the device record that `issue` builds around that serial.
    ///
    /// Returns `None`, changing nothing, when a rotation finds the old
    /// session revoked, expired or gone. Fails with
    /// [`StoreError::Conflict`] when the device is revoked.
    pub async fn start_session<T>(
        &self,
        start: SessionStart,
        issue: impl FnOnce(u64) -> Result<(DeviceRecord, T), StoreError> + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        let mut results = self.start_sessions(vec![(start, Box::new(issue) as Issue<T>)]).await?;
        results.pop().unwrap_or(Ok(None))
    }

    /// Several [`Store::start_session`]s in one transaction, so they share
    /// one commit to disk. Each runs in a savepoint of its own: one that
    /// fails or finds nothing to rotate leaves no trace and spoils no other.
    /// The outer error means the shared commit failed and nothing was
    /// stored.
    pub async fn start_sessions<T>(
        &self,
        starts: Vec<(SessionStart, Issue<T>)>,
    ) -> Result<Vec<Result<Option<T>, StoreError>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut results = Vec::with_capacity(starts.len());
        for (start, issue) in starts {
            let mut savepoint = sqlx::Acquire::begin(&mut tx).await?;
            match start_in(&mut savepoint, &start, issue).await {
                Ok(Some(issued)) => {
                    savepoint.commit().await?;
                    results.push(Ok(Some(issued)));
                }
                outcome => {
                    savepoint.rollback().await?;
                    results.push(outcome);
                }
            }
        }
        tx.commit().await?;
        Ok(results)
    }

    /// Revokes one session. Returns whether it existed.
    pub async fn revoke_session(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE sessions SET revoked = 1 WHERE token_hash = $1")
            .bind(&token_hash[..])
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes every live session of a user; returns how many.
    pub async fn revoke_user_sessions(&self, user_id: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = $1 AND revoked = 0")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Revokes every live session of one device of a user; returns how many.
    pub async fn revoke_device_sessions(&self, user_id: i64, device_id: [u8; 16]) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = $1 AND device_id = $2 AND revoked = 0")
            .bind(user_id)
            .bind(&device_id[..])
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes sessions that expired at or before `now_ms`, revoked or not;
    /// returns how many.
    pub async fn purge_expired_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1").bind(now_ms).execute(self.pool()).await?;
        Ok(done.rows_affected())
    }
}

fn session_from_row(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    session_columns(row, "created_at_ms")
}

/// A session from its columns, the creation time under `created` (a join
/// with users, who have a creation time too, renames it).
fn session_columns(row: &AnyRow, created: &str) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        token_hash: fixed(row.try_get("token_hash")?, "session token hash")?,
        user_id: row.try_get("user_id")?,
        device_id: fixed(row.try_get("device_id")?, "session device id")?,
        created_at_ms: row.try_get(created)?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        revoked: flag(row.try_get("revoked")?),
    })
}

/// One session start inside a transaction or savepoint.
async fn start_in<T>(conn: &mut AnyConnection, start: &SessionStart, issue: Issue<T>) -> Result<Option<T>, StoreError> {
    if !apply_start(conn, start).await? {
        return Ok(None);
    }
    if let SessionStart::Login { session, max_devices, .. } = start {
        let others = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM devices \
             WHERE user_id = $1 AND device_id <> $2 AND revoked = 0 AND cert_expires_at_ms > $3",
        )
        .bind(session.user_id)
        .bind(&session.device_id[..])
        .bind(session.created_at_ms)
        .fetch_one(&mut *conn)
        .await?;
        if others >= i64::from(*max_devices) {
            return Err(StoreError::TooManyDevices { limit: *max_devices });
        }
    }
    let serial = next_serial_on(conn).await?;
    let (device, issued) = issue(serial)?;
    upsert_device_on(conn, &device).await?;
    Ok(Some(issued))
}

/// Stores a new session on one connection.
async fn insert_session(conn: &mut AnyConnection, session: &SessionRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, device_id, created_at_ms, expires_at_ms, revoked) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&session.token_hash[..])
    .bind(session.user_id)
    .bind(&session.device_id[..])
    .bind(session.created_at_ms)
    .bind(session.expires_at_ms)
    .bind(i64::from(session.revoked))
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::conflict_or_db(e, || "session token already exists".into()))?;
    Ok(())
}

/// Takes the user's row for the rest of the transaction, if the user is
/// enabled (and at `epoch`, when given). A change that ends the user's
/// access takes the same row first (see `access.rs`), so one of the two
/// waits for the other: either this start sees the change and stops, or
/// the change, coming after, also ends what this start stored.
async fn hold_user(conn: &mut AnyConnection, user_id: i64, epoch: Option<i64>) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE users SET session_epoch = session_epoch \
         WHERE id = $1 AND disabled = 0 AND ($2 < 0 OR session_epoch = $2)",
    )
    .bind(user_id)
    .bind(epoch.unwrap_or(-1))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Applies a session change inside a write transaction; `false` when a
/// rotation found nothing usable to rotate, or a login found its user
/// changed.
async fn apply_start(conn: &mut AnyConnection, start: &SessionStart) -> Result<bool, StoreError> {
    let (old_hash, new_hash, new_expires_ms, now_ms) = match start {
        SessionStart::Create(session) => {
            insert_session(conn, session).await?;
            return Ok(true);
        }
        SessionStart::Login { session, epoch, .. } => {
            if !hold_user(conn, session.user_id, Some(*epoch)).await? {
                return Ok(false);
            }
            insert_session(conn, session).await?;
            return Ok(true);
        }
        SessionStart::Rotate { old_hash, new_hash, new_expires_ms, now_ms } => {
            (old_hash, new_hash, *new_expires_ms, *now_ms)
        }
    };
    let owner = sqlx::query_scalar::<_, i64>("SELECT user_id FROM sessions WHERE token_hash = $1")
        .bind(&old_hash[..])
        .fetch_optional(&mut *conn)
        .await?;
    match owner {
        Some(user_id) if hold_user(conn, user_id, None).await? => {}
        _ => return Ok(false),
    }
    let old = sqlx::query(
        "UPDATE sessions SET revoked = 1 \
         WHERE token_hash = $1 AND revoked = 0 AND expires_at_ms > $2 \
         RETURNING user_id, device_id",
    )
    .bind(&old_hash[..])
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(old) = old else {
        return Ok(false);
    };
    let device_id: Vec<u8> = old.try_get("device_id")?;
    let rotated = SessionRecord {
        token_hash: *new_hash,
        user_id: old.try_get("user_id")?,
        device_id: fixed(device_id, "session device id")?,
        created_at_ms: now_ms,
        expires_at_ms: new_expires_ms,
        revoked: false,
    };
    insert_session(conn, &rotated).await?;
    Ok(true)
}
