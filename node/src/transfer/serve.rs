//! The sending side of a file-fetch stream.
//!
//! The receiver asks for the manifest, then for chunks. The receiver
//! verifies every chunk; the sender checks the file's size before serving
//! and checks a chunk against the manifest only when it is asked for again
//! (the receiver found it bad), so a file changed since it was offered is
//! refused by name rather than sent wrong over and over, without hashing
//! every chunk twice. The next chunk is read while the current one is
//! being written to the stream.

use super::buffers::Buffers;
use super::manifest::Manifest;
use crate::mesh::codec::{read_frame, write_frame};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use skein_proto::bytes::{ContentHash, MailId};
use skein_proto::file::{FetchReply, FetchRequest, MAX_FETCH_FRAME};
use skein_proto::{ErrorBody, ErrorCode};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How long a receiver may take to say what it wants.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A file this device offered, ready to serve.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its manifest.
    pub manifest: Manifest,
    /// The file.
    pub path: PathBuf,
}

/// Why serving stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The stream failed or the receiver spoke out of turn.
    #[error("the file stream failed: {0}")]
    Stream(String),
    /// We refused the receiver, and said why.
    #[error("refused: {}", .0.message)]
    Refused(ErrorBody),
}

/// Reads the receiver's opening request: which offer, which root.
pub async fn read_get<R: AsyncRead + Unpin>(r: &mut R) -> Result<(MailId, ContentHash), ServeError> {
    match tokio::time::timeout(ASK_TIMEOUT, read_frame::<_, FetchRequest>(r, MAX_FETCH_FRAME)).await {
        Ok(Ok(FetchRequest::Get { transfer, root })) => Ok((transfer, root)),
        Ok(Ok(other)) => Err(ServeError::Stream(format!("expected a request for a manifest, got {other:?}"))),
        Ok(Err(e)) => Err(ServeError::Stream(e.to_string())),
        Err(_) => Err(ServeError::Stream("the receiver asked for nothing".into())),
    }
}

/// Answers a receiver with a refusal and ends the stream.
pub async fn refuse<W: AsyncWrite + Unpin>(w: &mut W, body: ErrorBody) -> ServeError {
    let _ = write_frame(w, &FetchReply::Refused(body.clone()), MAX_FETCH_FRAME).await;
    let _ = w.close().await;
    ServeError::Refused(body)
}

/// Serves `source` on `stream` (after [`read_get`]) until the receiver
/// closes it. `sent(chunks, bytes)` is told about every chunk sent.
pub async fn serve_file<S>(stream: S, source: Source, mut sent: impl FnMut(u64, u64)) -> Result<(), ServeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, mut wr) = stream.split();
    let manifest = Arc::new(source.manifest);
    let file = match File::open(&source.path) {
        Ok(f) if f.metadata().map(|m| m.len()).ok() == Some(manifest.size) => Arc::new(f),
        Ok(_) => return Err(refuse(&mut wr, changed()).await),
        Err(e) => {
            let why = format!("the sender can no longer read the file: {e}");
            return Err(refuse(&mut wr, ErrorBody::new(ErrorCode::NotFound, why)).await);
        }
    };
    write_frame(&mut wr, &FetchReply::Manifest(manifest.encode()), MAX_FETCH_FRAME)
        .await
        .map_err(|e| ServeError::Stream(e.to_string()))?;
    wr.flush().await.map_err(|e| ServeError::Stream(e.to_string()))?;

    let (tx, mut wants) = mpsc::channel::<Result<u32, String>>(4096);
    let count = manifest.count();
    let reader = tokio::spawn(read_wants(rd, tx));
    // Every chunk twice over, plus slack: a receiver asking for more is broken.
    let mut budget = count.saturating_mul(2).saturating_add(64);
    let mut ahead: Option<(u32, ChunkRead)> = None;
    let mut sent_once = super::manifest::Have::none(count);
    // The chunk being sent and the one read ahead.
    let buffers = Buffers::new(2);
    let read = |i: u32, sent_once: &mut super::manifest::Have| {
        let again = sent_once.contains(u64::from(i));
        sent_once.insert(u64::from(i));
        read_chunk(&file, &manifest, i, again, &buffers)
    };
    let result = loop {
        let (index, job) = match ahead.take() {
            Some(a) => a,
            None => match wants.recv().await {
                Some(Ok(i)) => (i, read(i, &mut sent_once)),
                Some(Err(e)) => break Err(ServeError::Stream(e)),
                None => break Ok(()),
            },
        };
        if budget == 0 {
            let why = "the receiver asked for the same chunks too many times";
            break Err(refuse(&mut wr, ErrorBody::new(ErrorCode::InvalidInput, why)).await);
        }
        budget -= 1;
        if let Ok(Ok(next)) = wants.try_recv().map(|r| r.map_err(drop)) {
            ahead = Some((next, read(next, &mut sent_once)));
        }
        let data = match job.await {
            Ok(Ok(d)) => d,
            Ok(Err(body)) => break Err(refuse(&mut wr, body).await),
            Err(e) => break Err(ServeError::Stream(e.to_string())),
        };
        let header = FetchReply::Chunk { index, len: data.len() as u32 };
        let write = async {
            write_frame(&mut wr, &header, MAX_FETCH_FRAME).await?;
            wr.write_all(&data).await?;
            if ahead.is_none() {
                wr.flush().await?;
            }
            Ok::<_, io::Error>(())
        };
        if let Err(e) = write.await {
            break Err(ServeError::Stream(e.to_string()));
        }
        sent(1, data.len() as u64);
        buffers.give(data);
    };
    reader.abort();
    let _ = wr.close().await;
    result
}

fn changed() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Conflict,
        "the file changed on the sender's device after it was offered; ask for it again",
    )
}

/// A chunk being read: its bytes, or why they cannot be sent.
type ChunkRead = tokio::task::JoinHandle<Result<Vec<u8>, ErrorBody>>;

/// Reads chunk `index` off the runtime, checking it against the manifest
/// when `verify`.
fn read_chunk(file: &Arc<File>, manifest: &Arc<Manifest>, index: u32, verify: bool, buffers: &Buffers) -> ChunkRead {
    let (file, manifest, buffers) = (file.clone(), manifest.clone(), buffers.clone());
    tokio::task::spawn_blocking(move || {
        let Some((offset, len)) = manifest.chunk_span(u64::from(index)) else {
            return Err(ErrorBody::new(ErrorCode::InvalidInput, format!("chunk {index} is not part of this file")));
        };
        let mut buf = buffers.take(len as usize);
        file.read_exact_at(&mut buf, offset).map_err(|_| changed())?;
        if verify {
            manifest.verify_chunk(u64::from(index), &buf).map_err(|_| changed())?;
        }
        Ok(buf)
    })
}

/// Forwards the chunk indexes the receiver asks for, in order.
async fn read_wants<R: AsyncRead + Unpin>(mut rd: R, tx: mpsc::Sender<Result<u32, String>>) {
    loop {
        match read_frame::<_, FetchRequest>(&mut rd, MAX_FETCH_FRAME).await {
            Ok(FetchRequest::Want(list)) if list.len() <= skein_proto::file::MAX_WANT => {
                for i in list {
                    if tx.send(Ok(i)).await.is_err() {
                        return;
                    }
                }
            }
            Ok(other) => {
                let _ = tx.send(Err(format!("unexpected request {other:?}"))).await;
                return;
            }
            // The receiver closed its side: it has everything it wanted.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return,
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
        }
    }
}
