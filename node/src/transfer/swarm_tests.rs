//! Group files in one process: an origin and several members, each with
//! its own [`SwarmBook`], linked by in-memory pipes instead of the mesh.
//! Members fetching at once end with the same bytes, and the origin sends
//! far less than one copy per member; a member that joins late gets the
//! file from the members alone once the origin has sent every chunk.

use super::gather::{GroupWant, Reach, gather};
use super::manifest::{Have, Manifest};
use super::receive::Want;
use super::share::{Give, Held, Shelf, SwarmBook, read_open, refuse, serve_swarm};
use super::swarm_wire::Holder;
use futures::future::BoxFuture;
use skein_proto::bytes::{ContentHash, DeviceId, MailId};
use skein_proto::{ErrorBody, ErrorCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

const TRANSFER: MailId = MailId([9; 16]);
const CHUNK: u32 = 4096;

struct Device {
    holder: Holder,
    book: Mutex<SwarmBook>,
    /// The offered file, on the origin.
    offered: Option<(Arc<Manifest>, PathBuf)>,
    /// Bytes of chunks this device sent.
    sent: AtomicU64,
}

type Net = Arc<Mutex<HashMap<DeviceId, Arc<Device>>>>;

fn device(n: u8, offered: Option<(Arc<Manifest>, PathBuf)>) -> Arc<Device> {
    Arc::new(Device {
        holder: Holder { user: format!("user{n}"), device: DeviceId([n; 16]) },
        book: Mutex::new(SwarmBook::default()),
        offered,
        sent: AtomicU64::new(0),
    })
}

struct PipeShelf {
    dev: Arc<Device>,
    asker: Holder,
    count: u64,
}

impl Shelf for PipeShelf {
    fn have(&self) -> Have {
        if self.dev.offered.is_some() {
            return Have::all(self.count);
        }
        let book = self.dev.book.lock().expect("book");
        book.held(TRANSFER).map_or_else(|| Have::none(self.count), |h| h.have.clone())
    }

    fn holders(&self) -> Vec<Holder> {
        self.dev.book.lock().expect("book").holders(TRANSFER, &self.asker.device)
    }

    fn give(&self, index: u64, force: bool) -> Give {
        let mut book = self.dev.book.lock().expect("book");
        if self.dev.offered.is_some() {
            return book.give(TRANSFER, self.count, index, &self.asker, force);
        }
        match book.held(TRANSFER) {
            Some(h) if h.have.contains(index) => Give::Send,
            _ => Give::Missing,
        }
    }

    async fn sent(&mut self, bytes: u64) {
        self.dev.sent.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Serves one stream as `dev` would.
async fn serve(stream: Compat<tokio::io::DuplexStream>, dev: Arc<Device>, asker: Holder) {
    use futures::AsyncReadExt;
    let (mut rd, mut wr) = stream.split();
    let Ok((transfer, _root)) = read_open(&mut rd).await else { return };
    assert_eq!(transfer, TRANSFER);
    let found = match &dev.offered {
        Some((m, p)) => Some((m.clone(), p.clone(), true)),
        None => dev.book.lock().expect("book").held(TRANSFER).map(|h| (h.manifest.clone(), h.path.clone(), false)),
    };
    let Some((manifest, path, origin)) = found else {
        refuse(&mut wr, ErrorBody::new(ErrorCode::Unavailable, "nothing yet")).await;
        return;
    };
    dev.book.lock().expect("book").note_holder(TRANSFER, asker.clone(), Instant::now());
    let stream = rd.reunite(wr).expect("halves");
    let mut shelf = PipeShelf { dev, asker, count: manifest.count() };
    let _ = serve_swarm(stream, manifest, path, origin, &mut shelf).await;
}

struct PipeReach {
    me: Arc<Device>,
    net: Net,
}

impl Reach for PipeReach {
    type Stream = Compat<tokio::io::DuplexStream>;

    fn open(&self, holder: Holder) -> BoxFuture<'static, Result<(Self::Stream, u8), String>> {
        let (net, me) = (self.net.clone(), self.me.holder.clone());
        Box::pin(async move {
            let dev = net.lock().expect("net").get(&holder.device).cloned().ok_or("not online")?;
            let (near, far) = tokio::io::duplex(1 << 16);
            tokio::spawn(serve(far.compat(), dev, me));
            Ok((near.compat(), 0))
        })
    }

    fn holding(&self, manifest: &Arc<Manifest>, path: &Path, have: &Have) {
        let held = Held { manifest: manifest.clone(), path: path.to_owned(), have: have.clone() };
        self.me.book.lock().expect("book").hold(TRANSFER, held);
    }

    fn learned(&self, holder: &Holder) {
        self.me.book.lock().expect("book").note_holder(TRANSFER, holder.clone(), Instant::now());
    }

    fn manifest(&self, _: &Manifest) {}
}

fn job(m: &Manifest, dir: &Path, me: &Device, origin: &Device) -> GroupWant {
    GroupWant {
        want: Want {
            transfer: TRANSFER,
            root: ContentHash(m.root()),
            size: m.size,
            dir: dir.to_owned(),
            name: "team.bin".into(),
        },
        me: me.holder.device,
        origin: origin.holder.clone(),
        known: Vec::new(),
        manifest: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_fetching_at_once_share_and_the_origin_sends_about_one_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes: Vec<u8> = (0..64 * CHUNK as usize + 100).map(|i| (i * 131 % 251) as u8).collect();
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &bytes).expect("write");
    let m = Arc::new(Manifest::from_reader(&bytes[..], CHUNK).expect("manifest"));
    let origin = device(100, Some((m.clone(), src)));
    let net: Net = Arc::new(Mutex::new(HashMap::new()));
    let members: Vec<Arc<Device>> = (1..=4).map(|n| device(n, None)).collect();
    for d in members.iter().chain([&origin]) {
        net.lock().expect("net").insert(d.holder.device, d.clone());
    }
    let mut tasks = Vec::new();
    for d in &members {
        let out = dir.path().join(&d.holder.user);
        std::fs::create_dir(&out).expect("dir");
        let job = job(&m, &out, d, &origin);
        let reach = Arc::new(PipeReach { me: d.clone(), net: net.clone() });
        tasks.push(tokio::spawn(async move { gather(reach, job, |_| {}).await }));
    }
    for t in tasks {
        let path = t.await.expect("join").expect("fetched");
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
    }
    let from_origin = origin.sent.load(Ordering::Relaxed);
    let from_members: u64 = members.iter().map(|d| d.sent.load(Ordering::Relaxed)).sum();
    let size = bytes.len() as u64;
    assert!(from_origin < size + size / 4, "the origin sent {from_origin} bytes of a {size}-byte file to 4 members");
    assert!(from_origin + from_members >= 4 * size, "every member got every byte");

    // A member coming late gets it from the members: the origin sent every chunk already.
    let late = device(5, None);
    net.lock().expect("net").insert(late.holder.device, late.clone());
    let out = dir.path().join("late");
    std::fs::create_dir(&out).expect("dir");
    let before = origin.sent.load(Ordering::Relaxed);
    let reach = Arc::new(PipeReach { me: late.clone(), net: net.clone() });
    let path = gather(reach, job(&m, &out, &late, &origin), |_| {}).await.expect("fetched late");
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
    assert_eq!(origin.sent.load(Ordering::Relaxed), before, "the origin sent the late member nothing");
}
