//! Stores new messages, and moves sent messages' states, many to a
//! statement and many to a commit.
//!
//! Storing a message is one `INSERT` (a trigger brings its conversation up
//! to date) and marking it delivered one `UPDATE`, but each statement is a
//! round trip to SQLite's worker thread, each commit writes its pages to
//! the log, and the history has one writer, so under load they queued for
//! it one by one. One task takes every write waiting when it is free:
//! every new message goes in one multi-row `INSERT`, whose `RETURNING` says
//! which ids were new; the state moves go in one `UPDATE` for each kind of
//! move (the same new state, path and recipient check), whose `RETURNING`
//! says which messages moved; and when there are several statements, they
//! commit together. Each caller is answered only after the commit.

use super::HistoryError;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Acquire, QueryBuilder, Row, Sqlite};
use std::collections::{HashMap, HashSet};
use tokio::sync::{mpsc, oneshot};

/// Writes taken at once at most: messages stored by one statement (18
/// values each) or moved by one (2 each), well within SQLite's limit of
/// bound values.
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

/// A move of an outgoing message's state forward (see
/// `History::set_outgoing_state`).
#[derive(Debug, Clone)]
pub(super) struct Move {
    pub id: Vec<u8>,
    pub at_ms: i64,
    pub kind: MoveKind,
}

/// What moves share one statement: the new state, the states it may come
/// from, how the message travelled (if known) and the recipient it must
/// have been sent to (for receipts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct MoveKind {
    pub state: &'static str,
    /// Exactly four, padded with repeats.
    pub from: [&'static str; 4],
    pub to_delivered: bool,
    pub to_read: bool,
    pub path: Option<String>,
    pub recipient: Option<String>,
}

type Reply = oneshot::Sender<Result<bool, String>>;

enum Job {
    Insert(NewRow, Reply),
    Move(Move, Reply),
}

/// Handle to the writing task; it ends when every handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Insert(..) => "insert",
            Job::Move(..) => "move",
        })
    }
}

impl Writer {
    /// Starts the task, writing through `writer`.
    pub fn spawn(writer: SqlitePool) -> Writer {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(writer, rx));
        Writer { jobs }
    }

    /// Stores `row` unless its id is stored already; returns whether it was new.
    pub async fn insert(&self, row: NewRow) -> Result<bool, HistoryError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Job::Insert(row, reply), answer).await
    }

    /// Applies `m`; returns whether the message moved.
    pub async fn move_state(&self, m: Move) -> Result<bool, HistoryError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Job::Move(m, reply), answer).await
    }

    async fn ask(&self, job: Job, answer: oneshot::Receiver<Result<bool, String>>) -> Result<bool, HistoryError> {
        let closed = || HistoryError::Shared("the history is closed".into());
        self.jobs.send(job).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?.map_err(HistoryError::Shared)
    }
}

async fn run(writer: SqlitePool, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut inserts = Vec::new();
        let mut moves = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Insert(row, reply) => inserts.push((row, reply)),
                Job::Move(m, reply) => moves.push((m, reply)),
            }
        }
        match write(&writer, &inserts, &moves).await {
            Ok((mut new, mut moved)) => {
                for (row, reply) in inserts {
                    // The same id twice in one batch: only the first is new.
                    let _ = reply.send(Ok(new.remove(&row.id)));
                }
                for (m, reply) in moves {
                    let _ = reply.send(Ok(moved.remove(&(m.kind, m.id))));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, messages = inserts.len(), moves = moves.len(), "cannot write to the history");
                let why = e.to_string();
                for reply in inserts.into_iter().map(|(_, r)| r).chain(moves.into_iter().map(|(_, r)| r)) {
                    let _ = reply.send(Err(why.clone()));
                }
            }
        }
    }
}

/// Which ids were stored, and which (kind, id) moved.
type Written = (HashSet<Vec<u8>>, HashSet<(MoveKind, Vec<u8>)>);

/// Every write of a batch, committed together.
async fn write(
    writer: &SqlitePool,
    inserts: &[(NewRow, Reply)],
    moves: &[(Move, Reply)],
) -> Result<Written, sqlx::Error> {
    let mut kinds: HashMap<&MoveKind, Vec<&Move>> = HashMap::new();
    for (m, _) in moves {
        kinds.entry(&m.kind).or_default().push(m);
    }
    let statements = usize::from(!inserts.is_empty()) + kinds.len();
    let mut conn = writer.acquire().await?;
    if statements > 1 {
        let mut tx = conn.begin().await?;
        let written = statements_of(&mut tx, inserts, &kinds).await?;
        tx.commit().await?;
        Ok(written)
    } else {
        statements_of(&mut conn, inserts, &kinds).await
    }
}

async fn statements_of(
    conn: &mut SqliteConnection,
    inserts: &[(NewRow, Reply)],
    kinds: &HashMap<&MoveKind, Vec<&Move>>,
) -> Result<Written, sqlx::Error> {
    let new = if inserts.is_empty() { HashSet::new() } else { store(conn, inserts).await? };
    let mut moved = HashSet::new();
    for (kind, list) in kinds {
        for id in move_many(conn, kind, list).await? {
            moved.insert(((*kind).clone(), id));
        }
    }
    Ok((new, moved))
}

/// One multi-row insert; returns the ids it stored.
async fn store(conn: &mut SqliteConnection, batch: &[(NewRow, Reply)]) -> Result<HashSet<Vec<u8>>, sqlx::Error> {
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
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter().map(|r| r.try_get::<Vec<u8>, _>("id")).collect()
}

/// One `UPDATE` for moves of one kind, each message with its own time;
/// returns the ids that moved (outgoing, in an allowed state, sent to the
/// recipient when one is named).
async fn move_many(conn: &mut SqliteConnection, kind: &MoveKind, list: &[&Move]) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new("UPDATE messages SET state = ");
    q.push_bind(kind.state);
    q.push(", delivered_at_ms = CASE WHEN ");
    q.push_bind(kind.to_delivered);
    q.push(" THEN COALESCE(messages.delivered_at_ms, m.at) ELSE messages.delivered_at_ms END, read_at_ms = CASE WHEN ");
    q.push_bind(kind.to_read);
    q.push(" THEN COALESCE(messages.read_at_ms, m.at) ELSE messages.read_at_ms END, path = COALESCE(");
    q.push_bind(kind.path.clone());
    q.push(", messages.path) FROM (SELECT column1 AS id, column2 AS at FROM (");
    q.push_values(list, |mut b, m| {
        b.push_bind(m.id.clone()).push_bind(m.at_ms);
    });
    q.push(")) AS m WHERE messages.id = m.id AND messages.outgoing = 1 AND messages.state IN (");
    let mut states = q.separated(", ");
    for s in kind.from {
        states.push_bind(s);
    }
    q.push(") AND (");
    q.push_bind(kind.recipient.clone());
    q.push(" IS NULL OR messages.to_user = ");
    q.push_bind(kind.recipient.clone());
    q.push(") RETURNING messages.id");
    let rows = q.build().fetch_all(&mut *conn).await?;
    rows.iter().map(|r| r.try_get::<Vec<u8>, _>("id")).collect()
}
