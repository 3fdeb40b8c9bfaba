//! Files offered to a group: one offer (a group message), fetched by every
//! member device that accepts it from the offering device and from each
//! other over group-file streams.
//!
//! Serving: any member device asking for a group file gets it from this
//! device when this device offered it, is fetching it (the chunks verified
//! so far, from the partial file) or has it (the received file, also after
//! a restart). Only members of the group under the newest membership
//! certificate known, and this user's other devices, are served. As the
//! origin, this device sends each chunk to one member and names that
//! member to the others ([`SwarmBook::give`]), so it uploads the file about
//! once however many members fetch it.
//!
//! Receiving: an accepted group offer is fetched by [`gather`], which finds
//! the members that hold chunks through the origin's and each member's
//! status and prefers those on a direct path.

use super::{Attempt, Inner, Key, Live, SAVE_EVERY, Transfers, lock};
use crate::group_book::GroupBook;
use crate::history::{FileRow, OfferState};
use crate::mesh::Path as MeshPath;
use crate::transfer::gather::{GroupWant, Reach, gather};
use crate::transfer::manifest::{Have, Manifest};
use crate::transfer::names::sanitize;
use crate::transfer::receive::Want;
use crate::transfer::share::{self, Give, Held, Shelf};
use crate::transfer::swarm_wire::{Holder, SWARM_PROTOCOL};
use futures::future::BoxFuture;
use libp2p::{PeerId, StreamProtocol};
use skein_proto::bytes::{ContentHash, GroupId, MailId};
use skein_proto::{ErrorBody, ErrorCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The group-file protocol as libp2p names it.
pub const SWARM: StreamProtocol = StreamProtocol::new(SWARM_PROTOCOL);

/// A group file found for a member asking for it.
struct Found {
    manifest: Arc<Manifest>,
    file: PathBuf,
    origin: bool,
    asker: Holder,
    path: MeshPath,
}

impl Transfers {
    /// The groups this node knows: group files are served to their members only.
    pub fn set_groups(&self, groups: GroupBook) {
        *lock(&self.inner.groups) = Some(groups);
    }

    /// The group the offer `id` was made to, if it was made to one.
    pub(super) async fn group_of(&self, id: MailId) -> Option<GroupId> {
        let msg = self.inner.history.get(id).await.ok().flatten()?;
        GroupId::from_hex(msg.to_user.strip_prefix('#')?)
    }

    /// Whether `user` may hold files of `group`: this user, or a member
    /// under the newest certificate known, while this user is one too.
    async fn member(&self, group: GroupId, user: &str) -> bool {
        let Some(book) = lock(&self.inner.groups).clone() else { return false };
        let Some(cert) = book.current(group, 0).await else { return false };
        cert.body.has_member(&self.inner.me) && (user == self.inner.me || cert.body.has_member(user))
    }

    /// [`Transfers::member`] for a group named by its address (`#id`).
    pub(super) async fn member_of_address(&self, address: &str, user: &str) -> bool {
        match address.strip_prefix('#').and_then(GroupId::from_hex) {
            Some(group) => self.member(group, user).await,
            None => false,
        }
    }

    /// Serves group-file streams from verified peers until the mesh stops.
    pub(super) fn serve_swarm(&self) -> Result<(), String> {
        let mut incoming = self.inner.mesh.streams().accept(SWARM).map_err(|e| e.to_string())?;
        let this = self.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            while let Some((peer, stream)) = incoming.next().await {
                let Ok(permit) = this.inner.swarm_streams.clone().try_acquire_owned() else {
                    tracing::info!(%peer, "too many group-file streams; dropping one");
                    continue;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    this.serve_swarm_one(peer, stream).await;
                    drop(permit);
                });
            }
        });
        Ok(())
    }

    async fn serve_swarm_one(&self, peer: PeerId, stream: libp2p::Stream) {
        use futures::AsyncReadExt;
        let (mut rd, mut wr) = stream.split();
        let (transfer, root) = match share::read_open(&mut rd).await {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(%peer, error = %e, "a group-file request failed");
                return;
            }
        };
        let found = match self.authorize_swarm(peer, transfer, root).await {
            Ok(f) => f,
            Err(body) => {
                tracing::info!(%peer, transfer = %transfer, why = %body.message, "refusing a group-file request");
                share::refuse(&mut wr, body).await;
                return;
            }
        };
        let stream = rd.reunite(wr).expect("halves of one stream");
        lock(&self.inner.swarm).note_holder(transfer, found.asker.clone(), Instant::now());
        let device = found.asker.device;
        let key = Key::Out(transfer, device, self.inner.sessions.fetch_add(1, Ordering::Relaxed));
        if found.origin {
            lock(&self.inner.live).insert(key, Live { path: Some(found.path), ..Live::new(0) });
            let _ = self.inner.history.set_target_path(transfer, device, found.path.as_str()).await;
        }
        let mut shelf = BookShelf {
            transfers: self.clone(),
            transfer,
            asker: found.asker,
            origin: found.origin,
            count: found.manifest.count(),
            size: found.manifest.size,
            key,
            sent: 0,
            unsaved: (0, 0),
            last_save: Instant::now(),
        };
        let result = share::serve_swarm(stream, found.manifest, found.file, found.origin, &mut shelf).await;
        shelf.finish().await;
        if let Err(e) = result {
            tracing::info!(%peer, transfer = %transfer, error = %e, "serving a group file stopped");
        }
    }

    /// Checks a group-file request: the file was offered to a group this
    /// user is in, with this root; the asking peer is a verified device of
    /// a member; and this device offered it, holds some of it, or has it.
    async fn authorize_swarm(&self, peer: PeerId, transfer: MailId, root: ContentHash) -> Result<Found, ErrorBody> {
        let not_found = || ErrorBody::new(ErrorCode::NotFound, "no such file was offered to your group");
        let Some(who) = self.inner.mesh.peers().await.into_iter().find(|p| p.peer == peer) else {
            return Err(ErrorBody::new(ErrorCode::PermissionDenied, "introduce yourself (hello) first"));
        };
        let row = self.inner.history.file(transfer).await.ok().flatten().ok_or_else(not_found)?;
        if row.root != root {
            return Err(not_found());
        }
        let group = self.group_of(transfer).await.ok_or_else(not_found)?;
        if !self.member(group, &who.user).await {
            return Err(not_found());
        }
        let asker = Holder { user: who.user.clone(), device: who.device };
        let damaged = |e| ErrorBody::new(ErrorCode::Internal, format!("the file's record is damaged: {e}"));
        if row.outgoing {
            let (Some(source), Some(bytes)) = (row.source, row.manifest) else { return Err(not_found()) };
            let manifest = Manifest::decode(&bytes, &root.0).map_err(damaged)?;
            return Ok(Found {
                manifest: Arc::new(manifest),
                file: PathBuf::from(source),
                origin: true,
                asker,
                path: who.path,
            });
        }
        let held = lock(&self.inner.swarm).held(transfer).cloned();
        if let Some(h) = held {
            return Ok(Found { manifest: h.manifest, file: h.path, origin: false, asker, path: who.path });
        }
        if let (OfferState::Completed, Some(saved), Some(bytes)) = (row.state, row.saved_path, row.manifest) {
            let manifest = Arc::new(Manifest::decode(&bytes, &root.0).map_err(damaged)?);
            let file = PathBuf::from(saved);
            let held = Held { manifest: manifest.clone(), path: file.clone(), have: Have::all(manifest.count()) };
            lock(&self.inner.swarm).hold(transfer, held);
            return Ok(Found { manifest, file, origin: false, asker, path: who.path });
        }
        Err(ErrorBody::new(ErrorCode::Unavailable, "this device holds none of that file yet; ask again later"))
    }

    /// One attempt at a group file: from the origin and the members known
    /// to hold chunks.
    pub(super) async fn attempt_group(&self, row: &FileRow, group: GroupId) -> Result<PathBuf, Attempt> {
        let device = row.peer_device.ok_or_else(|| Attempt::Fatal("the offer names no sending device".into()))?;
        let manifest = row.manifest.as_deref().and_then(|b| Manifest::decode(b, &row.root.0).ok());
        let job = GroupWant {
            want: Want {
                transfer: row.id,
                root: row.root,
                size: row.size,
                dir: PathBuf::from(row.dir.clone().unwrap_or_default()),
                name: sanitize(&row.name),
            },
            me: self.inner.device,
            origin: Holder { user: row.peer_user.clone(), device },
            known: lock(&self.inner.swarm).holders(row.id, &self.inner.device),
            manifest,
        };
        let start = row.bytes_done;
        {
            let mut live = lock(&self.inner.live);
            let l = live.entry(Key::In(row.id)).or_insert_with(|| Live::new(start));
            let cancel = l.cancel.take();
            *l = Live { cancel, ..Live::new(start) };
        }
        let reach = Arc::new(GroupReach { transfers: self.clone(), group, transfer: row.id, origin: device });
        let mut last = start;
        let result = gather(reach, job, |p| {
            last = p.done;
            self.incoming_progress(row.id, p.done, p.size);
        })
        .await;
        let path = lock(&self.inner.live).get(&Key::In(row.id)).and_then(|l| l.path).map(MeshPath::as_str);
        let _ = self.inner.history.set_file_progress(row.id, last, path).await;
        result.map_err(|e| Attempt::from_fetch(e, last > start))
    }
}

/// How a group fetch reaches members: through the mesh, to verified
/// devices of members only.
struct GroupReach {
    transfers: Transfers,
    group: GroupId,
    transfer: MailId,
    origin: skein_proto::bytes::DeviceId,
}

impl Reach for GroupReach {
    type Stream = libp2p::Stream;

    fn open(&self, holder: Holder) -> BoxFuture<'static, Result<(libp2p::Stream, u8), String>> {
        let (t, group, transfer, origin) = (self.transfers.clone(), self.group, self.transfer, self.origin);
        Box::pin(async move {
            // The origin's membership was checked when its offer came.
            if holder.device != origin && !t.member(group, &holder.user).await {
                return Err(format!("{} is not a member of the group", holder.user));
            }
            let (peer, addrs) = t
                .locate(&holder.user, holder.device)
                .await
                .ok_or_else(|| format!("{}'s device is not online", holder.user))?;
            let who = t.inner.mesh.connect(peer, addrs).await.map_err(|e| e.to_string())?;
            if who.user != holder.user || who.device != holder.device {
                return Err(format!("the device answering is {}'s, not the one named", who.user));
            }
            let stream = t
                .inner
                .mesh
                .streams()
                .open_stream(peer, SWARM)
                .await
                .map_err(|e| format!("cannot open a group-file stream: {e}"))?;
            if let Some(l) = lock(&t.inner.live).get_mut(&Key::In(transfer))
                && l.path != Some(MeshPath::Direct)
            {
                l.path = Some(who.path);
            }
            // A member on this device's own network first, then any direct
            // one, then one through a relay.
            let rank = match who.path {
                MeshPath::Direct if who.nearby => 0,
                MeshPath::Direct => 1,
                MeshPath::Relayed => 2,
            };
            Ok((stream, rank))
        })
    }

    fn holding(&self, manifest: &Arc<Manifest>, path: &Path, have: &Have) {
        let held = Held { manifest: manifest.clone(), path: path.to_owned(), have: have.clone() };
        lock(&self.transfers.inner.swarm).hold(self.transfer, held);
    }

    fn learned(&self, holder: &Holder) {
        lock(&self.transfers.inner.swarm).note_holder(self.transfer, holder.clone(), Instant::now());
    }

    fn manifest(&self, manifest: &Manifest) {
        let (history, id, bytes) = (self.transfers.inner.history.clone(), self.transfer, manifest.encode());
        tokio::spawn(async move { history.set_file_manifest(id, &bytes).await });
    }
}

/// A served group file as one asking member sees it, counting what it is sent.
struct BookShelf {
    transfers: Transfers,
    transfer: MailId,
    asker: Holder,
    origin: bool,
    count: u64,
    size: u64,
    /// The origin's session, shown in `transfers` while it lasts.
    key: Key,
    sent: u64,
    /// A member's counts not yet saved.
    unsaved: (u64, u64),
    last_save: Instant,
}

impl BookShelf {
    fn inner(&self) -> &Inner {
        &self.transfers.inner
    }

    /// Saves what is left to count.
    async fn finish(&mut self) {
        let rest = if self.origin {
            lock(&self.inner().live).remove(&self.key).map_or((0, 0), |l| l.unsaved)
        } else {
            std::mem::take(&mut self.unsaved)
        };
        if rest != (0, 0) {
            let _ = self.inner().history.add_target_sent(self.transfer, self.asker.device, rest.0, rest.1).await;
        }
    }
}

impl Shelf for BookShelf {
    fn have(&self) -> Have {
        if self.origin {
            return Have::all(self.count);
        }
        let book = lock(&self.inner().swarm);
        book.held(self.transfer).map_or_else(|| Have::none(self.count), |h| h.have.clone())
    }

    fn holders(&self) -> Vec<Holder> {
        lock(&self.inner().swarm).holders(self.transfer, &self.asker.device)
    }

    fn give(&self, index: u64, force: bool) -> Give {
        let mut book = lock(&self.inner().swarm);
        if self.origin {
            return book.give(self.transfer, self.count, index, &self.asker, force);
        }
        match book.held(self.transfer) {
            Some(h) if h.have.contains(index) => Give::Send,
            _ => Give::Missing,
        }
    }

    async fn sent(&mut self, bytes: u64) {
        self.sent += bytes;
        let (transfer, device) = (self.transfer, self.asker.device);
        let due = if self.origin {
            // Saved first, then taken out of the session: a listing may
            // count them twice for a moment, never miss them.
            self.transfers.outgoing_progress(transfer, self.key, 1, bytes, self.sent.min(self.size), self.size, false)
        } else {
            self.unsaved = (self.unsaved.0 + 1, self.unsaved.1 + bytes);
            (self.last_save.elapsed() >= SAVE_EVERY).then(|| {
                self.last_save = Instant::now();
                std::mem::take(&mut self.unsaved)
            })
        };
        if let Some(counts) = due {
            let _ = self.inner().history.add_target_sent(transfer, device, counts.0, counts.1).await;
            if self.origin {
                self.transfers.saved_out(self.key, counts);
            }
        }
    }
}
