//! The transfer engine: the daemon's side of file offers.
//!
//! Sending: a file is hashed into its manifest and recorded as an outgoing
//! offer; the offer itself travels as a chat message. Recipient devices then
//! open file-fetch streams to this device, and [`Transfers::serve`] answers
//! them, counting what each device was sent.
//!
//! Receiving: a new offer is recorded (and accepted at once under an
//! auto-accept rule). An accepted offer gets a fetch task that finds the
//! sending device, connects, and pulls the file; when the stream breaks or
//! the sender is away it waits (woken early when a peer connects) and tries
//! again, resuming from the chunks already verified on disk, across
//! restarts of either side. The outcome goes back to the sender as a
//! [`FileStatus`].
//!
//! A file offered to a group is one offer that every member device fetches
//! from the offering device and from each other ([`group`]).

use super::disk::{check_room, human};
use super::manifest::{CHUNK_SIZE, MAX_FILE_SIZE, Manifest};
use super::names::sanitize;
use super::receive::{self, FetchError, Want};
use super::serve::{self, Source};
use super::share::SwarmBook;
use crate::delivery::{Sender, addrs_of};
use crate::group_book::GroupBook;
use crate::history::{FileRow, History, OfferState};
use crate::lookups::Lookups;
use crate::mesh::{Mesh, Path as MeshPath};
use crate::tracker_client::TrackerClient;
use libp2p::{PeerId, StreamProtocol};
use serde_json::{Value, json};
use skein_proto::bytes::{ContentHash, DeviceId, MailId};
use skein_proto::control::{Request, Response};
use skein_proto::file::{FILE_PROTOCOL, FileOffer, FileState, FileStatus, MAX_FILE_NAME};
use skein_proto::peer::ChatMessage;
use skein_proto::{ErrorBody, ErrorCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The file-fetch protocol as libp2p names it.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new(FILE_PROTOCOL);
/// How often progress events are printed per transfer.
const EVENT_EVERY: Duration = Duration::from_millis(500);
/// How often progress is written to the history.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait between attempts to reach an away sender.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Group-file streams served at once.
const MAX_SWARM_STREAMS: usize = 64;

mod group;

/// What the receiving side does with offers.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Where accepted files go unless `accept --to` says otherwise.
    pub download_dir: PathBuf,
    /// Accept every offer from another user of the organisation.
    pub auto_accept: bool,
    /// With `auto_accept`, only files up to this size.
    pub auto_accept_max: Option<u64>,
}

/// Handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Transfers {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers").field("me", &self.inner.me).finish_non_exhaustive()
    }
}

struct Inner {
    me: String,
    device: DeviceId,
    history: History,
    mesh: Mesh,
    lookups: Lookups,
    options: TransferOptions,
    emit: crate::events::Events,
    tracker: Mutex<Option<TrackerClient>>,
    max_file_size: AtomicU64,
    live: Mutex<HashMap<Key, Live>>,
    sessions: AtomicU64,
    wake: tokio::sync::Notify,
    /// The groups this node knows; group files are served to members only.
    groups: Mutex<Option<GroupBook>>,
    /// What this device knows about group files.
    swarm: Mutex<SwarmBook>,
    /// Bounds the group-file streams served at once.
    swarm_streams: Arc<tokio::sync::Semaphore>,
}

/// A transfer in progress, as last seen.
#[derive(Debug, Clone)]
struct Live {
    /// Bytes verified (incoming) or sent to the furthest device (outgoing).
    done: u64,
    /// The path of the current stream.
    path: Option<MeshPath>,
    /// When this attempt started, and how much was done then.
    since: Instant,
    base: u64,
    /// Stops an incoming fetch, or serving an outgoing one to a device
    /// that declined it.
    cancel: Option<CancellationToken>,
    /// Outgoing: chunks and bytes sent and not yet saved to the history.
    unsaved: (u64, u64),
    last_event: Option<Instant>,
    last_save: Instant,
}

impl Live {
    fn new(done: u64) -> Live {
        Live {
            done,
            path: None,
            since: Instant::now(),
            base: done,
            cancel: None,
            unsaved: (0, 0),
            last_event: None,
            last_save: Instant::now(),
        }
    }

    fn rate(&self) -> f64 {
        let secs = self.since.elapsed().as_secs_f64();
        if secs < 0.05 { 0.0 } else { self.done.saturating_sub(self.base) as f64 / secs }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Transfers {
    /// An engine for the user `me` on `device`.
    pub fn new(
        me: String,
        device: DeviceId,
        history: History,
        mesh: Mesh,
        lookups: Lookups,
        options: TransferOptions,
        emit: crate::events::Events,
    ) -> Transfers {
        Transfers {
            inner: Arc::new(Inner {
                me,
                device,
                history,
                mesh,
                lookups,
                options,
                emit,
                tracker: Mutex::new(None),
                max_file_size: AtomicU64::new(MAX_FILE_SIZE),
                live: Mutex::new(HashMap::new()),
                sessions: AtomicU64::new(0),
                wake: tokio::sync::Notify::new(),
                groups: Mutex::new(None),
                swarm: Mutex::new(SwarmBook::default()),
                swarm_streams: Arc::new(tokio::sync::Semaphore::new(MAX_SWARM_STREAMS)),
            }),
        }
    }

    /// The tracker connection changed; with a new one, waiting fetches try again.
    pub fn set_tracker(&self, client: Option<TrackerClient>) {
        let connected = client.is_some();
        *lock(&self.inner.tracker) = client;
        if connected {
            self.inner.wake.notify_waiters();
        }
    }

    /// Applies the organisation's largest file size.
    pub fn set_max_file_size(&self, bytes: u64) {
        self.inner.max_file_size.store(bytes.min(MAX_FILE_SIZE), Ordering::Relaxed);
    }

    /// The largest file this user may send or receive.
    pub fn max_file_size(&self) -> u64 {
        self.inner.max_file_size.load(Ordering::Relaxed)
    }

    /// A peer passed the hello: fetches waiting for their sender try now.
    pub fn peer_verified(&self) {
        self.inner.wake.notify_waiters();
    }

    fn sender(&self) -> Sender {
        Sender {
            me: self.inner.me.clone(),
            device: self.inner.device,
            tracker: lock(&self.inner.tracker).clone(),
            mesh: self.inner.mesh.clone(),
            history: self.inner.history.clone(),
            lookups: self.inner.lookups.clone(),
        }
    }

    fn emit(&self, v: Value) {
        self.inner.emit.emit(v);
    }

    // ---- sending ---------------------------------------------------------

    /// Hashes the file at `path` into an offer named `name` (default: its
    /// file name). Checks it against the organisation's size limit first.
    pub async fn prepare(&self, path: &Path, name: Option<String>) -> Result<(FileOffer, Manifest, PathBuf), String> {
        let source = std::fs::canonicalize(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let meta = std::fs::metadata(&source).map_err(|e| format!("cannot open {}: {e}", source.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", source.display()));
        }
        let limit = self.max_file_size();
        if meta.len() > limit {
            return Err(format!(
                "{} is {}, larger than the {} your organisation allows for a file",
                source.display(),
                human(meta.len()),
                human(limit)
            ));
        }
        let name =
            name.unwrap_or_else(|| source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        if name.trim().is_empty() || name.len() > MAX_FILE_NAME {
            return Err(format!("the file name must be 1 to {MAX_FILE_NAME} bytes"));
        }
        let src = source.clone();
        let manifest = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&src)?;
            Manifest::from_reader(std::io::BufReader::with_capacity(CHUNK_SIZE as usize, f), CHUNK_SIZE)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
        let offer = FileOffer { name, size: manifest.size, root: ContentHash(manifest.root()) };
        Ok((offer, manifest, source))
    }

    /// Records an offer this user makes in the message `id` to `to`.
    pub async fn record_outgoing(
        &self,
        id: MailId,
        to: &str,
        offer: &FileOffer,
        manifest: &Manifest,
        source: &Path,
        image: bool,
    ) -> Result<(), String> {
        let row = FileRow {
            source: Some(source.display().to_string()),
            manifest: Some(manifest.encode()),
            ..FileRow::offer(id, true, to, offer, image)
        };
        self.inner.history.insert_file(&row).await.map(drop).map_err(|e| e.to_string())
    }

    /// Marks an outgoing offer failed: its message can never be delivered.
    pub async fn offer_failed(&self, id: MailId, why: &str) {
        let _ = self.inner.history.set_file_state(id, &[OfferState::Offered], OfferState::Failed, Some(why)).await;
    }

    /// Serves file-fetch and group-file streams from verified peers until
    /// the mesh stops.
    pub fn serve(&self) -> Result<(), String> {
        self.serve_swarm()?;
        let mut incoming = self.inner.mesh.streams().accept(PROTOCOL).map_err(|e| e.to_string())?;
        let this = self.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            while let Some((peer, stream)) = incoming.next().await {
                let this = this.clone();
                tokio::spawn(async move { this.serve_one(peer, stream).await });
            }
        });
        Ok(())
    }

    async fn serve_one(&self, peer: PeerId, stream: libp2p::Stream) {
        use futures::AsyncReadExt;
        let (mut rd, mut wr) = stream.split();
        let (transfer, root) = match serve::read_get(&mut rd).await {
            Ok(g) => g,
            Err(e) => {
                tracing::info!(%peer, error = %e, "a file request failed");
                return;
            }
        };
        let found = self.authorize(peer, transfer, root).await;
        let (source, device, path) = match found {
            Ok(f) => f,
            Err(body) => {
                tracing::info!(%peer, transfer = %transfer, why = %body.message, "refusing a file request");
                serve::refuse(&mut wr, body).await;
                return;
            }
        };
        let stream = rd.reunite(wr).expect("halves of one stream");
        let size = source.manifest.size;
        let this = self.clone();
        let key = Key::Out(transfer, device, self.inner.sessions.fetch_add(1, Ordering::Relaxed));
        let declined = CancellationToken::new();
        lock(&self.inner.live).insert(key, Live { path: Some(path), cancel: Some(declined.clone()), ..Live::new(0) });
        let _ = self.inner.history.set_target_path(transfer, device, path.as_str()).await;
        let mut sent_total = 0u64;
        let serving = serve::serve_file(stream, source, |c, b| {
            sent_total += b;
            if let Some((c, b)) = this.outgoing_progress(transfer, key, c, b, sent_total.min(size), size, true) {
                let h = this.inner.history.clone();
                tokio::spawn(async move { h.add_target_sent(transfer, device, c, b).await });
            }
        });
        // A device that declined stops being served at once, whether or not
        // its end of the stream has closed yet.
        let result = tokio::select! {
            r = serving => r,
            () = declined.cancelled() => Err(serve::ServeError::Stream("the device declined the file".into())),
        };
        // What was counted but not yet saved, taken out under the same lock
        // that `describe` reads it under, so it is never counted twice.
        let rest = lock(&self.inner.live).remove(&key).map_or((0, 0), |l| l.unsaved);
        let _ = self.inner.history.add_target_sent(transfer, device, rest.0, rest.1).await;
        if let Err(e) = result {
            tracing::info!(%peer, transfer = %transfer, error = %e, "serving a file stopped");
        }
    }

    /// Checks a fetch request: the offer exists, is ours, has this root,
    /// and the asking peer is a verified device of its recipient.
    async fn authorize(
        &self,
        peer: PeerId,
        transfer: MailId,
        root: ContentHash,
    ) -> Result<(Source, DeviceId, MeshPath), ErrorBody> {
        let not_found = || ErrorBody::new(ErrorCode::NotFound, "no such file is offered to you");
        let Some(who) = self.inner.mesh.peers().await.into_iter().find(|p| p.peer == peer) else {
            return Err(ErrorBody::new(ErrorCode::PermissionDenied, "introduce yourself (hello) first"));
        };
        let row = self.inner.history.file(transfer).await.ok().flatten().ok_or_else(not_found)?;
        if !row.outgoing || row.root != root || (who.user != row.peer_user && who.user != self.inner.me) {
            return Err(not_found());
        }
        let (Some(source), Some(bytes)) = (row.source, row.manifest) else { return Err(not_found()) };
        let manifest = Manifest::decode(&bytes, &root.0)
            .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("the offer's record is damaged: {e}")))?;
        Ok((Source { manifest, path: PathBuf::from(source) }, who.device, who.path))
    }

    /// Counts `chunks` and `bytes` more sent on the session `key`; prints
    /// a progress event when one is due, and returns the counts to save
    /// when a save is due: taken out of the session with `take`, else left
    /// in it until [`Transfers::saved_out`] says they are saved (so a
    /// listing never misses them).
    #[allow(clippy::too_many_arguments)]
    fn outgoing_progress(
        &self,
        transfer: MailId,
        key: Key,
        chunks: u64,
        bytes: u64,
        sent: u64,
        size: u64,
        take: bool,
    ) -> Option<(u64, u64)> {
        let (event, save) = {
            let mut live = lock(&self.inner.live);
            let l = live.get_mut(&key)?;
            l.done = sent;
            l.unsaved.0 += chunks;
            l.unsaved.1 += bytes;
            let save = (l.last_save.elapsed() >= SAVE_EVERY).then(|| {
                l.last_save = Instant::now();
                if take { std::mem::take(&mut l.unsaved) } else { l.unsaved }
            });
            let due = l.last_event.is_none_or(|t| t.elapsed() >= EVENT_EVERY) || sent == size;
            if due {
                l.last_event = Some(Instant::now());
            }
            (due.then(|| progress_fields(l, size)), save)
        };
        if let Some(fields) = event {
            let mut v = json!({"type": "transfer", "id": transfer.to_hex(), "direction": "out", "state": "sending"});
            merge(&mut v, fields);
            self.emit(v);
        }
        save
    }

    /// Counts saved to the history by the session `key` are no longer its own.
    fn saved_out(&self, key: Key, (chunks, bytes): (u64, u64)) {
        if let Some(l) = lock(&self.inner.live).get_mut(&key) {
            l.unsaved.0 = l.unsaved.0.saturating_sub(chunks);
            l.unsaved.1 = l.unsaved.1.saturating_sub(bytes);
        }
    }

    /// A recipient device reports on an offer of ours. Returns its event.
    pub async fn status(&self, from_user: &str, st: &FileStatus) -> Option<Value> {
        let h = &self.inner.history;
        let row = h.file(st.transfer).await.ok().flatten()?;
        if !row.outgoing || st.by_user != from_user {
            return None;
        }
        // From its recipient, this user's other device, or a member of the
        // group it was offered to.
        if row.peer_user != from_user
            && from_user != self.inner.me
            && !self.member_of_address(&row.peer_user, from_user).await
        {
            return None;
        }
        let (state, error) = match &st.state {
            FileState::Accepted => (OfferState::Accepted, None),
            FileState::Declined => (OfferState::Declined, None),
            FileState::Completed => (OfferState::Completed, None),
            FileState::Failed(why) => (OfferState::Failed, Some(why.as_str())),
        };
        let _ = h.set_target_state(st.transfer, st.by_device, state, error).await;
        if state == OfferState::Declined {
            let live = lock(&self.inner.live);
            let serving = live
                .iter()
                .filter(|(k, _)| matches!(k, Key::Out(id, d, _) if *id == st.transfer && *d == st.by_device));
            for (_, l) in serving {
                if let Some(c) = &l.cancel {
                    c.cancel();
                }
            }
        }
        // The offer stands as well as its best recipient device: completed
        // once one has it all, failed or declined only when none is still
        // fetching.
        use OfferState::*;
        let targets = h.targets(st.transfer).await.unwrap_or_default();
        let overall = [Completed, Accepted, Failed, Declined]
            .into_iter()
            .find(|s| targets.iter().any(|t| t.state == *s))
            .unwrap_or(state);
        let why = targets.iter().find(|t| t.state == overall).and_then(|t| t.error.clone());
        let _ = h.set_file_state(st.transfer, &[Offered, Accepted, Declined, Failed], overall, why.as_deref()).await;
        let mut v = self.describe(st.transfer).await.ok()?;
        v["type"] = json!("transfer");
        v["device"] = json!(st.by_device.to_hex());
        Some(v)
    }

    // ---- receiving -------------------------------------------------------

    /// A new offer arrived in `msg`. Records it, accepts it under the
    /// auto-accept rule, and returns its event.
    pub async fn offered(&self, msg: &ChatMessage, offer: &FileOffer, image: bool) -> Option<Value> {
        if msg.from_user == self.inner.me {
            return None;
        }
        let row = FileRow {
            peer_device: Some(msg.from_device),
            ..FileRow::offer(msg.id, false, &msg.from_user, offer, image)
        };
        if !self.inner.history.insert_file(&row).await.ok()? {
            return None;
        }
        let o = &self.inner.options;
        let limit = o.auto_accept_max.unwrap_or(u64::MAX).min(self.max_file_size());
        if o.auto_accept && offer.size <= limit {
            let (this, id) = (self.clone(), msg.id);
            tokio::spawn(async move {
                if let Err(e) = this.accept(id, None).await {
                    tracing::warn!(transfer = %id, error = %e, "could not accept a file automatically");
                    this.emit(json!({"type": "transfer", "id": id.to_hex(), "direction": "in", "state": "offered", "error": e}));
                }
            });
        }
        Some(json!({
            "type": "file_offer", "id": msg.id.to_hex(), "from": msg.from_user, "name": offer.name,
            "size": offer.size, "image": image,
        }))
    }

    /// Accepts an incoming offer (or resumes a failed one) into `dir`, or
    /// the downloads folder. Returns the transfer as `transfers` shows it.
    pub async fn accept(&self, id: MailId, dir: Option<PathBuf>) -> Result<Value, String> {
        let h = &self.inner.history;
        let row = h.file(id).await.map_err(|e| e.to_string())?.ok_or_else(|| no_such(id))?;
        if row.outgoing {
            return Err(format!("{} is a file you offered; only its recipient can accept it", id.to_hex()));
        }
        match row.state {
            // Already under way, or already here: nothing more to do.
            OfferState::Accepted | OfferState::Completed => return self.describe(id).await,
            OfferState::Declined => return Err(format!("{} was declined", row.name)),
            OfferState::Offered | OfferState::Failed => {}
        }
        let limit = self.max_file_size();
        if row.size > limit {
            return Err(format!(
                "{} is {}, larger than the {} your organisation allows for a file",
                row.name,
                human(row.size),
                human(limit)
            ));
        }
        let dir = dir
            .or_else(|| row.dir.as_ref().map(PathBuf::from))
            .unwrap_or_else(|| self.inner.options.download_dir.clone());
        receive::prepare_dir(&dir)?;
        let dir = std::fs::canonicalize(&dir).map_err(|e| format!("cannot use {}: {e}", dir.display()))?;
        check_room(&dir, row.size.saturating_sub(row.bytes_done))?;
        h.accept_file(id, &dir.display().to_string()).await.map_err(|e| e.to_string())?;
        self.tell_sender(&row, FileState::Accepted);
        self.spawn_fetch(id);
        self.describe(id).await
    }

    /// Declines an offer, or stops an accepted transfer.
    pub async fn decline(&self, id: MailId) -> Result<Value, String> {
        let h = &self.inner.history;
        let row = h.file(id).await.map_err(|e| e.to_string())?.ok_or_else(|| no_such(id))?;
        if row.outgoing {
            return Err(format!("{} is a file you offered; only its recipient can decline it", id.to_hex()));
        }
        use OfferState::*;
        if !h.set_file_state(id, &[Offered, Accepted, Failed], Declined, None).await.map_err(|e| e.to_string())? {
            return Err(format!("{} is already {}", row.name, row.state.as_str()));
        }
        if let Some(c) = lock(&self.inner.live).get(&Key::In(id)).and_then(|l| l.cancel.clone()) {
            c.cancel();
        }
        self.tell_sender(&row, FileState::Declined);
        self.describe(id).await
    }

    /// Starts fetch tasks for every accepted, unfinished transfer (after a restart).
    pub async fn resume_all(&self) {
        match self.inner.history.accepted_files().await {
            Ok(rows) => {
                for r in rows {
                    self.spawn_fetch(r.id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list transfers to resume"),
        }
    }

    fn tell_sender(&self, row: &FileRow, state: FileState) {
        let Some(_) = row.peer_device else { return };
        let st = FileStatus {
            transfer: row.id,
            by_user: self.inner.me.clone(),
            by_device: self.inner.device,
            state,
            at_ms: crate::now_ms(),
        };
        let (this, user) = (self.clone(), row.peer_user.clone());
        tokio::spawn(async move {
            // Kept trying for a while: without it the sender cannot tell the file arrived.
            for attempt in 0..10u32 {
                match this.sender().send_file_status(&user, st.clone()).await {
                    Ok(crate::delivery::Outcome::Held) | Err(_) => {
                        tokio::time::sleep(Duration::from_secs(2u64.pow(attempt.min(4)))).await;
                    }
                    Ok(_) => return,
                }
            }
            tracing::warn!(transfer = %st.transfer, "could not tell the sender what became of a file");
        });
    }

    fn spawn_fetch(&self, id: MailId) {
        let cancel = CancellationToken::new();
        {
            let mut live = lock(&self.inner.live);
            let l = live.entry(Key::In(id)).or_insert_with(|| Live::new(0));
            if l.cancel.as_ref().is_some_and(|c| !c.is_cancelled()) {
                return; // already running
            }
            l.cancel = Some(cancel.clone());
        }
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = this.run_fetch(id) => {}
            }
            if let Some(l) = lock(&this.inner.live).get_mut(&Key::In(id)) {
                l.cancel = None;
            }
            // A group file no longer fetched is served no more from its partial file.
            let finished = matches!(this.inner.history.file(id).await, Ok(Some(r)) if r.state == OfferState::Completed);
            if !finished {
                lock(&this.inner.swarm).release(id);
            }
        });
    }

    /// Fetches an accepted transfer until it completes, fails for good, or
    /// is declined.
    async fn run_fetch(&self, id: MailId) {
        let h = &self.inner.history;
        let mut backoff = Duration::from_secs(1);
        loop {
            let row = match h.file(id).await {
                Ok(Some(r)) if r.state == OfferState::Accepted => r,
                _ => return,
            };
            let wake = self.inner.wake.notified();
            match self.attempt(&row).await {
                Ok(saved) => {
                    let saved = saved.display().to_string();
                    if let Err(e) = h.complete_file(id, &saved).await {
                        tracing::error!(transfer = %id, error = %e, "cannot record a completed file");
                    }
                    self.tell_sender(&row, FileState::Completed);
                    self.final_event(id).await;
                    return;
                }
                Err(Attempt::Fatal(why)) => {
                    let _ = h.set_file_state(id, &[OfferState::Accepted], OfferState::Failed, Some(&why)).await;
                    self.tell_sender(&row, FileState::Failed(why));
                    self.final_event(id).await;
                    return;
                }
                Err(Attempt::Later { why, progressed }) => {
                    if progressed {
                        backoff = Duration::from_secs(1);
                    }
                    tracing::info!(transfer = %id, %why, retry_in = ?backoff, "transfer paused");
                    self.emit(json!({
                        "type": "transfer", "id": id.to_hex(), "direction": "in", "state": "waiting",
                        "reason": why, "retry_in_ms": backoff.as_millis() as u64,
                    }));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = wake => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One attempt: find the sender's device, connect, fetch; a group file
    /// from its members as well.
    async fn attempt(&self, row: &FileRow) -> Result<PathBuf, Attempt> {
        if let Some(group) = self.group_of(row.id).await {
            return self.attempt_group(row, group).await;
        }
        let later = |why: String| Attempt::Later { why, progressed: false };
        let device = row.peer_device.ok_or_else(|| Attempt::Fatal("the offer names no sending device".into()))?;
        let (peer, addrs) = self
            .locate(&row.peer_user, device)
            .await
            .ok_or_else(|| later(format!("{}'s device that offered the file is not online", row.peer_user)))?;
        let who = self.inner.mesh.connect(peer, addrs).await.map_err(|e| later(e.to_string()))?;
        if who.user != row.peer_user || who.device != device {
            return Err(Attempt::Fatal(format!(
                "the device answering is {}'s, not the one that offered the file",
                who.user
            )));
        }
        let stream = self
            .inner
            .mesh
            .streams()
            .open_stream(peer, PROTOCOL)
            .await
            .map_err(|e| later(format!("cannot open a file stream: {e}")))?;
        let want = Want {
            transfer: row.id,
            root: row.root,
            size: row.size,
            dir: PathBuf::from(row.dir.clone().unwrap_or_default()),
            name: sanitize(&row.name),
        };
        let start = row.bytes_done;
        {
            let mut live = lock(&self.inner.live);
            let l = live.entry(Key::In(row.id)).or_insert_with(|| Live::new(start));
            let cancel = l.cancel.take();
            *l = Live { path: Some(who.path), cancel, ..Live::new(start) };
        }
        let _ = self.inner.history.set_file_progress(row.id, start, Some(who.path.as_str())).await;
        let mut last = start;
        let result = receive::fetch(stream, &want, |p| {
            last = p.done;
            self.incoming_progress(row.id, p.done, p.size);
        })
        .await;
        let _ = self.inner.history.set_file_progress(row.id, last, None).await;
        result.map_err(|e| Attempt::from_fetch(e, last > start))
    }

    /// The peer id and addresses of `user`'s `device`: from the mesh when
    /// connected, else from the tracker.
    pub async fn locate(&self, user: &str, device: DeviceId) -> Option<(PeerId, Vec<libp2p::Multiaddr>)> {
        if let Some(p) = self.inner.mesh.peers().await.into_iter().find(|p| p.device == device) {
            return Some((p.peer, Vec::new()));
        }
        let client = lock(&self.inner.tracker).clone()?;
        match client.request(Request::LookupPeer { user: user.to_owned() }).await {
            Ok(Response::Peer(info)) => info.online.iter().find(|d| d.device_id == device).and_then(|d| {
                let peer = PeerId::from_bytes(&d.cert.body.peer_id).ok()?;
                Some((peer, addrs_of(d)))
            }),
            _ => None,
        }
    }

    fn incoming_progress(&self, id: MailId, done: u64, size: u64) {
        let (event, save) = {
            let mut live = lock(&self.inner.live);
            let Some(l) = live.get_mut(&Key::In(id)) else { return };
            l.done = done;
            let save = l.last_save.elapsed() >= SAVE_EVERY;
            if save {
                l.last_save = Instant::now();
            }
            let due = l.last_event.is_none_or(|t| t.elapsed() >= EVENT_EVERY) || done == size;
            if due {
                l.last_event = Some(Instant::now());
            }
            (due.then(|| progress_fields(l, size)), save)
        };
        if save {
            let h = self.inner.history.clone();
            tokio::spawn(async move { h.set_file_progress(id, done, None).await });
        }
        if let Some(fields) = event {
            let mut v = json!({"type": "transfer", "id": id.to_hex(), "direction": "in", "state": "receiving"});
            merge(&mut v, fields);
            self.emit(v);
        }
    }

    async fn final_event(&self, id: MailId) {
        if let Ok(mut v) = self.describe(id).await {
            v["type"] = json!("transfer");
            self.emit(v);
        }
    }

    // ---- listing ---------------------------------------------------------

    /// One transfer as `transfers --json` shows it.
    pub async fn describe(&self, id: MailId) -> Result<Value, String> {
        let row = self.inner.history.file(id).await.map_err(|e| e.to_string())?.ok_or_else(|| no_such(id))?;
        self.to_json(&row).await
    }

    /// Up to `limit` transfers, newest first.
    pub async fn list(&self, limit: u32) -> Result<Vec<Value>, String> {
        let rows = self.inner.history.files(limit).await.map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.to_json(r).await?);
        }
        Ok(out)
    }

    async fn to_json(&self, row: &FileRow) -> Result<Value, String> {
        let mut v = json!({
            "id": row.id.to_hex(),
            "direction": if row.outgoing { "out" } else { "in" },
            "peer": row.peer_user,
            "name": row.name,
            "size": row.size,
            "state": row.state.as_str(),
            "image": row.image,
            "error": row.error,
        });
        if row.outgoing {
            let targets = self.inner.history.targets(row.id).await.map_err(|e| e.to_string())?;
            let live = lock(&self.inner.live);
            let mut best: Option<(u64, Value)> = None;
            let mut total = (0u64, 0u64);
            let devices: Vec<Value> = targets
                .iter()
                .map(|t| {
                    let sessions: Vec<&Live> = live
                        .iter()
                        .filter(|(k, _)| matches!(k, Key::Out(id, d, _) if *id == row.id && *d == t.device))
                        .map(|(_, l)| l)
                        .collect();
                    let chunks = t.chunks_sent + sessions.iter().map(|l| l.unsaved.0).sum::<u64>();
                    let bytes = t.bytes_sent + sessions.iter().map(|l| l.unsaved.1).sum::<u64>();
                    total = (total.0 + chunks, total.1 + bytes);
                    let current = sessions.iter().max_by_key(|l| l.done);
                    let sent = if t.state == OfferState::Completed { row.size } else { bytes.min(row.size) };
                    if best.as_ref().is_none_or(|(b, _)| sent > *b) {
                        best = Some((sent, current.map(|l| progress_fields(l, row.size)).unwrap_or(Value::Null)));
                    }
                    json!({
                        "device": t.device.to_hex(), "state": t.state.as_str(), "error": t.error,
                        "chunks_sent": chunks, "bytes_sent": bytes, "path": t.path,
                    })
                })
                .collect();
            let done = if row.state == OfferState::Completed { row.size } else { best.as_ref().map_or(0, |b| b.0) };
            v["bytes_done"] = json!(done);
            v["devices"] = Value::Array(devices);
            v["chunks_sent"] = json!(total.0);
            v["bytes_sent"] = json!(total.1);
            v["source"] = json!(row.source);
            v["path"] = targets.iter().find_map(|t| t.path.as_deref()).map_or(Value::Null, |p| json!(p));
            if let Some((_, Value::Object(fields))) = best {
                for (k, f) in fields {
                    if k != "bytes_done" {
                        v[k] = f;
                    }
                }
            }
        } else {
            let live = lock(&self.inner.live).get(&Key::In(row.id)).cloned();
            let done = match (&live, row.state) {
                (_, OfferState::Completed) => row.size,
                (Some(l), OfferState::Accepted) => l.done.max(row.bytes_done),
                _ => row.bytes_done,
            };
            v["bytes_done"] = json!(done);
            v["path"] = json!(live.as_ref().and_then(|l| l.path).map(MeshPath::as_str).or(row.path.as_deref()));
            v["saved_path"] = json!(row.saved_path);
            // A group file: what this device passed on to other members.
            let shared = self.inner.history.targets(row.id).await.map_err(|e| e.to_string())?;
            if !shared.is_empty() {
                v["bytes_shared"] = json!(shared.iter().map(|t| t.bytes_sent).sum::<u64>());
                v["shared"] = shared
                    .iter()
                    .map(|t| json!({"device": t.device.to_hex(), "chunks_sent": t.chunks_sent, "bytes_sent": t.bytes_sent}))
                    .collect();
            }
            if let (Some(l), OfferState::Accepted) = (&live, row.state) {
                merge(&mut v, progress_fields(l, row.size));
                v["bytes_done"] = json!(done);
            }
        }
        Ok(v)
    }
}

/// Why an attempt did not complete.
enum Attempt {
    /// Give up: the reason is final.
    Fatal(String),
    /// Try again later.
    Later { why: String, progressed: bool },
}

impl Attempt {
    /// What a failed fetch means for the transfer; `progressed` when it
    /// verified more chunks before failing.
    fn from_fetch(e: FetchError, progressed: bool) -> Attempt {
        match e {
            FetchError::Interrupted(why) => Attempt::Later { why, progressed },
            FetchError::Refused(b) if b.code == ErrorCode::Unavailable => {
                Attempt::Later { why: b.message, progressed: false }
            }
            FetchError::Refused(b) => Attempt::Fatal(format!("the sender refused: {}", b.message)),
            FetchError::Invalid(why) => {
                Attempt::Fatal(format!("the sender sent something other than the offered file: {why}"))
            }
            FetchError::Local(why) => Attempt::Fatal(why),
        }
    }
}

fn no_such(id: MailId) -> String {
    format!("no transfer {}; `skein transfers` lists them", id.to_hex())
}

/// A live transfer: an incoming one, or an outgoing one to one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    In(MailId),
    /// One stream serving a transfer to a device (a device may reconnect
    /// while its old stream is still timing out).
    Out(MailId, DeviceId, u64),
}

/// Bytes, rate and ETA fields of a live transfer.
fn progress_fields(l: &Live, size: u64) -> Value {
    let rate = l.rate();
    let eta = (rate > 0.0).then(|| (size.saturating_sub(l.done) as f64 / rate).ceil() as u64);
    json!({
        "bytes_done": l.done, "size": size, "rate_bps": rate.round() as u64, "eta_s": eta,
        "path": l.path.map(MeshPath::as_str),
    })
}

fn merge(v: &mut Value, fields: Value) {
    if let Value::Object(f) = fields {
        for (k, x) in f {
            v[k] = x;
        }
    }
}
