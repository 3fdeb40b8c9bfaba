//! File offers in the history: one row per offer this device sent or
//! received, the state of each recipient device of an outgoing offer (and,
//! for a group file received, what this device passed on to each other
//! member device), and how far a transfer got.
//!
//! ```text
//! incoming: offered ──▶ accepted ──▶ completed
//!              │            └──▶ failed ──▶ accepted (accept again resumes)
//!              └──▶ declined
//! outgoing: offered ──▶ completed (a recipient device has the whole file)
//!              └──▶ declined / failed (every recipient device that answered)
//! ```

use super::{History, HistoryError, db_time, fixed, now_db, stored_time};
use skein_proto::bytes::{ContentHash, DeviceId, MailId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// The state of a file offer, as stored in the `state` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferState {
    /// Offered, not yet answered.
    Offered,
    /// Accepted: being fetched (incoming) or served (outgoing target).
    Accepted,
    /// The whole file is stored and verified by the recipient.
    Completed,
    /// The recipient declined.
    Declined,
    /// Given up on; an incoming transfer can be accepted again to resume.
    Failed,
}

impl OfferState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OfferState::Offered => "offered",
            OfferState::Accepted => "accepted",
            OfferState::Completed => "completed",
            OfferState::Declined => "declined",
            OfferState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<OfferState> {
        use OfferState::*;
        [Offered, Accepted, Completed, Declined, Failed].into_iter().find(|s| s.as_str() == name)
    }
}

/// A file offer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// The id of the message that carried the offer.
    pub id: MailId,
    /// Whether this user offered it.
    pub outgoing: bool,
    /// The recipient (outgoing) or the sender (incoming).
    pub peer_user: String,
    /// Incoming: the device that offered it, to fetch from.
    pub peer_device: Option<DeviceId>,
    /// The name as offered.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Root of the verified tree.
    pub root: ContentHash,
    /// Whether it is the full image of an image message.
    pub image: bool,
    /// Outgoing: the local file served.
    pub source: Option<String>,
    /// The encoded manifest: outgoing, and incoming group files once learnt.
    pub manifest: Option<Vec<u8>>,
    /// Incoming: the folder it is received into.
    pub dir: Option<String>,
    /// Incoming: where the completed file is.
    pub saved_path: Option<String>,
    /// Where it stands.
    pub state: OfferState,
    /// Why it failed, or was declined.
    pub error: Option<String>,
    /// Incoming: bytes verified and stored.
    pub bytes_done: u64,
    /// Incoming: the path of the latest stream, `direct` or `relayed`.
    pub path: Option<String>,
    /// When this device stored the offer.
    pub created_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
}

impl FileRow {
    /// A new offer of `offer` (in the message `id`), exchanged with `peer_user`.
    pub fn offer(
        id: MailId,
        outgoing: bool,
        peer_user: &str,
        offer: &skein_proto::file::FileOffer,
        image: bool,
    ) -> FileRow {
        FileRow {
            id,
            outgoing,
            peer_user: peer_user.to_owned(),
            peer_device: None,
            name: offer.name.clone(),
            size: offer.size,
            root: offer.root,
            image,
            source: None,
            manifest: None,
            dir: None,
            saved_path: None,
            state: OfferState::Offered,
            error: None,
            bytes_done: 0,
            path: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }
}

/// One recipient device of an outgoing offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRow {
    /// The device.
    pub device: DeviceId,
    /// What it did.
    pub state: OfferState,
    /// Why it failed.
    pub error: Option<String>,
    /// Chunks sent to it, repeats included.
    pub chunks_sent: u64,
    /// Bytes sent to it, repeats included.
    pub bytes_sent: u64,
    /// The path of its latest stream.
    pub path: Option<String>,
}

const FILE_COLUMNS: &str = "id, outgoing, peer_user, peer_device, name, size, root, image, source, manifest, dir, \
                            saved_path, state, error, bytes_done, path, created_at_ms, updated_at_ms";

fn state_of(row: &SqliteRow) -> Result<OfferState, HistoryError> {
    let s: String = row.try_get("state")?;
    OfferState::parse(&s).ok_or_else(|| HistoryError::Corrupt(format!("unknown file state {s:?}")))
}

fn file_from_row(row: &SqliteRow) -> Result<FileRow, HistoryError> {
    let count = |column: &str| -> Result<u64, HistoryError> { stored_time(row.try_get(column)?, column) };
    Ok(FileRow {
        id: MailId(fixed(row.try_get("id")?, "file id")?),
        outgoing: row.try_get::<i64, _>("outgoing")? != 0,
        peer_user: row.try_get("peer_user")?,
        peer_device: row
            .try_get::<Option<Vec<u8>>, _>("peer_device")?
            .map(|b| fixed(b, "peer device").map(DeviceId))
            .transpose()?,
        name: row.try_get("name")?,
        size: count("size")?,
        root: ContentHash(fixed(row.try_get("root")?, "file root")?),
        image: row.try_get::<i64, _>("image")? != 0,
        source: row.try_get("source")?,
        manifest: row.try_get("manifest")?,
        dir: row.try_get("dir")?,
        saved_path: row.try_get("saved_path")?,
        state: state_of(row)?,
        error: row.try_get("error")?,
        bytes_done: count("bytes_done")?,
        path: row.try_get("path")?,
        created_at_ms: count("created_at_ms")?,
        updated_at_ms: count("updated_at_ms")?,
    })
}

impl History {
    /// Stores a new offer. Returns `false`, changing nothing, if one with
    /// its id is already stored.
    pub async fn insert_file(&self, f: &FileRow) -> Result<bool, HistoryError> {
        let sql = format!(
            "INSERT INTO files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17, $18) ON CONFLICT (id) DO NOTHING"
        );
        let now = now_db();
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.id.0.to_vec())
            .bind(i64::from(f.outgoing))
            .bind(&f.peer_user)
            .bind(f.peer_device.map(|d| d.0.to_vec()))
            .bind(&f.name)
            .bind(db_time(f.size))
            .bind(f.root.0.to_vec())
            .bind(i64::from(f.image))
            .bind(&f.source)
            .bind(&f.manifest)
            .bind(&f.dir)
            .bind(&f.saved_path)
            .bind(f.state.as_str())
            .bind(&f.error)
            .bind(db_time(f.bytes_done))
            .bind(&f.path)
            .bind(now)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The offer with `id`.
    pub async fn file(&self, id: MailId) -> Result<Option<FileRow>, HistoryError> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.0.to_vec()).fetch_optional(&self.pool).await?;
        row.as_ref().map(file_from_row).transpose()
    }

    /// Up to `limit` offers, newest first.
    pub async fn files(&self, limit: u32) -> Result<Vec<FileRow>, HistoryError> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files ORDER BY created_at_ms DESC, rowid DESC LIMIT $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(file_from_row).collect()
    }

    /// Incoming offers accepted and not finished: to resume after a restart.
    pub async fn accepted_files(&self) -> Result<Vec<FileRow>, HistoryError> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE outgoing = 0 AND state = 'accepted'");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        rows.iter().map(file_from_row).collect()
    }

    /// Moves an offer to `to` if it is in one of `from`, recording `error`
    /// (cleared when `None`). Returns whether it changed.
    pub async fn set_file_state(
        &self,
        id: MailId,
        from: &[OfferState],
        to: OfferState,
        error: Option<&str>,
    ) -> Result<bool, HistoryError> {
        let mut changed = false;
        // One statement per allowed state keeps the SQL static.
        for f in from {
            let n =
                sqlx::query("UPDATE files SET state = $3, error = $4, updated_at_ms = $5 WHERE id = $1 AND state = $2")
                    .bind(id.0.to_vec())
                    .bind(f.as_str())
                    .bind(to.as_str())
                    .bind(error)
                    .bind(now_db())
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
            changed |= n == 1;
            if changed {
                break;
            }
        }
        Ok(changed)
    }

    /// Accepts an incoming offer (or accepts a failed one again) into `dir`.
    /// Returns whether it changed.
    pub async fn accept_file(&self, id: MailId, dir: &str) -> Result<bool, HistoryError> {
        let n = sqlx::query(
            "UPDATE files SET state = 'accepted', error = NULL, dir = $2, updated_at_ms = $3 \
             WHERE id = $1 AND outgoing = 0 AND state IN ('offered', 'failed')",
        )
        .bind(id.0.to_vec())
        .bind(dir)
        .bind(now_db())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Keeps the manifest of an incoming file, once learnt, so the file can
    /// be served to other members of its group (also after a restart).
    pub async fn set_file_manifest(&self, id: MailId, manifest: &[u8]) -> Result<(), HistoryError> {
        sqlx::query("UPDATE files SET manifest = $2 WHERE id = $1 AND outgoing = 0 AND manifest IS NULL")
            .bind(id.0.to_vec())
            .bind(manifest)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Records how many bytes of an incoming file are verified and stored,
    /// and the path of the stream when given.
    pub async fn set_file_progress(&self, id: MailId, bytes_done: u64, path: Option<&str>) -> Result<(), HistoryError> {
        sqlx::query("UPDATE files SET bytes_done = $2, updated_at_ms = $3, path = COALESCE($4, path) WHERE id = $1")
            .bind(id.0.to_vec())
            .bind(db_time(bytes_done))
            .bind(now_db())
            .bind(path)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Marks an incoming file complete at `saved_path`.
    pub async fn complete_file(&self, id: MailId, saved_path: &str) -> Result<(), HistoryError> {
        sqlx::query(
            "UPDATE files SET state = 'completed', error = NULL, saved_path = $2, bytes_done = size, \
             updated_at_ms = $3 WHERE id = $1",
        )
        .bind(id.0.to_vec())
        .bind(saved_path)
        .bind(now_db())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records what a recipient device did with an outgoing offer. A
    /// completed device stays completed.
    pub async fn set_target_state(
        &self,
        file: MailId,
        device: DeviceId,
        state: OfferState,
        error: Option<&str>,
    ) -> Result<(), HistoryError> {
        sqlx::query(
            "INSERT INTO file_targets (file, device, state, error, updated_at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (file, device) DO UPDATE SET state = excluded.state, error = excluded.error, \
             updated_at_ms = excluded.updated_at_ms WHERE file_targets.state != 'completed'",
        )
        .bind(file.0.to_vec())
        .bind(device.0.to_vec())
        .bind(state.as_str())
        .bind(error)
        .bind(now_db())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Adds chunks and bytes sent to a recipient device.
    pub async fn add_target_sent(
        &self,
        file: MailId,
        device: DeviceId,
        chunks: u64,
        bytes: u64,
    ) -> Result<(), HistoryError> {
        sqlx::query(
            "INSERT INTO file_targets (file, device, state, chunks_sent, bytes_sent, updated_at_ms) \
             VALUES ($1, $2, 'accepted', $3, $4, $5) \
             ON CONFLICT (file, device) DO UPDATE SET chunks_sent = chunks_sent + excluded.chunks_sent, \
             bytes_sent = bytes_sent + excluded.bytes_sent, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(file.0.to_vec())
        .bind(device.0.to_vec())
        .bind(db_time(chunks))
        .bind(db_time(bytes))
        .bind(now_db())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Records the path of the latest stream to a recipient device.
    pub async fn set_target_path(&self, file: MailId, device: DeviceId, path: &str) -> Result<(), HistoryError> {
        sqlx::query(
            "INSERT INTO file_targets (file, device, state, path, updated_at_ms) VALUES ($1, $2, 'accepted', $3, $4) \
             ON CONFLICT (file, device) DO UPDATE SET path = excluded.path, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(file.0.to_vec())
        .bind(device.0.to_vec())
        .bind(path)
        .bind(now_db())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The recipient devices of an outgoing offer.
    pub async fn targets(&self, file: MailId) -> Result<Vec<TargetRow>, HistoryError> {
        let rows = sqlx::query(
            "SELECT device, state, error, chunks_sent, bytes_sent, path FROM file_targets WHERE file = $1 \
             ORDER BY device",
        )
        .bind(file.0.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TargetRow {
                    device: DeviceId(fixed(row.try_get("device")?, "target device")?),
                    state: state_of(row)?,
                    error: row.try_get("error")?,
                    chunks_sent: stored_time(row.try_get("chunks_sent")?, "chunks_sent")?,
                    bytes_sent: stored_time(row.try_get("bytes_sent")?, "bytes_sent")?,
                    path: row.try_get("path")?,
                })
            })
            .collect()
    }

    /// Records `user`'s reaction `emoji` to `message` as present or taken
    /// back, unless a newer change is stored. Returns whether it changed.
    pub async fn apply_reaction(
        &self,
        message: MailId,
        user: &str,
        emoji: &str,
        present: bool,
        at_ms: u64,
    ) -> Result<bool, HistoryError> {
        let n = sqlx::query(
            "INSERT INTO reactions (message, user, emoji, present, at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (message, user, emoji) DO UPDATE SET present = excluded.present, at_ms = excluded.at_ms \
             WHERE excluded.at_ms >= reactions.at_ms AND excluded.present != reactions.present",
        )
        .bind(message.0.to_vec())
        .bind(user)
        .bind(emoji)
        .bind(i64::from(present))
        .bind(db_time(at_ms))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The present reactions to `message`: (emoji, user), in emoji then user order.
    pub async fn reactions(&self, message: MailId) -> Result<Vec<(String, String)>, HistoryError> {
        let rows =
            sqlx::query("SELECT emoji, user FROM reactions WHERE message = $1 AND present = 1 ORDER BY emoji, user")
                .bind(message.0.to_vec())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok((r.try_get("emoji")?, r.try_get("user")?))).collect()
    }
}
