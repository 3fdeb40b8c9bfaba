//! Stores new messages many to a statement.
//!
//! Storing a message is one `INSERT` (a trigger brings its conversation up
//! to date), but each statement is a round trip to SQLite's worker thread
//! and the history has one writer, so under load messages queued for it one
//! by one. One task takes every message waiting when it is free and stores
//! them with a single multi-row `INSERT`, whose `RETURNING` says which ids
//! were new.

use super::HistoryError;
use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Row, Sqlite};
use std::collections::HashSet;
use tokio::sync::{mpsc, oneshot};

/// Messages stored by one statement at most (18 values each, well within
/// SQLite's limit of bound values).
const MAX_BATCH: usize = 64;
/// Messages waiting for the task at most; more wait for room.
const QUEUE: usize = 1024;

/// One `messages` row to store.
#[derive(Debug, Clone)]
pub(super) struct NewRow {
    pub id: Vec<u8>,
    pub conversation: String,
    pub from_user: String,
    pub from_device: Vec<u8>,
    pub to_user: String,
    pub sent_at_ms: i64,
    pub stored_at_ms: i64,
    pub body: Vec<u8>,
    pub text: Option<String>,
    pub outgoing: bool,
    pub state: &'static str,
    pub delivered_at_ms: Option<i64>,
    pub read_at_ms: Option<i64>,
    pub path: Option<String>,
    pub kind: &'static str,
    pub hlc: i64,
    pub group_seq: i64,
}

type Reply = oneshot::Sender<Result<bool, String>>;

/// Handle to the storing task; it ends when every handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct Inserter {
    jobs: mpsc::Sender<(NewRow, Reply)>,
}

impl Inserter {
    /// Starts the task, writing through `writer`.
    pub fn spawn(writer: SqlitePool) -> Inserter {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(writer, rx));
        Inserter { jobs }
    }

    /// Stores `row` unless its id is stored already; returns whether it was new.
    pub async fn insert(&self, row: NewRow) -> Result<bool, HistoryError> {
        let (reply, answer) = oneshot::channel();
        let closed = || HistoryError::Shared("the history is closed".into());
        self.jobs.send((row, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?.map_err(HistoryError::Shared)
    }
}

async fn run(writer: SqlitePool, mut jobs: mpsc::Receiver<(NewRow, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match store(&writer, &batch).await {
            Ok(mut new) => {
                for (row, reply) in batch.drain(..) {
                    // The same id twice in one batch: only the first is new.
                    let _ = reply.send(Ok(new.remove(&row.id)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), "cannot store messages");
                let why = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(why.clone()));
                }
            }
        }
    }
}

/// One multi-row insert; returns the ids it stored.
async fn store(writer: &SqlitePool, batch: &[(NewRow, Reply)]) -> Result<HashSet<Vec<u8>>, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT INTO messages (id, conversation, from_user, from_device, to_user, sent_at_ms, stored_at_ms, \
         body, text, outgoing, state, delivered_at_ms, read_at_ms, path, kind, hlc, group_seq) ",
    );
    q.push_values(batch, |mut b, (row, _)| {
        b.push_bind(row.id.clone())
            .push_bind(row.conversation.clone())
            .push_bind(row.from_user.clone())
            .push_bind(row.from_device.clone())
            .push_bind(row.to_user.clone())
            .push_bind(row.sent_at_ms)
            .push_bind(row.stored_at_ms)
            .push_bind(row.body.clone())
            .push_bind(row.text.clone())
            .push_bind(i64::from(row.outgoing))
            .push_bind(row.state)
            .push_bind(row.delivered_at_ms)
            .push_bind(row.read_at_ms)
            .push_bind(row.path.clone())
            .push_bind(row.kind)
            .push_bind(row.hlc)
            .push_bind(row.group_seq);
    });
    q.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
    let rows = q.build().fetch_all(writer).await?;
    rows.iter().map(|r| r.try_get::<Vec<u8>, _>("id")).collect()
}
