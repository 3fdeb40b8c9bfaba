//! The message lane: one long-lived stream per peer carrying its requests,
//! each answered by id in whatever order the answers complete.
//!
//! On the request-response protocol every message opened a new stream and
//! went through the swarm task on both ends. A lane is opened once per
//! verified peer ([`LANE_PROTOCOL`]) and then carries many requests at once
//! (up to [`MAX_IN_FLIGHT`] answered concurrently by the receiver), written
//! and read by tasks of its own, outside the swarm task. The receiver takes
//! lanes only from peers that passed the hello (others are dropped on arrival),
//! hands each request to the node's handler directly, and writes each
//! answer as it completes.
//!
//! How long a caller waits for an answer is the caller's to bound (see
//! [`super::patience`]).
//!
//! Which connection a lane's stream takes is libp2p's choice (any of the
//! peer's, at random), and the mesh task learns of a new connection a
//! moment after libp2p does. So a lane opened while the peer's path was
//! relayed is retired as soon as the path turns direct ([`Lanes::set_path`]):
//! its requests in flight finish on it, labelled relayed, and the next
//! ones open a lane on the direct path. The serving end labels each request
//! with the peer's path as it arrives ([`Paths`]). A relayed connection
//! closes as soon as a direct one is there, so a label can be wrong only
//! for the requests of that moment.
//!
//! A lane that breaks (its connection closed as a relayed one gave way to
//! a direct one, or the peer runs a version without lanes) fails its
//! requests back to the caller, who sends them on the request-response
//! protocol instead, with its hello recovery and retry; the next request
//! opens a new lane. Requests are idempotent (messages and receipts carry
//! ids), so a request that is answered on both paths is still stored once.

use super::codec::{read_frame, write_frame};
use super::state::{Path, Verified};
use futures::io::{ReadHalf, WriteHalf};
use futures::stream::FuturesUnordered;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use skein_proto::peer::{LANE_PROTOCOL, LaneRequest, LaneResponse, MAX_PEER_FRAME, PeerRequest, PeerResponse};
use skein_proto::{ErrorBody, ErrorCode};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The protocol name as libp2p wants it.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new(LANE_PROTOCOL);
/// Requests one lane has in progress at the receiver at most; more wait
/// unread, so the sender's writes wait too.
pub const MAX_IN_FLIGHT: usize = 256;
/// How long a peer that does not speak the lane protocol is not asked again.
const UNSUPPORTED_MEMORY: Duration = Duration::from_secs(300);

/// What answers a verified peer's request: the node's inbox.
pub type Handler =
    Arc<dyn Fn(Box<Verified>, Path, PeerRequest) -> Pin<Box<dyn Future<Output = PeerResponse> + Send>> + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One open lane to a peer.
#[derive(Clone)]
struct Lane {
    frames: mpsc::Sender<LaneRequest>,
    /// The peer's path when the lane opened (the label of last resort).
    path: Path,
    shared: Arc<Shared>,
}

/// Every connected peer's path now, kept by the mesh task.
#[derive(Clone, Default)]
struct Paths(Arc<Mutex<HashMap<PeerId, Path>>>);

impl Paths {
    /// Records `peer`'s path (`None`: no connection is left).
    fn set(&self, peer: PeerId, path: Option<Path>) {
        let mut paths = lock(&self.0);
        match path {
            Some(p) => paths.insert(peer, p),
            None => paths.remove(&peer),
        };
    }

    /// `peer`'s path now, or `otherwise` when it has no connection left.
    fn get(&self, peer: &PeerId, otherwise: Path) -> Path {
        lock(&self.0).get(peer).copied().unwrap_or(otherwise)
    }
}

/// The lanes this node serves, by peer and the path they came on, each
/// with what ends it.
type Served = Arc<Mutex<HashMap<PeerId, Vec<(Path, CancellationToken)>>>>;

/// What a lane's callers and its tasks share.
struct Shared {
    /// Requests waiting for their answers, by id.
    pending: Mutex<HashMap<u64, oneshot::Sender<PeerResponse>>>,
    next: AtomicU64,
    broken: AtomicBool,
    /// The peer answered that it does not speak the lane protocol.
    unsupported: AtomicBool,
    /// Stops the lane's tasks once it is broken.
    ended: CancellationToken,
}

/// A peer's lane, and the lock that lets one caller at a time open it.
#[derive(Default)]
struct Slot {
    opening: tokio::sync::Mutex<()>,
    lane: Mutex<Option<Lane>>,
}

impl Slot {
    /// The lane, if it can take new requests given the peer's path now (a
    /// relayed lane cannot once the path is direct).
    fn usable(&self, now: Path) -> Option<Lane> {
        let fits = |l: &&Lane| l.path == Path::Direct || now == Path::Relayed;
        lock(&self.lane).as_ref().filter(|l| !l.shared.broken.load(Ordering::Relaxed)).filter(fits).cloned()
    }
}

/// A request waiting on a lane; dropped (answered, or given up by its
/// caller), it is forgotten, so a late answer finds no one and is dropped.
struct Waiting<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.id);
    }
}

/// This node's lanes to its peers, opened on demand.
#[derive(Clone, Default)]
pub struct Lanes {
    slots: Arc<Mutex<HashMap<PeerId, Arc<Slot>>>>,
    unsupported: Arc<Mutex<HashMap<PeerId, Instant>>>,
    counts: Arc<Counts>,
    paths: Paths,
    served: Served,
}

/// Requests answered, by the way they went.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub lanes: AtomicU64,
    pub peer_protocol: AtomicU64,
}

/// How many of this node's requests were answered on lanes and how many on
/// the peer protocol (hellos not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// On lanes.
    pub lanes: u64,
    /// On the request-response peer protocol.
    pub peer_protocol: u64,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes").finish_non_exhaustive()
    }
}

impl Lanes {
    /// Sends `req` to `peer` on its lane, opening one if needed (`open`
    /// opens the stream and says the peer's path, or why not), and waits
    /// for the answer, for as long as the lane lasts: the caller bounds
    /// the wait (see [`super::patience`]), and a request given up is
    /// forgotten. Returns the answer and its path, or why no lane could
    /// carry it, with the request back.
    pub async fn request<F, Fut>(
        &self,
        peer: PeerId,
        req: PeerRequest,
        open: F,
    ) -> Result<(PeerResponse, Path), (String, PeerRequest)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(libp2p::Stream, Path), (String, bool)>>,
    {
        let lane = match self.lane(peer, open).await {
            Ok(l) => l,
            Err(why) => return Err((why, req)),
        };
        let id = lane.shared.next.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        lock(&lane.shared.pending).insert(id, reply);
        let waiting = Waiting { shared: &lane.shared, id };
        // A closed channel means the writer ended (it marks the lane broken
        // as it goes; marked here too, so the next request opens another
        // even before then). An answer that will never come means the lane
        // was marked broken already.
        if lane.frames.send(LaneRequest { id, req: req.clone() }).await.is_err() {
            broken(&lane.shared);
            return Err(("the lane closed".into(), req));
        }
        let answer = answer.await;
        drop(waiting);
        match answer {
            Ok(resp) => {
                self.counts.lanes.fetch_add(1, Ordering::Relaxed);
                Ok((resp, lane.path))
            }
            Err(_) => {
                if lane.shared.unsupported.load(Ordering::Relaxed) {
                    lock(&self.unsupported).insert(peer, Instant::now());
                    return Err(("the peer does not speak the lane protocol".into(), req));
                }
                Err(("the lane broke".into(), req))
            }
        }
    }

    /// The open lane to `peer`, or a new one.
    async fn lane<F, Fut>(&self, peer: PeerId, mut open: F) -> Result<Lane, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(libp2p::Stream, Path), (String, bool)>>,
    {
        if let Some(at) = lock(&self.unsupported).get(&peer)
            && at.elapsed() < UNSUPPORTED_MEMORY
        {
            return Err("the peer does not speak the lane protocol".into());
        }
        let slot = lock(&self.slots).entry(peer).or_default().clone();
        if let Some(lane) = slot.usable(self.paths.get(&peer, Path::Relayed)) {
            return Ok(lane);
        }
        let _opening = slot.opening.lock().await;
        // A lane opened while the path turns direct may have gone on the
        // relayed connection that is closing: it is opened again, once.
        for _ in 0..2 {
            if let Some(lane) = slot.usable(self.paths.get(&peer, Path::Relayed)) {
                return Ok(lane);
            }
            match open().await {
                Ok((stream, path)) => {
                    let lane = start(stream, path);
                    *lock(&slot.lane) = Some(lane.clone());
                    if path == Path::Relayed && self.paths.get(&peer, Path::Relayed) == Path::Direct {
                        broken(&lane.shared);
                        continue;
                    }
                    return Ok(lane);
                }
                Err((why, unsupported)) => {
                    if unsupported {
                        lock(&self.unsupported).insert(peer, Instant::now());
                    }
                    *lock(&slot.lane) = None;
                    return Err(why);
                }
            }
        }
        Err("the path to the peer changed as its lane opened".into())
    }

    /// Records `peer`'s path now (`None`: no connection is left). Once it
    /// is direct, a lane opened while it was relayed is done: its relayed
    /// connection is closing, and a stream whose connection this end
    /// closed may never hear of it, so its requests in flight are failed
    /// back to their callers (who send them again; ids keep them once).
    /// The lanes the peer opened on a relayed connection end too.
    pub fn set_path(&self, peer: PeerId, path: Option<Path>) {
        self.paths.set(peer, path);
        if path != Some(Path::Direct) {
            return;
        }
        if let Some(slot) = lock(&self.slots).get(&peer).cloned() {
            let mut current = lock(&slot.lane);
            if let Some(lane) = current.take_if(|l| l.path == Path::Relayed) {
                tracing::debug!(%peer, "the path turned direct; the relayed lane is done");
                broken(&lane.shared);
            }
        }
        self.end_served(&peer, |p| p == Path::Relayed);
    }

    /// Ends the lanes `peer` opened to this node on the paths `which`.
    fn end_served(&self, peer: &PeerId, which: impl Fn(Path) -> bool) {
        if let Some(served) = lock(&self.served).get_mut(peer) {
            served.retain(|(path, ended)| {
                if which(*path) {
                    ended.cancel();
                }
                !ended.is_cancelled()
            });
        }
    }

    /// Notes a lane `peer` opened on `path`; the token ends it.
    fn serving(&self, peer: PeerId, path: Path) -> CancellationToken {
        let ended = CancellationToken::new();
        let mut served = lock(&self.served);
        let lanes = served.entry(peer).or_default();
        lanes.retain(|(_, e)| !e.is_cancelled());
        lanes.push((path, ended.clone()));
        ended
    }

    /// Counts a request answered on the peer protocol.
    pub(super) fn answered_on_peer_protocol(&self) {
        self.counts.peer_protocol.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far, by the way they went.
    pub fn answered(&self) -> Answered {
        Answered {
            lanes: self.counts.lanes.load(Ordering::Relaxed),
            peer_protocol: self.counts.peer_protocol.load(Ordering::Relaxed),
        }
    }

    /// Forgets everything about `peer` (its last connection closed).
    pub fn peer_gone(&self, peer: &PeerId) {
        // A stream whose connection this end closed may never hear of it:
        // its requests are failed back now.
        if let Some(slot) = lock(&self.slots).remove(peer)
            && let Some(lane) = lock(&slot.lane).take()
        {
            broken(&lane.shared);
        }
        self.end_served(peer, |_| true);
        lock(&self.served).remove(peer);
        lock(&self.unsupported).remove(peer);
    }
}

/// Starts the tasks that write and read a new outgoing lane.
fn start(stream: libp2p::Stream, path: Path) -> Lane {
    let (reader, writer) = Guarded { stream, failed: false }.split();
    let (frames, outgoing) = mpsc::channel(MAX_IN_FLIGHT);
    let shared = Shared {
        pending: Mutex::default(),
        next: AtomicU64::new(1),
        broken: AtomicBool::new(false),
        unsupported: AtomicBool::new(false),
        ended: CancellationToken::new(),
    };
    let lane = Lane { frames, path, shared: Arc::new(shared) };
    tokio::spawn(write_requests(writer, outgoing, lane.shared.clone()));
    tokio::spawn(read_answers(reader, lane.shared.clone()));
    lane
}

/// Writes requests as they come, flushing when none is waiting, until the
/// lane breaks or its last sender is gone.
async fn write_requests(mut w: WriteHalf<Guarded>, mut outgoing: mpsc::Receiver<LaneRequest>, shared: Arc<Shared>) {
    let mut batch = Vec::with_capacity(64);
    while let Some(n) = shared.ended.run_until_cancelled(outgoing.recv_many(&mut batch, 64)).await
        && n > 0
    {
        let mut failed = false;
        for frame in batch.drain(..) {
            if let Err(e) = write_frame(&mut w, &frame, MAX_PEER_FRAME).await {
                tracing::debug!(error = %e, "cannot write on a lane");
                failed = true;
                break;
            }
        }
        if failed || w.flush().await.is_err() {
            break;
        }
    }
    broken(&shared);
    let _ = w.close().await;
}

/// Reads answers and hands each to its waiting request, until the lane
/// ends or breaks.
async fn read_answers(mut r: ReadHalf<Guarded>, shared: Arc<Shared>) {
    while let Some(next) = shared.ended.run_until_cancelled(read_frame::<_, LaneResponse>(&mut r, MAX_PEER_FRAME)).await
    {
        match next {
            Ok(LaneResponse { id, resp }) => {
                if let Some(reply) = lock(&shared.pending).remove(&id) {
                    let _ = reply.send(resp);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "a lane ended");
                if super::streams::is_not_supported(&e) {
                    shared.unsupported.store(true, Ordering::Relaxed);
                }
                break;
            }
        }
    }
    broken(&shared);
}

/// Marks a lane broken, fails its waiting requests (their callers send
/// them the other way) and stops its tasks, which drop the stream.
fn broken(shared: &Shared) {
    shared.broken.store(true, Ordering::Relaxed);
    lock(&shared.pending).clear();
    shared.ended.cancel();
}

/// A lane's stream, which fails every use after one failed, where the
/// stream itself would panic: a lazily negotiated stream whose negotiation
/// failed (the peer has no lanes; the answer comes to the reader) must not
/// be written or closed by the writer after that.
struct Guarded {
    stream: libp2p::Stream,
    failed: bool,
}

impl Guarded {
    fn check(&self) -> std::io::Result<()> {
        match self.failed {
            true => Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the lane failed")),
            false => Ok(()),
        }
    }

    fn watch<T>(&mut self, r: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if matches!(r, Poll::Ready(Err(_))) {
            self.failed = true;
        }
        r
    }
}

impl futures::AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        self.check()?;
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.watch(r)
    }
}

impl futures::AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.check()?;
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.check()?;
        let r = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(r)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.check()?;
        let r = Pin::new(&mut self.stream).poll_close(cx);
        self.watch(r)
    }
}

/// Serves a lane a verified peer opened on `path`: reads its requests,
/// hands each to `handler` with the peer's path as it arrives (`path` when
/// the peer has no connection left), and writes each answer as it
/// completes. A lane on a relayed connection ends when the path turns
/// direct, and any lane when the peer's last connection closes (a stream
/// whose connection this end closed may never hear of it): requests under
/// way are finished, also when an answer cannot be written, their answers
/// not sent (the peer sends them again).
pub async fn serve(stream: libp2p::Stream, peer: PeerId, from: Verified, path: Path, lanes: Lanes, handler: Handler) {
    let ended = lanes.serving(peer, path);
    let (mut reader, mut w) = stream.split();
    // Reading in a task of its own: a frame half read is never dropped by
    // a select.
    let (requests, mut incoming) = mpsc::channel::<LaneRequest>(MAX_IN_FLIGHT);
    let read = tokio::spawn(async move {
        loop {
            match read_frame::<_, LaneRequest>(&mut reader, MAX_PEER_FRAME).await {
                Ok(req) => {
                    if requests.send(req).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a peer's lane ended");
                    return;
                }
            }
        }
    });
    let from = Box::new(from);
    let mut working = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            next = incoming.recv(), if open && working.len() < MAX_IN_FLIGHT => match next {
                Some(LaneRequest { id, req }) => {
                    if matches!(req, PeerRequest::Hello(_)) {
                        let resp = refused("a hello goes on the peer protocol, not on a lane");
                        working.push(Box::pin(async move { LaneResponse { id, resp } }) as Pin<Box<dyn Future<Output = LaneResponse> + Send>>);
                    } else {
                        let answer = handler(from.clone(), lanes.paths.get(&peer, path), req);
                        working.push(Box::pin(async move { LaneResponse { id, resp: answer.await } }));
                    }
                }
                None => open = false,
            },
            Some(done) = working.next(), if !working.is_empty() => {
                if write_frame(&mut w, &done, MAX_PEER_FRAME).await.is_err() {
                    break;
                }
                if working.is_empty() && w.flush().await.is_err() {
                    break;
                }
            }
            () = ended.cancelled() => break,
            else => break,
        }
        if !open && working.is_empty() {
            break;
        }
    }
    ended.cancel();
    read.abort();
    let _ = w.close().await;
    // Requests under way are finished whichever way the lane ended, though
    // their answers are not sent: a message already on its way into the
    // history must also reach the user's events, or it would be stored
    // unseen (the peer's resend is then a duplicate, which prints nothing).
    while working.next().await.is_some() {}
}

fn refused(why: &str) -> PeerResponse {
    PeerResponse::Refused(ErrorBody::new(ErrorCode::InvalidInput, why))
}
