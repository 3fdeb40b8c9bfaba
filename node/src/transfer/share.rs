//! The serving side of the group-file stream, and what this device knows
//! about each group file it offered or fetches.
//!
//! [`SwarmBook`] is plain state: for each group file, the member devices
//! known to hold some of it (named to other members asking), what this
//! device holds of it while it fetches it, and, for a file this device
//! offered, which member each chunk was first sent to. That last record is
//! what keeps the offering device from uploading the file once per member:
//! a chunk already sent to one member is answered with
//! [`SwarmReply::Elsewhere`] to the next, unless it asks with `force`.
//!
//! [`serve_swarm`] answers one stream from an already-authorised member
//! device: the manifest, then status and chunk requests in order. It
//! checks every chunk against the manifest before sending it, so a file
//! changed on disk is never passed on.

use super::buffers::Buffers;
use super::manifest::{Have, Manifest};
use super::swarm_wire::{Holder, MAX_HOLDERS, MAX_SWARM_FRAME, MAX_SWARM_WANT, SwarmReply, SwarmRequest};
use crate::mesh::codec::{read_frame, write_frame};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use skein_proto::bytes::{ContentHash, DeviceId, MailId};
use skein_proto::{ErrorBody, ErrorCode};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Group files remembered at once; the oldest is forgotten first.
const MAX_FILES: usize = 64;
/// Holders remembered per file.
const MAX_KNOWN: usize = 64;
/// Members a file's origin records as first receivers of its chunks.
const MAX_GIVEN: usize = 255;
/// How long a member may stay silent on an open stream.
const IDLE: Duration = Duration::from_secs(60);
/// How long a member may take to open.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// What this device holds of a group file it is fetching or has fetched.
#[derive(Debug, Clone)]
pub struct Held {
    /// The file's manifest.
    pub manifest: Arc<Manifest>,
    /// Where its bytes are: the partial file while fetching, then the file.
    pub path: PathBuf,
    /// Its verified chunks.
    pub have: Have,
}

/// Whether the origin sends a chunk to a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Give {
    /// Send it.
    Send,
    /// This end does not hold it.
    Missing,
    /// Another member got it from this end: ask there.
    Elsewhere(Holder),
}

#[derive(Debug, Default)]
struct FileEntry {
    /// Newest last.
    holders: Vec<(Holder, Instant)>,
    /// Per chunk: 0 when never sent, else 1 + an index into `given_to`.
    given: Vec<u8>,
    given_to: Vec<Holder>,
    held: Option<Held>,
}

/// What this device knows about group files. Plain state, shared by the
/// engine behind a lock.
#[derive(Debug, Default)]
pub struct SwarmBook {
    files: HashMap<MailId, FileEntry>,
    order: VecDeque<MailId>,
}

impl SwarmBook {
    fn entry(&mut self, transfer: MailId) -> &mut FileEntry {
        if !self.files.contains_key(&transfer) {
            if self.order.len() >= MAX_FILES
                && let Some(old) = self.order.pop_front()
            {
                self.files.remove(&old);
            }
            self.order.push_back(transfer);
        }
        self.files.entry(transfer).or_default()
    }

    /// `holder` holds, or is fetching, chunks of `transfer`.
    pub fn note_holder(&mut self, transfer: MailId, holder: Holder, now: Instant) {
        let e = self.entry(transfer);
        e.holders.retain(|(h, _)| h.device != holder.device);
        if e.holders.len() >= MAX_KNOWN {
            e.holders.remove(0);
        }
        e.holders.push((holder, now));
    }

    /// Holders of `transfer` to name to `asker`: the newest, never itself.
    pub fn holders(&self, transfer: MailId, asker: &DeviceId) -> Vec<Holder> {
        let Some(e) = self.files.get(&transfer) else { return Vec::new() };
        e.holders.iter().rev().filter(|(h, _)| h.device != *asker).take(MAX_HOLDERS).map(|(h, _)| h.clone()).collect()
    }

    /// The origin's answer to `to` asking for chunk `index` of a file of
    /// `count` chunks: sent to the first member that asks, to that member
    /// again, and to anyone asking with `force`; otherwise the member
    /// that has it is named.
    pub fn give(&mut self, transfer: MailId, count: u64, index: u64, to: &Holder, force: bool) -> Give {
        let e = self.entry(transfer);
        if index >= count {
            return Give::Missing;
        }
        if e.given.len() as u64 != count {
            e.given = vec![0; count as usize];
            e.given_to.clear();
        }
        let slot = e.given[index as usize];
        if slot == 0 {
            let k = match e.given_to.iter().position(|h| h.device == to.device) {
                Some(k) => Some(k),
                None if e.given_to.len() < MAX_GIVEN => {
                    e.given_to.push(to.clone());
                    Some(e.given_to.len() - 1)
                }
                None => None,
            };
            if let Some(k) = k {
                e.given[index as usize] = (k + 1) as u8;
            }
            return Give::Send;
        }
        match e.given_to.get(usize::from(slot) - 1) {
            Some(h) if h.device != to.device && !force => Give::Elsewhere(h.clone()),
            _ => Give::Send,
        }
    }

    /// Records what this device holds of `transfer` now.
    pub fn hold(&mut self, transfer: MailId, held: Held) {
        self.entry(transfer).held = Some(held);
    }

    /// What this device holds of `transfer`.
    pub fn held(&self, transfer: MailId) -> Option<&Held> {
        self.files.get(&transfer)?.held.as_ref()
    }

    /// This device stopped fetching `transfer` without finishing it.
    pub fn release(&mut self, transfer: MailId) {
        if let Some(e) = self.files.get_mut(&transfer) {
            e.held = None;
        }
    }
}

/// The serving end's view of one file for one asking member.
pub trait Shelf: Send + 'static {
    /// The chunks held now.
    fn have(&self) -> Have;
    /// Other holders to name.
    fn holders(&self) -> Vec<Holder>;
    /// Whether to send chunk `index`.
    fn give(&self, index: u64, force: bool) -> Give;
    /// Told about every chunk sent: `bytes` long.
    fn sent(&mut self, bytes: u64) -> impl std::future::Future<Output = ()> + Send;
}

/// Why serving stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The stream failed or the member spoke out of turn.
    #[error("the group-file stream failed: {0}")]
    Stream(String),
    /// We refused the member, and said why.
    #[error("refused: {}", .0.message)]
    Refused(ErrorBody),
}

/// Reads a member's opening request: which offer, which root.
pub async fn read_open<R: AsyncRead + Unpin>(r: &mut R) -> Result<(MailId, ContentHash), ShareError> {
    match tokio::time::timeout(ASK_TIMEOUT, read_frame::<_, SwarmRequest>(r, MAX_SWARM_FRAME)).await {
        Ok(Ok(SwarmRequest::Open { transfer, root })) => Ok((transfer, root)),
        Ok(Ok(other)) => Err(ShareError::Stream(format!("expected an open request, got {other:?}"))),
        Ok(Err(e)) => Err(ShareError::Stream(e.to_string())),
        Err(_) => Err(ShareError::Stream("the member asked for nothing".into())),
    }
}

/// Answers a member with a refusal and ends the stream.
pub async fn refuse<W: AsyncWrite + Unpin>(w: &mut W, body: ErrorBody) -> ShareError {
    let _ = write_frame(w, &SwarmReply::Refused(body.clone()), MAX_SWARM_FRAME).await;
    let _ = w.close().await;
    ShareError::Refused(body)
}

fn changed() -> ErrorBody {
    ErrorBody::new(ErrorCode::Conflict, "the file changed on the offering device after it was offered; offer it again")
}

/// Serves the file at `path`, described by `manifest`, on `stream` (after
/// [`read_open`]) until the member closes it. `origin`: this device
/// offered the file, so a chunk that no longer matches ends the stream
/// (the file changed); a member's partial file merely lacks that chunk.
pub async fn serve_swarm<S>(
    stream: S,
    manifest: Arc<Manifest>,
    path: PathBuf,
    origin: bool,
    shelf: &mut impl Shelf,
) -> Result<(), ShareError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = stream.split();
    let stream_err = |e: io::Error| ShareError::Stream(e.to_string());
    let file = match open_file(&path, origin, manifest.size) {
        Ok(f) => Arc::new(f),
        Err(body) => return Err(refuse(&mut wr, body).await),
    };
    write_frame(&mut wr, &SwarmReply::Manifest(manifest.encode()), MAX_SWARM_FRAME).await.map_err(stream_err)?;
    wr.flush().await.map_err(stream_err)?;
    let count = manifest.count();
    // Every chunk twice over, plus slack: a member asking for more is broken.
    let mut budget = count.saturating_mul(2).saturating_add(64);
    let buffers = Buffers::new(1);
    loop {
        let req = match tokio::time::timeout(IDLE, read_frame::<_, SwarmRequest>(&mut rd, MAX_SWARM_FRAME)).await {
            Err(_) => break,
            // The member closed its side: it is done with us.
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Ok(Err(e)) => return Err(stream_err(e)),
            Ok(Ok(r)) => r,
        };
        match req {
            SwarmRequest::Status => {
                let reply = SwarmReply::Holding { have: shelf.have(), holders: shelf.holders() };
                write_frame(&mut wr, &reply, MAX_SWARM_FRAME).await.map_err(stream_err)?;
            }
            SwarmRequest::Want { chunks, force } if chunks.len() <= MAX_SWARM_WANT => {
                for index in chunks {
                    let index = u64::from(index);
                    let reply = match shelf.give(index, force) {
                        Give::Send if budget > 0 => {
                            budget -= 1;
                            match read_chunk(&file, &manifest, index, &buffers).await {
                                Some(data) => {
                                    let header = SwarmReply::Chunk { index: index as u32, len: data.len() as u32 };
                                    write_frame(&mut wr, &header, MAX_SWARM_FRAME).await.map_err(stream_err)?;
                                    wr.write_all(&data).await.map_err(stream_err)?;
                                    shelf.sent(data.len() as u64).await;
                                    buffers.give(data);
                                    continue;
                                }
                                None if origin => return Err(refuse(&mut wr, changed()).await),
                                None => SwarmReply::Missing(index as u32),
                            }
                        }
                        Give::Send => {
                            let why = "the member asked for the same chunks too many times";
                            return Err(refuse(&mut wr, ErrorBody::new(ErrorCode::InvalidInput, why)).await);
                        }
                        Give::Missing => SwarmReply::Missing(index as u32),
                        Give::Elsewhere(holder) => SwarmReply::Elsewhere { index: index as u32, holder },
                    };
                    write_frame(&mut wr, &reply, MAX_SWARM_FRAME).await.map_err(stream_err)?;
                }
            }
            other => {
                let why = format!("unexpected request {other:?}");
                return Err(refuse(&mut wr, ErrorBody::new(ErrorCode::InvalidInput, why)).await);
            }
        }
        wr.flush().await.map_err(stream_err)?;
    }
    let _ = wr.close().await;
    Ok(())
}

/// Opens the file served: the offered file must still have its size; a
/// member's file is never opened through a symlink.
fn open_file(path: &std::path::Path, origin: bool, size: u64) -> Result<File, ErrorBody> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if !origin {
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    // The offering device losing its file is final; a member may yet finish.
    let code = if origin { ErrorCode::NotFound } else { ErrorCode::Unavailable };
    let unavailable = |e: io::Error| ErrorBody::new(code, format!("this device can no longer read the file: {e}"));
    let file = options.open(path).map_err(unavailable)?;
    let meta = file.metadata().map_err(unavailable)?;
    if !meta.is_file() || meta.len() != size {
        return Err(if origin {
            changed()
        } else {
            ErrorBody::new(ErrorCode::Unavailable, "this device no longer holds the file")
        });
    }
    Ok(file)
}

/// Reads chunk `index` off the runtime; `None` when it does not match the
/// manifest.
async fn read_chunk(file: &Arc<File>, manifest: &Arc<Manifest>, index: u64, buffers: &Buffers) -> Option<Vec<u8>> {
    let (file, manifest, buffers) = (file.clone(), manifest.clone(), buffers.clone());
    tokio::task::spawn_blocking(move || {
        let (offset, len) = manifest.chunk_span(index)?;
        let mut buf = buffers.take(len as usize);
        file.read_exact_at(&mut buf, offset).ok()?;
        manifest.verify_chunk(index, &buf).ok()?;
        Some(buf)
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(n: u8) -> Holder {
        Holder { user: format!("u{n}"), device: DeviceId([n; 16]) }
    }

    #[test]
    fn the_origin_sends_each_chunk_to_one_member_unless_forced() {
        let mut b = SwarmBook::default();
        let t = MailId([1; 16]);
        assert_eq!(b.give(t, 4, 0, &holder(1), false), Give::Send);
        assert_eq!(b.give(t, 4, 0, &holder(1), false), Give::Send, "the same member again");
        assert_eq!(b.give(t, 4, 0, &holder(2), false), Give::Elsewhere(holder(1)));
        assert_eq!(b.give(t, 4, 0, &holder(2), true), Give::Send, "forced");
        assert_eq!(b.give(t, 4, 1, &holder(2), false), Give::Send);
        assert_eq!(b.give(t, 4, 1, &holder(3), false), Give::Elsewhere(holder(2)));
        assert_eq!(b.give(t, 4, 9, &holder(3), false), Give::Missing);
    }

    #[test]
    fn holders_are_bounded_newest_first_and_never_the_asker() {
        let mut b = SwarmBook::default();
        let t = MailId([1; 16]);
        let now = Instant::now();
        for n in 0..100u8 {
            b.note_holder(t, holder(n), now);
        }
        b.note_holder(t, holder(98), now);
        let named = b.holders(t, &DeviceId([99; 16]));
        assert_eq!(named.len(), MAX_HOLDERS);
        assert_eq!(named[0], holder(98));
        assert!(named.iter().all(|h| h.device != DeviceId([99; 16])));
        for n in 0..(MAX_FILES as u8 + 5) {
            b.note_holder(MailId([n; 16]), holder(1), now);
        }
        assert!(b.files.len() <= MAX_FILES);
    }
}
