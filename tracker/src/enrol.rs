//! Group commit for logins and resumes.
//!
//! A login or resume writes a session, a certificate serial and a device
//! record, and they must be on disk before the client gets its
//! certificate. One transaction synced to disk each, taken one at a time
//! under SQLite's single writer, capped a tracker at a few hundred resumes a
//! second: the rate at which every client comes back after a tracker
//! restart. One task takes every start waiting when it is free and commits
//! them together ([`Store::start_sessions`]: a savepoint each), so they
//! share the disk sync.

use crate::store::{Issue, SessionStart, Store, StoreError};
use skein_proto::device::DeviceCert;
use tokio::sync::{mpsc, oneshot};

/// Starts waiting for the writer at most; more wait for room.
const QUEUE: usize = 1024;
/// Starts committed together at most.
const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<Option<DeviceCert>, StoreError>>;

struct Job {
    start: SessionStart,
    issue: Issue<DeviceCert>,
    reply: Reply,
}

/// Handle to the writer task; it ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Enrolment {
    jobs: mpsc::Sender<Job>,
}

impl Enrolment {
    /// Starts the writer task on `store`.
    pub fn spawn(store: Store) -> Enrolment {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx));
        Enrolment { jobs }
    }

    /// [`Store::start_session`], committed with whatever else is waiting.
    pub async fn start(&self, start: SessionStart, issue: Issue<DeviceCert>) -> Result<Option<DeviceCert>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Shared("the tracker is shutting down".into());
        self.jobs.send(Job { start, issue, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(store: Store, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (starts, replies): (Vec<_>, Vec<Reply>) = batch.drain(..).map(|j| ((j.start, j.issue), j.reply)).unzip();
        match store.start_sessions(starts).await {
            Ok(results) => {
                for (result, reply) in results.into_iter().zip(replies) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, starts = replies.len(), "storing logins failed");
                let why = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Shared(why.clone())));
                }
            }
        }
    }
}
