//! The receiving side of a file-fetch stream: one attempt at fetching a
//! file, resuming from whatever is already verified on disk.
//!
//! Three parts run at once. A reader task takes chunk frames off the
//! stream; a writer thread verifies each chunk against the manifest, writes
//! it in place and checkpoints the verified set every few chunks; the loop
//! between them asks for more as chunks are recorded. A chunk counts as
//! received only once a checkpoint records it, so chunks asked for but not
//! yet recorded never exceed [`WINDOW`]: after a crash at most one window
//! is fetched twice.

use super::buffers::Buffers;
use super::fetch::Fetch;
use super::manifest::{Manifest, ManifestError};
use super::partial::{Partial, PartialError};
use crate::mesh::codec::{read_frame, write_frame};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use skein_proto::ErrorBody;
use skein_proto::bytes::{ContentHash, MailId};
use skein_proto::file::{FetchReply, FetchRequest, MAX_FETCH_FRAME, MAX_WANT};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Chunks asked for and not yet recorded by a checkpoint.
pub const WINDOW: usize = 16;
/// Chunks written between checkpoints.
const CHECKPOINT_EVERY: usize = 4;
/// Spare chunk buffers kept: the chunks a window holds, and those on
/// their way between the stream and the writer.
pub(super) const BUFFERS: usize = WINDOW + 8;
/// Longest silence from the sender while chunks are outstanding.
const STALL: Duration = Duration::from_secs(45);

/// Why an attempt ended without the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The sender refused; retrying will not help.
    #[error("{}", .0.message)]
    Refused(ErrorBody),
    /// The sender sent something that is not the offered file.
    #[error("{0}")]
    Invalid(String),
    /// This device cannot store the file (disk full, no permission).
    #[error("{0}")]
    Local(String),
    /// The stream broke; try again when the sender is reachable.
    #[error("the transfer was interrupted: {0}")]
    Interrupted(String),
}

/// What to fetch and where to put it.
#[derive(Debug, Clone)]
pub struct Want {
    /// The offer.
    pub transfer: MailId,
    /// The offered root.
    pub root: ContentHash,
    /// The offered size.
    pub size: u64,
    /// The folder it is received into.
    pub dir: PathBuf,
    /// Its sanitised name.
    pub name: String,
}

/// Progress of one attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes verified and recorded.
    pub done: u64,
    /// The file's size.
    pub size: u64,
    /// Chunks that failed verification and were asked for again.
    pub refetched: u64,
}

enum Net {
    Chunk(u64, Vec<u8>),
    Refused(ErrorBody),
    Failed(String),
}

/// What the writer thread reports.
pub(super) enum Written {
    /// A chunk failed verification; nothing was written.
    Bad(u64),
    /// These chunks are written and recorded by a checkpoint.
    Saved(Vec<u64>),
    /// Writing failed; the writer stopped.
    Failed(PartialError),
}

/// What the writer thread is given.
pub(super) enum Job {
    /// Verify and write a chunk.
    Chunk(u64, Vec<u8>),
    /// Checkpoint and move the complete file into place.
    Finish,
}

/// Fetches `want` over `stream`, reporting progress, and returns where the
/// complete, verified file landed.
pub async fn fetch<S>(stream: S, want: &Want, mut progress: impl FnMut(Progress)) -> Result<PathBuf, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = stream.split();
    let interrupted = |e: std::io::Error| FetchError::Interrupted(e.to_string());
    write_frame(&mut wr, &FetchRequest::Get { transfer: want.transfer, root: want.root }, MAX_FETCH_FRAME)
        .await
        .map_err(interrupted)?;
    wr.flush().await.map_err(interrupted)?;
    let manifest = match tokio::time::timeout(STALL, read_frame::<_, FetchReply>(&mut rd, MAX_FETCH_FRAME)).await {
        Err(_) => return Err(FetchError::Interrupted("the sender did not answer".into())),
        Ok(Err(e)) => return Err(interrupted(e)),
        Ok(Ok(FetchReply::Manifest(bytes))) => {
            Manifest::decode(&bytes, &want.root.0).map_err(|e| FetchError::Invalid(e.to_string()))?
        }
        Ok(Ok(FetchReply::Refused(b))) => return Err(FetchError::Refused(b)),
        Ok(Ok(other)) => {
            return Err(FetchError::Invalid(format!("the sender answered {other:?} instead of a manifest")));
        }
    };
    if manifest.size != want.size {
        return Err(FetchError::Invalid(format!(
            "the sender's file has {} bytes but {} were offered",
            manifest.size, want.size
        )));
    }
    let buffers = Buffers::new(BUFFERS);
    let Writer { jobs, mut written, done: done_rx, have, .. } =
        start_writer(want, manifest.clone(), buffers.clone()).await?;

    let mut fetch = Fetch::new(have, WINDOW);
    let mut state = Progress { done: bytes_of(&manifest, fetch.have()), size: manifest.size, refetched: 0 };
    progress(state);

    let (net_tx, mut net) = mpsc::channel::<Net>(4);
    let reader = tokio::spawn(read_chunks(rd, manifest.clone(), net_tx, buffers));

    let result = async {
        ask(&mut wr, &mut fetch).await?;
        while !fetch.is_done() {
            let next = tokio::time::timeout(STALL, async {
                tokio::select! {
                    Some(w) = written.recv() => Some(Ok(w)),
                    n = net.recv() => n.map(Err),
                }
            });
            match next.await {
                Err(_) => return Err(FetchError::Interrupted("the sender stopped sending".into())),
                Ok(None) => return Err(FetchError::Interrupted("the stream closed".into())),
                Ok(Some(Err(Net::Chunk(index, data)))) => {
                    if fetch.expects(index) && jobs.send(Job::Chunk(index, data)).is_err() {
                        return Err(FetchError::Local("the file writer stopped".into()));
                    }
                }
                Ok(Some(Err(Net::Refused(b)))) => return Err(FetchError::Refused(b)),
                Ok(Some(Err(Net::Failed(e)))) => return Err(FetchError::Interrupted(e)),
                Ok(Some(Ok(Written::Bad(index)))) => {
                    fetch.received(index, false);
                    state.refetched = fetch.refetched();
                    tracing::info!(transfer = %want.transfer, index, "a chunk failed verification; asking again");
                    ask(&mut wr, &mut fetch).await?;
                }
                Ok(Some(Ok(Written::Saved(list)))) => {
                    for i in list {
                        fetch.received(i, true);
                    }
                    state.done = bytes_of(&manifest, fetch.have());
                    progress(state);
                    ask(&mut wr, &mut fetch).await?;
                }
                Ok(Some(Ok(Written::Failed(e)))) => return Err(local(e)),
            }
        }
        Ok(())
    }
    .await;
    reader.abort();
    let _ = wr.close().await;
    result?;
    let _ = jobs.send(Job::Finish);
    drop(jobs);
    match done_rx.await {
        Ok(Ok(path)) => Ok(path),
        Ok(Err(e)) => Err(local(e)),
        Err(_) => Err(FetchError::Local("the file writer stopped".into())),
    }
}

pub(super) fn local(e: PartialError) -> FetchError {
    match e {
        PartialError::Io { path, source } if source.raw_os_error() == Some(28) => FetchError::Local(format!(
            "the disk holding {path} is full; free some space and accept the file again to resume"
        )),
        other => FetchError::Local(other.to_string()),
    }
}

/// Asks for the chunks the plan allows now.
async fn ask<W: AsyncWrite + Unpin>(wr: &mut W, fetch: &mut Fetch) -> Result<(), FetchError> {
    let list = fetch.next_requests();
    if list.is_empty() {
        return Ok(());
    }
    for part in list.chunks(MAX_WANT) {
        let part: Vec<u32> = part.iter().map(|&i| i as u32).collect();
        write_frame(wr, &FetchRequest::Want(part), MAX_FETCH_FRAME)
            .await
            .map_err(|e| FetchError::Interrupted(e.to_string()))?;
    }
    wr.flush().await.map_err(|e| FetchError::Interrupted(e.to_string()))
}

/// Bytes in the chunks `have` holds.
pub(super) fn bytes_of(m: &Manifest, have: &super::manifest::Have) -> u64 {
    let full = have.len() * u64::from(m.chunk_size);
    let last = m.count().checked_sub(1);
    match last {
        Some(l) if have.contains(l) => full - u64::from(m.chunk_size) + m.chunk_span(l).map_or(0, |(_, n)| n),
        _ => full,
    }
}

/// Reads chunk frames and their bytes off the stream.
async fn read_chunks<R: AsyncRead + Unpin>(mut rd: R, m: Manifest, tx: mpsc::Sender<Net>, buffers: Buffers) {
    loop {
        let ev = match read_frame::<_, FetchReply>(&mut rd, MAX_FETCH_FRAME).await {
            Ok(FetchReply::Chunk { index, len }) => match m.chunk_span(u64::from(index)) {
                Some((_, want)) if want == u64::from(len) => {
                    let mut data = buffers.take(len as usize);
                    match rd.read_exact(&mut data).await {
                        Ok(()) => Net::Chunk(u64::from(index), data),
                        Err(e) => Net::Failed(e.to_string()),
                    }
                }
                _ => Net::Failed(ManifestError::NoSuchChunk { index: u64::from(index) }.to_string()),
            },
            Ok(FetchReply::Refused(b)) => Net::Refused(b),
            Ok(other) => Net::Failed(format!("unexpected frame {other:?}")),
            Err(e) => Net::Failed(e.to_string()),
        };
        let last = !matches!(ev, Net::Chunk(..));
        if tx.send(ev).await.is_err() || last {
            return;
        }
    }
}

/// The writer thread of one file (see [`write_loop`]), as it started.
pub(super) struct Writer {
    /// Chunks to verify and write, then [`Job::Finish`].
    pub jobs: std::sync::mpsc::Sender<Job>,
    /// What it reports.
    pub written: mpsc::UnboundedReceiver<Written>,
    /// Where the finished file landed.
    pub done: tokio::sync::oneshot::Receiver<Result<PathBuf, PartialError>>,
    /// The chunks already verified on disk when it started.
    pub have: super::manifest::Have,
    /// The temporary data file.
    pub part: PathBuf,
}

/// Opens (or resumes) the file `want` on disk and starts its writer
/// thread, which gives each chunk's buffer back to `buffers`.
pub(super) async fn start_writer(want: &Want, manifest: Manifest, buffers: Buffers) -> Result<Writer, FetchError> {
    let (dir, name) = (want.dir.clone(), want.name.clone());
    let partial = tokio::task::spawn_blocking(move || Partial::open(&dir, &name, manifest))
        .await
        .map_err(|e| FetchError::Local(e.to_string()))?
        .map_err(|e| FetchError::Local(e.to_string()))?;
    let (have, part) = (partial.have().clone(), partial.data_path().to_owned());
    let (jobs, job_rx) = std::sync::mpsc::channel::<Job>();
    let (written_tx, written) = mpsc::unbounded_channel::<Written>();
    let (done_tx, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skein-file-writer".into())
        .spawn(move || write_loop(partial, job_rx, written_tx, done_tx, buffers))
        .map_err(|e| FetchError::Local(format!("cannot start writing the file: {e}")))?;
    Ok(Writer { jobs, written, done, have, part })
}

/// The writer thread: verify, write, checkpoint; finish on request. Each
/// chunk's buffer goes back to `buffers` once written.
fn write_loop(
    mut partial: Partial,
    jobs: std::sync::mpsc::Receiver<Job>,
    out: mpsc::UnboundedSender<Written>,
    done: tokio::sync::oneshot::Sender<Result<PathBuf, PartialError>>,
    buffers: Buffers,
) {
    let mut unsaved = Vec::new();
    let save = |partial: &Partial, unsaved: &mut Vec<u64>| -> bool {
        if unsaved.is_empty() {
            return true;
        }
        match partial.checkpoint() {
            Ok(()) => out.send(Written::Saved(std::mem::take(unsaved))).is_ok(),
            Err(e) => {
                let _ = out.send(Written::Failed(e));
                false
            }
        }
    };
    loop {
        // Checkpoint whenever the queue runs dry, so the last chunks are recorded.
        let job = match jobs.try_recv() {
            Ok(j) => j,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                if !save(&partial, &mut unsaved) {
                    return;
                }
                match jobs.recv() {
                    Ok(j) => j,
                    Err(_) => return,
                }
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
        };
        match job {
            Job::Chunk(index, data) => {
                let written = partial.write_chunk(index, &data);
                buffers.give(data);
                match written {
                    Ok(()) => {
                        unsaved.push(index);
                        if unsaved.len() >= CHECKPOINT_EVERY && !save(&partial, &mut unsaved) {
                            return;
                        }
                    }
                    Err(PartialError::Chunk(_)) => {
                        let _ = out.send(Written::Bad(index));
                    }
                    Err(e) => {
                        let _ = out.send(Written::Failed(e));
                        return;
                    }
                }
            }
            Job::Finish => {
                let _ = done.send(partial.finish());
                return;
            }
        }
    }
}

/// Creates the folder `dir` that files are received into, if missing.
pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the download folder {}: {e}", dir.display()))
}
