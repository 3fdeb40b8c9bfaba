//! The receiving side of a group file: one attempt at fetching it from
//! several member devices at once, resuming from whatever is already
//! verified on disk.
//!
//! Each source (the origin, which offered the file, and any member device
//! known to hold some of it) is a link: a task that opens a group-file
//! stream to it, writes the requests it is given and passes every reply
//! back. The loop between the links owns the [`Swarm`] plan: it asks each
//! link for chunks, polls each for its status (which chunks it holds, and
//! which other members hold some), connects to members as it learns of
//! them, and hands arrived chunks to the same writer thread as a one-to-one
//! fetch, which verifies each against the manifest before writing it.
//! Whatever is verified is published through [`Reach::holding`] so this
//! device can serve it to the other members at once.

use super::buffers::Buffers;
use super::manifest::{Have, Manifest};
use super::partial::PartialError;
use super::receive::{BUFFERS, FetchError, Job, Progress, Want, Writer, Written, bytes_of, local, start_writer};
use super::swarm::{Swarm, SwarmLimits, start_for};
use super::swarm_wire::{Holder, MAX_HOLDERS, MAX_SWARM_FRAME, SwarmReply, SwarmRequest};
use crate::mesh::codec::{read_frame, write_frame};
use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use skein_proto::bytes::{ContentHash, DeviceId, MailId};
use skein_proto::{ErrorBody, ErrorCode};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Sources connected at once.
const MAX_LINKS: usize = 8;
/// How often a member's holdings are asked for.
const STATUS_EVERY: Duration = Duration::from_millis(400);
/// How often the origin is asked which members hold chunks.
const ORIGIN_STATUS_EVERY: Duration = Duration::from_secs(1);
/// How long before a source whose stream broke is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long before a source that could not be opened is tried again,
/// doubled at each failure (a peer may drop a stream that comes before it
/// has confirmed this device).
const REOPEN_AFTER: Duration = Duration::from_millis(250);
/// Opening failures in a row after which a source counts as unreachable.
const MAX_OPEN_FAILURES: u32 = 3;
/// How long a source that refused or lied is left alone.
const SHUNNED: Duration = Duration::from_secs(600);
/// Longest time without a chunk arriving.
const STALL: Duration = Duration::from_secs(45);
/// Longest time with no source connected.
const ALONE: Duration = Duration::from_secs(10);
/// How long a source may take to answer the opening request.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Planning rounds happen at least this often.
const TICK: Duration = Duration::from_millis(100);

/// How a fetch reaches member devices, and where it publishes what it holds.
pub trait Reach: Send + Sync + 'static {
    /// A group-file stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Opens a group-file stream to `holder` (connecting first when
    /// needed; refusing a device that is not a member). Returns it with
    /// the rank of its path, lower first: 0 direct on this device's own
    /// network, 1 direct elsewhere, 2 relayed.
    fn open(&self, holder: Holder) -> BoxFuture<'static, Result<(Self::Stream, u8), String>>;
    /// What this device holds of the file now, and where.
    fn holding(&self, manifest: &Arc<Manifest>, path: &Path, have: &Have);
    /// A member said `holder` holds chunks of the file.
    fn learned(&self, holder: &Holder);
    /// The file's manifest, verified against the offer, was learnt.
    fn manifest(&self, manifest: &Manifest);
}

/// What to fetch, and from whom to start.
#[derive(Debug, Clone)]
pub struct GroupWant {
    /// The offer and where it goes.
    pub want: Want,
    /// This device.
    pub me: DeviceId,
    /// The device that offered it.
    pub origin: Holder,
    /// Other members known to hold chunks.
    pub known: Vec<Holder>,
    /// The manifest, when a previous attempt learnt it.
    pub manifest: Option<Manifest>,
}

enum Event {
    Opened { device: DeviceId, rank: u8, manifest: Arc<Manifest> },
    Holding { device: DeviceId, have: Have, holders: Vec<Holder> },
    Chunk { device: DeviceId, index: u64, data: Vec<u8> },
    Missing { device: DeviceId, index: u64 },
    Elsewhere { device: DeviceId, index: u64, holder: Holder },
    Gone { device: DeviceId, why: String, refused: Option<ErrorBody>, opened: bool },
}

enum Cmd {
    Status,
    Want(Vec<u32>, bool),
}

struct Link {
    cmds: mpsc::Sender<Cmd>,
    task: tokio::task::JoinHandle<()>,
    origin: bool,
    opened: bool,
    last_status: Option<Instant>,
    status_out: bool,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fetch once the manifest is known.
struct Running {
    manifest: Arc<Manifest>,
    plan: Swarm,
    jobs: std::sync::mpsc::Sender<Job>,
    written: mpsc::UnboundedReceiver<Written>,
    done: oneshot::Receiver<Result<PathBuf, PartialError>>,
    part: PathBuf,
}

async fn start(want: &Want, manifest: Arc<Manifest>, me: DeviceId, spare: Buffers) -> Result<Running, FetchError> {
    if manifest.size != want.size {
        return Err(FetchError::Invalid(format!(
            "the file has {} bytes but {} were offered",
            manifest.size, want.size
        )));
    }
    let Writer { jobs, written, done, have, part } = start_writer(want, (*manifest).clone(), spare).await?;
    let plan = Swarm::new(have, start_for(&me, manifest.count()), SwarmLimits::default());
    Ok(Running { manifest, plan, jobs, written, done, part })
}

async fn next_written(run: &mut Option<Running>) -> Option<Written> {
    match run {
        Some(r) => r.written.recv().await,
        None => std::future::pending().await,
    }
}

/// Fetches `job` from the members `reach` reaches, reporting progress, and
/// returns where the complete, verified file landed.
pub async fn gather<R: Reach>(
    reach: Arc<R>,
    job: GroupWant,
    mut progress: impl FnMut(Progress),
) -> Result<PathBuf, FetchError> {
    let me = job.me;
    let origin = job.origin.device;
    let (ev_tx, mut events) = mpsc::channel::<Event>(64);
    let mut links: HashMap<DeviceId, Link> = HashMap::new();
    let mut known: BTreeMap<DeviceId, Holder> = BTreeMap::new();
    known.insert(origin, job.origin.clone());
    for h in job.known.into_iter().filter(|h| h.device != me) {
        known.insert(h.device, h);
    }
    let mut blocked: HashMap<DeviceId, Instant> = HashMap::new();
    let mut failures: HashMap<DeviceId, u32> = HashMap::new();
    let mut origin_refusal: Option<ErrorBody> = None;
    let mut run: Option<Running> = None;
    // Chunk buffers, shared by every link and the writer.
    let buffers = Buffers::new(BUFFERS + MAX_LINKS * 4);
    if let Some(m) = job.manifest {
        let r = start(&job.want, Arc::new(m), me, buffers.clone()).await?;
        progress(Progress { done: bytes_of(&r.manifest, r.plan.have()), size: r.manifest.size, refetched: 0 });
        reach.holding(&r.manifest, &r.part, r.plan.have());
        run = Some(r);
    }
    let mut last_progress = Instant::now();
    let mut alone_since: Option<Instant> = None;

    loop {
        let now = Instant::now();
        if run.as_ref().is_some_and(|r| r.plan.is_done()) {
            break;
        }
        // Connect: members the origin named first, then the origin, then
        // every other member known to hold chunks.
        let mut candidates: Vec<DeviceId> = run.as_ref().map(|r| r.plan.wanted()).unwrap_or_default();
        candidates.push(origin);
        candidates.extend(known.keys().copied());
        for d in candidates {
            if links.len() >= MAX_LINKS {
                break;
            }
            if d == me || links.contains_key(&d) || blocked.get(&d).is_some_and(|t| now < *t) {
                continue;
            }
            let Some(holder) = known.get(&d).cloned() else { continue };
            let (cmds, cmd_rx) = mpsc::channel(64);
            let task = tokio::spawn(link(
                reach.clone(),
                holder,
                job.want.transfer,
                job.want.root,
                ev_tx.clone(),
                cmd_rx,
                buffers.clone(),
            ));
            links.insert(
                d,
                Link { cmds, task, origin: d == origin, opened: false, last_status: None, status_out: false },
            );
        }
        // Ask.
        if let Some(r) = &mut run {
            for ask in r.plan.next(now) {
                let chunks = ask.chunks.iter().map(|&c| c as u32).collect();
                if let Some(l) = links.get(&ask.device) {
                    let _ = l.cmds.try_send(Cmd::Want(chunks, ask.force));
                }
            }
        }
        for l in links.values_mut().filter(|l| l.opened && !l.status_out) {
            let every = if l.origin { ORIGIN_STATUS_EVERY } else { STATUS_EVERY };
            if l.last_status.is_none_or(|t| now.saturating_duration_since(t) >= every)
                && l.cmds.try_send(Cmd::Status).is_ok()
            {
                l.status_out = true;
                l.last_status = Some(now);
            }
        }
        // Give up this attempt when nothing moves.
        if links.is_empty() {
            let since = *alone_since.get_or_insert(now);
            let others = known.keys().any(|d| *d != origin && blocked.get(d).is_none_or(|t| now >= *t));
            if let Some(b) = &origin_refusal
                && !others
            {
                return Err(FetchError::Refused(b.clone()));
            }
            if now.saturating_duration_since(since) >= ALONE {
                return Err(FetchError::Interrupted(format!(
                    "neither {} nor another member holding the file can be reached",
                    job.origin.user
                )));
            }
        } else {
            alone_since = None;
        }
        if now.saturating_duration_since(last_progress) >= STALL {
            return Err(FetchError::Interrupted("no member device sent anything for 45 s".into()));
        }

        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { continue };
                match ev {
                    Event::Opened { device, rank, manifest } => {
                        if let Some(l) = links.get_mut(&device) {
                            l.opened = true;
                        }
                        if run.is_none() {
                            let r = start(&job.want, manifest.clone(), me, buffers.clone()).await?;
                            reach.manifest(&manifest);
                            progress(Progress {
                                done: bytes_of(&r.manifest, r.plan.have()),
                                size: r.manifest.size,
                                refetched: 0,
                            });
                            reach.holding(&r.manifest, &r.part, r.plan.have());
                            run = Some(r);
                            last_progress = Instant::now();
                        }
                        if let Some(r) = &mut run {
                            r.plan.add(device, device == origin, rank);
                        }
                    }
                    Event::Holding { device, have, holders } => {
                        if let Some(l) = links.get_mut(&device) {
                            l.status_out = false;
                        }
                        if let Some(r) = &mut run {
                            r.plan.holding(device, have);
                        }
                        for h in holders.into_iter().take(MAX_HOLDERS).filter(|h| h.device != me) {
                            reach.learned(&h);
                            known.entry(h.device).or_insert(h);
                        }
                    }
                    Event::Chunk { device, index, data } => {
                        if let Some(r) = &mut run
                            && r.plan.arrived(device, index)
                        {
                            if r.jobs.send(Job::Chunk(index, data)).is_err() {
                                return Err(FetchError::Local("the file writer stopped".into()));
                            }
                            last_progress = Instant::now();
                        }
                    }
                    Event::Missing { device, index } => {
                        if let Some(r) = &mut run {
                            r.plan.missing(device, index);
                        }
                    }
                    Event::Elsewhere { device, index, holder } => {
                        if let Some(r) = &mut run {
                            if device != origin {
                                r.plan.missing(device, index);
                            } else if holder.device == me {
                                // The origin thinks this device has it; ask again with force.
                                r.plan.elsewhere(device, index, me, now);
                                r.plan.unreachable(me);
                            } else {
                                r.plan.elsewhere(device, index, holder.device, now);
                                reach.learned(&holder);
                                known.entry(holder.device).or_insert(holder);
                            }
                        }
                    }
                    Event::Gone { device, why, refused, opened } => {
                        links.remove(&device);
                        tracing::debug!(transfer = %job.want.transfer, %device, %why, "a group-file source went away");
                        let shun = refused.as_ref().is_some_and(|b| b.code != ErrorCode::Unavailable);
                        let tries = failures.entry(device).or_insert(0);
                        *tries = if opened { 0 } else { *tries + 1 };
                        let wait = match (shun, opened) {
                            (true, _) => SHUNNED,
                            (false, true) => RETRY_AFTER,
                            (false, false) => (REOPEN_AFTER * 2u32.pow((*tries - 1).min(5))).min(RETRY_AFTER * 5),
                        };
                        blocked.insert(device, now + wait);
                        if device == origin && shun {
                            origin_refusal = refused;
                        }
                        if let Some(r) = &mut run {
                            // Chunks the origin sent this member are asked of the
                            // origin again at once only when the member cannot
                            // be reached; otherwise they wait for it to come back.
                            if shun || *tries >= MAX_OPEN_FAILURES {
                                r.plan.unreachable(device);
                            } else {
                                r.plan.remove(device);
                            }
                        }
                    }
                }
            }
            w = next_written(&mut run) => {
                let Some(r) = &mut run else { continue };
                match w {
                    Some(Written::Saved(list)) => {
                        for i in list {
                            r.plan.stored(i);
                        }
                        progress(Progress {
                            done: bytes_of(&r.manifest, r.plan.have()),
                            size: r.manifest.size,
                            refetched: r.plan.refetched(),
                        });
                        reach.holding(&r.manifest, &r.part, r.plan.have());
                        last_progress = Instant::now();
                    }
                    Some(Written::Bad(index)) => {
                        tracing::info!(transfer = %job.want.transfer, index, "a chunk failed verification; asking again");
                        if let Some(d) = r.plan.bad(index) {
                            tracing::warn!(transfer = %job.want.transfer, device = %d, "a member sent bad chunks; leaving it");
                            links.remove(&d);
                            r.plan.remove(d);
                            blocked.insert(d, now + SHUNNED);
                        }
                    }
                    Some(Written::Failed(e)) => return Err(local(e)),
                    None => return Err(FetchError::Local("the file writer stopped".into())),
                }
            }
            _ = tokio::time::sleep(TICK) => {}
        }
    }

    links.clear();
    let Some(r) = run else { return Err(FetchError::Local("nothing to finish".into())) };
    let Running { manifest, jobs, done, .. } = r;
    let _ = jobs.send(Job::Finish);
    drop(jobs);
    match done.await {
        Ok(Ok(path)) => {
            reach.holding(&manifest, &path, &Have::all(manifest.count()));
            Ok(path)
        }
        Ok(Err(e)) => Err(local(e)),
        Err(_) => Err(FetchError::Local("the file writer stopped".into())),
    }
}

/// One source: opens the stream, then writes what it is told and passes
/// every reply on, until either side stops.
async fn link<R: Reach>(
    reach: Arc<R>,
    holder: Holder,
    transfer: MailId,
    root: ContentHash,
    events: mpsc::Sender<Event>,
    mut cmds: mpsc::Receiver<Cmd>,
    buffers: Buffers,
) {
    let device = holder.device;
    let gone = |why: String, refused: Option<ErrorBody>, opened: bool| Event::Gone { device, why, refused, opened };
    let (stream, rank) = match reach.open(holder).await {
        Ok(s) => s,
        Err(why) => {
            let _ = events.send(gone(why, None, false)).await;
            return;
        }
    };
    let (mut rd, mut wr) = stream.split();
    let opening = async {
        write_frame(&mut wr, &SwarmRequest::Open { transfer, root }, MAX_SWARM_FRAME).await?;
        wr.flush().await
    };
    if let Err(e) = opening.await {
        let _ = events.send(gone(e.to_string(), None, false)).await;
        return;
    }
    let manifest = match tokio::time::timeout(OPEN_TIMEOUT, read_frame::<_, SwarmReply>(&mut rd, MAX_SWARM_FRAME)).await
    {
        Ok(Ok(SwarmReply::Manifest(bytes))) => match Manifest::decode(&bytes, &root.0) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                let why = format!("it sent a manifest that is not the offered file's: {e}");
                let body = ErrorBody::new(ErrorCode::InvalidInput, why.clone());
                let _ = events.send(gone(why, Some(body), false)).await;
                return;
            }
        },
        Ok(Ok(SwarmReply::Refused(b))) => {
            let _ = events.send(gone(b.message.clone(), Some(b), false)).await;
            return;
        }
        Ok(Ok(other)) => {
            let _ = events.send(gone(format!("it answered {other:?} instead of a manifest"), None, false)).await;
            return;
        }
        Ok(Err(e)) => {
            let _ = events.send(gone(e.to_string(), None, false)).await;
            return;
        }
        Err(_) => {
            let _ = events.send(gone("it did not answer".into(), None, false)).await;
            return;
        }
    };
    if events.send(Event::Opened { device, rank, manifest: manifest.clone() }).await.is_err() {
        return;
    }
    let reading = async {
        loop {
            let ev = match read_frame::<_, SwarmReply>(&mut rd, MAX_SWARM_FRAME).await {
                Ok(SwarmReply::Chunk { index, len }) => match manifest.chunk_span(u64::from(index)) {
                    Some((_, want)) if want == u64::from(len) => {
                        let mut data = buffers.take(len as usize);
                        if let Err(e) = rd.read_exact(&mut data).await {
                            return (e.to_string(), None);
                        }
                        Event::Chunk { device, index: u64::from(index), data }
                    }
                    _ => return (format!("it sent chunk {index} with the wrong length"), None),
                },
                Ok(SwarmReply::Holding { have, holders }) => Event::Holding { device, have, holders },
                Ok(SwarmReply::Missing(index)) => Event::Missing { device, index: u64::from(index) },
                Ok(SwarmReply::Elsewhere { index, holder }) => {
                    Event::Elsewhere { device, index: u64::from(index), holder }
                }
                Ok(SwarmReply::Refused(b)) => return (b.message.clone(), Some(b)),
                Ok(SwarmReply::Manifest(_)) => return ("it sent a second manifest".to_owned(), None),
                Err(e) => return (e.to_string(), None),
            };
            if events.send(ev).await.is_err() {
                return ("the fetch stopped".to_owned(), None);
            }
        }
    };
    let writing = async {
        while let Some(cmd) = cmds.recv().await {
            let frame = match cmd {
                Cmd::Status => SwarmRequest::Status,
                Cmd::Want(chunks, force) => SwarmRequest::Want { chunks, force },
            };
            let sent = async {
                write_frame(&mut wr, &frame, MAX_SWARM_FRAME).await?;
                wr.flush().await
            };
            if let Err(e) = sent.await {
                return (e.to_string(), None);
            }
        }
        let _ = wr.close().await;
        ("the fetch is done with it".to_owned(), None)
    };
    let (why, refused) = tokio::select! {
        r = reading => r,
        w = writing => w,
    };
    let _ = events.send(gone(why, refused, true)).await;
}
