//! The load generator: many simulated clients of one tracker from one
//! process, over a handful of shared QUIC endpoints, with one small task
//! per client (it reads, and pings when asked; QUIC keep-alives keep it
//! connected) and no threads of their own.
//!
//! A simulated client speaks the control plane directly: hello, password
//! login (or session resume), a presence subscription, then keep-alives.
//! A client counts as held only while it answers: right after each memory
//! reading every client sends the tracker a `Ping` on its connection and
//! waits for the `Pong`, and the tracker's memory (from `/proc/PID/status`)
//! is divided by the clients that answered, not by the logins that once
//! succeeded.

use crate::cluster::{Cluster, PASSWORD};
use crate::cpu::{self, CpuWatch};
use crate::report::{Row, Samples, ms};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use quinn::{Endpoint, RecvStream, SendStream};
use skein_proto::bytes::{DeviceId, PublicKey, SessionToken};
use skein_proto::control::*;
use skein_proto::io::{FrameIoError, read_frame, write_frame};
use skein_proto::limits::MAX_CONTROL_FRAME;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The user whose presence the fan-out measurement changes.
pub(crate) const STAR: &str = "star";
/// Endpoints (UDP sockets) the simulated clients share, each on its own
/// loopback address (127.0.0.1, 127.0.0.2, …): an organisation's clients
/// come from many addresses, and the tracker throttles logins in flight
/// per address, so the clients spread over these as they would over many.
const ENDPOINTS: usize = 8;
/// How long a held client may take to answer a ping before it counts as lost.
const PING_WAIT: Duration = Duration::from_secs(10);
/// Pings in flight at once when counting live clients.
const PINGS_AT_ONCE: usize = 512;
/// Attempts a simulated client makes to connect, log in and subscribe.
const TRIES: usize = 3;
/// Clients that connected only on a later try, since the process started.
static RETRIED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The clients' endpoints, one per loopback address.
pub(crate) fn endpoints(ca: &Path) -> Result<Vec<Endpoint>> {
    (0..ENDPOINTS).map(|k| endpoint(ca, [127, 0, 0, 1 + k as u8])).collect()
}

/// A client endpoint on loopback address `ip` (127.0.0.1 where that cannot
/// be bound), trusting the organisation CA at `ca`.
pub fn endpoint(ca: &Path, ip: [u8; 4]) -> Result<Endpoint> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in skein_certs::rustls_io::load_certs(ca)? {
        roots.add(cert)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![skein_proto::CONTROL_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut ep = Endpoint::client(SocketAddr::from((ip, 0)))
        .or_else(|_| Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    // As a node's: QUIC keep-alives keep idle clients connected (the
    // tracker's idle timeout is the connection's), and a tracker silent
    // for a few seconds is taken for gone.
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(skein_node::tracker_client::KEEP_ALIVE));
    transport.max_idle_timeout(Some(skein_node::tracker_client::SILENT_FOR.try_into()?));
    cfg.transport_config(Arc::new(transport));
    ep.set_default_client_config(cfg);
    Ok(ep)
}

/// A simulated device: its introduction and the key that proves its PeerId.
#[derive(Debug, Clone)]
pub struct Device {
    hello: DeviceHello,
    key: libp2p_identity::Keypair,
}

impl Device {
    /// Its introduction on the connection whose welcome carried `nonce`.
    fn hello(&self, nonce: &[u8; 32]) -> DeviceHello {
        let mut hello = self.hello.clone();
        hello.proof = self.key.sign(&hello.proof_bytes(nonce)).unwrap_or_default();
        hello
    }
}

/// A new device.
pub(crate) fn device() -> Device {
    let key = libp2p_identity::Keypair::generate_ed25519();
    let hello = DeviceHello {
        device_id: DeviceId(rand::random()),
        name: "load".into(),
        peer_id: key.public().to_peer_id().to_bytes(),
        x25519: PublicKey(rand::random()),
        proof: Vec::new(),
    };
    Device { hello, key }
}

/// One simulated client's connection.
#[derive(Debug)]
pub struct Sim {
    pub(crate) conn: quinn::Connection,
    send: SendStream,
    recv: RecvStream,
    next: u32,
    nonce: [u8; 32],
    pub(crate) device: Device,
    /// The session, once logged in (for the failover scenario).
    pub(crate) token: Option<SessionToken>,
}

impl Sim {
    /// Connects and says hello.
    pub async fn open(ep: &Endpoint, addr: SocketAddr) -> Result<Sim> {
        let conn = ep.connect(addr, "localhost")?.await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let hello = ClientFrame::Hello(Hello {
            min_version: skein_proto::MIN_PROTOCOL_VERSION,
            max_version: skein_proto::PROTOCOL_VERSION,
            agent: "skein-load".into(),
        });
        write_frame(&mut send, &hello, MAX_CONTROL_FRAME).await?;
        let nonce = match read_frame::<ServerFrame, _>(&mut recv, MAX_CONTROL_FRAME).await? {
            Some(ServerFrame::Welcome(w)) => w.nonce,
            other => bail!("expected a welcome, got {other:?}"),
        };
        Ok(Sim { conn, send, recv, next: 1, nonce, device: device(), token: None })
    }

    /// Sends a request and waits for its answer, skipping events.
    pub async fn ask(&mut self, req: Request) -> Result<Response> {
        let id = self.next;
        self.next += 1;
        write_frame(&mut self.send, &ClientFrame::Request { id, req }, MAX_CONTROL_FRAME).await?;
        loop {
            match read_frame::<ServerFrame, _>(&mut self.recv, MAX_CONTROL_FRAME).await? {
                Some(ServerFrame::Response { id: got, result }) if got == id => {
                    return result.map_err(|b| anyhow::anyhow!("{} ({})", b.message, b.code.as_str()));
                }
                Some(_) => continue,
                None => bail!("the tracker closed the connection"),
            }
        }
    }

    /// Logs in with a password; returns the session token.
    pub async fn login(&mut self, user: &str) -> Result<SessionToken> {
        let login = Login { user: user.into(), password: PASSWORD.into(), device: self.device.hello(&self.nonce) };
        match self.ask(Request::Login(login)).await? {
            Response::Session(s) => Ok(s.token),
            other => bail!("unexpected answer to a login: {other:?}"),
        }
    }

    /// Resumes a session; returns the rotated token.
    pub async fn resume(&mut self, token: SessionToken, device: Device) -> Result<SessionToken> {
        let hello = device.hello(&self.nonce);
        self.device = device;
        match self.ask(Request::Resume(Resume { token, device: hello })).await? {
            Response::Session(s) => Ok(s.token),
            other => bail!("unexpected answer to a resume: {other:?}"),
        }
    }

    /// Stays connected in the background (QUIC keep-alives); events for
    /// `STAR`'s presence are reported as (client, status, arrival). The
    /// returned handle asks the client to ping the tracker.
    pub(crate) fn idle(self, index: usize, events: mpsc::UnboundedSender<(usize, PresenceStatus, Instant)>) -> Held {
        let Sim { conn, mut send, recv, mut next, .. } = self;
        let (ping, mut pings) = mpsc::channel::<oneshot::Sender<()>>(1);
        tokio::spawn(async move {
            // The read is never cancelled half-way: it owns the stream and
            // hands it back with each frame.
            let mut reading = Box::pin(next_frame(recv));
            let mut waiting: Option<(u32, u64, oneshot::Sender<()>)> = None;
            loop {
                tokio::select! {
                    (recv, frame) = &mut reading => {
                        match frame {
                            Ok(Some(ServerFrame::Event(Event::Presence(p)))) if p.user == STAR => {
                                let _ = events.send((index, p.status, Instant::now()));
                            }
                            Ok(Some(ServerFrame::Response { id, result: Ok(Response::Pong { nonce, .. }) }))
                                if waiting.as_ref().is_some_and(|w| (w.0, w.1) == (id, nonce)) =>
                            {
                                if let Some((_, _, answered)) = waiting.take() {
                                    let _ = answered.send(());
                                }
                            }
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => break,
                        }
                        reading = Box::pin(next_frame(recv));
                    }
                    Some(answered) = pings.recv(), if waiting.is_none() => {
                        let (id, nonce) = (next, rand::random());
                        next += 1;
                        let req = ClientFrame::Request { id, req: Request::Ping { nonce } };
                        if write_frame(&mut send, &req, MAX_CONTROL_FRAME).await.is_err() {
                            break;
                        }
                        waiting = Some((id, nonce, answered));
                    }
                }
            }
            drop((conn, send));
        });
        Held { ping }
    }
}

/// Reads the next frame, handing the stream back with it.
async fn next_frame(mut recv: RecvStream) -> (RecvStream, Result<Option<ServerFrame>, FrameIoError>) {
    let frame = read_frame::<ServerFrame, _>(&mut recv, MAX_CONTROL_FRAME).await;
    (recv, frame)
}

/// A simulated client held connected in the background.
#[derive(Debug)]
pub struct Held {
    ping: mpsc::Sender<oneshot::Sender<()>>,
}

impl Held {
    /// Whether the client still gets an answer from the tracker: it sends a
    /// `Ping` on its connection and waits up to `within` for the `Pong`.
    pub async fn answers(&self, within: Duration) -> bool {
        let (answered, rx) = oneshot::channel();
        let asked = async { self.ping.send(answered).await.is_ok() && rx.await.is_ok() };
        tokio::time::timeout(within, asked).await.unwrap_or(false)
    }
}

/// Asks every held client to ping the tracker; returns how many answered.
pub async fn count_live(held: &[Held]) -> usize {
    futures::stream::iter(held)
        .map(|h| h.answers(PING_WAIT))
        .buffer_unordered(PINGS_AT_ONCE)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await
}

/// The resident memory of process `pid`, in bytes.
pub fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    let kib: u64 = line.split_whitespace().nth(1).context("VmRSS value")?.parse()?;
    Ok(kib * 1024)
}

/// The name of the `i`th user [`create_users`] makes.
pub(crate) fn user_name(i: usize) -> String {
    format!("u{i:06}")
}

/// Creates users `u000000`… through admin sessions, several at a time.
pub(crate) async fn create_users(eps: &[Endpoint], addr: SocketAddr, count: usize) -> Result<()> {
    let per = count.div_ceil(ENDPOINTS);
    // One session per endpoint, logged in one after another: the tracker
    // counts an account's password attempts in flight from new addresses.
    let mut admins = Vec::new();
    for ep in eps.iter().take(ENDPOINTS) {
        let mut admin = Sim::open(ep, addr).await?;
        admin.login("boss").await?;
        admins.push(admin);
    }
    let jobs = admins.into_iter().enumerate().map(|(k, mut admin)| async move {
        for i in k * per..((k + 1) * per).min(count) {
            let u = NewUser {
                name: user_name(i),
                display_name: format!("Load {i}"),
                password: PASSWORD.into(),
                department: None,
                title: None,
                email: None,
                phone: None,
                admin: false,
            };
            admin.ask(Request::Admin(AdminRequest::AddUser(u))).await?;
        }
        anyhow::Ok(())
    });
    for r in futures::future::join_all(jobs).await {
        r?;
    }
    Ok(())
}

/// Sizes for one run of the tracker scenarios.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Client counts to measure, in order.
    pub steps: Vec<usize>,
    /// Keep adding clients past the last step, this many at a time, until
    /// connections fail or `ceiling` is reached.
    pub beyond: Option<(usize, usize)>,
    /// Subscribers to `STAR` for the fan-out measurement.
    pub subscribers: usize,
    /// How long each login measurement runs.
    pub login_time: Duration,
    /// How long to keep the clients of the last step connected before
    /// going on, to attach a profiler to the tracker (zero: not at all).
    pub hold: Duration,
}

impl LoadPlan {
    /// The full run.
    pub fn full() -> LoadPlan {
        LoadPlan {
            steps: vec![1_000, 10_000],
            beyond: Some((5_000, 20_000)),
            subscribers: 1_000,
            login_time: Duration::from_secs(5),
            hold: Duration::ZERO,
        }
    }

    /// The quick run.
    pub fn quick() -> LoadPlan {
        LoadPlan {
            steps: vec![200],
            beyond: None,
            subscribers: 100,
            login_time: Duration::from_secs(1),
            hold: Duration::ZERO,
        }
    }
}

/// Connects clients `from..to`, each logged in and subscribed; the first
/// `subscribers` follow `STAR`, the rest a colleague. A client whose
/// attempt fails tries again, up to [`TRIES`] times in all, as a node does
/// (a handshake with a busy tracker can outlast a node's 3 s silence
/// limit). Returns the clients whose login and subscription succeeded.
pub(crate) async fn connect_clients(
    eps: &[Endpoint],
    addr: SocketAddr,
    from: usize,
    to: usize,
    subscribers: usize,
    events: &mpsc::UnboundedSender<(usize, PresenceStatus, Instant)>,
) -> Vec<Held> {
    let results: Vec<Result<(Held, usize)>> = futures::stream::iter(from..to)
        .map(|i| {
            let ep = eps[i % eps.len()].clone();
            let events = events.clone();
            async move {
                let follow = if i < subscribers { STAR.to_owned() } else { user_name((i + 1) % to.max(1)) };
                let attempt = || async {
                    let mut sim = Sim::open(&ep, addr).await?;
                    sim.login(&user_name(i)).await?;
                    sim.ask(Request::SubscribePresence(Subscription::Users(vec![follow.clone()]))).await?;
                    anyhow::Ok(sim)
                };
                let mut tries = 1;
                loop {
                    match attempt().await {
                        Ok(sim) => return anyhow::Ok((sim.idle(i, events), tries)),
                        Err(_) if tries < TRIES => tries += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        })
        .buffer_unordered(128)
        .collect()
        .await;
    let mut held = Vec::with_capacity(results.len());
    let (mut failed, mut again) = (0, 0);
    for r in results {
        match r {
            Ok((h, tries)) => {
                held.push(h);
                again += usize::from(tries > 1);
            }
            Err(e) => {
                if failed == 0 {
                    eprintln!("skein-load: a client failed to connect: {e:#}");
                }
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("skein-load: {failed} of {} clients failed to connect ({TRIES} tries each)", to - from);
    }
    if again > 0 {
        eprintln!("skein-load: {again} of {} clients connected on a second or later try", to - from);
    }
    RETRIED.fetch_add(again, std::sync::atomic::Ordering::Relaxed);
    held
}

/// One memory reading: clients logged in so far, those that answered a
/// ping right after the tracker's memory was read, and its growth.
#[derive(Debug, Clone, Copy)]
struct Reading {
    logged_in: usize,
    live: usize,
    grown: u64,
}

impl Reading {
    /// Reads the tracker's memory, then pings every client.
    async fn take(pid: u32, base: u64, held: &[Held]) -> Result<Reading> {
        let grown = rss(pid)?.saturating_sub(base);
        let live = count_live(held).await;
        let r = Reading { logged_in: held.len(), live, grown };
        eprintln!(
            "skein-load: {} clients logged in, {} answered a ping; tracker RSS +{} KiB, {:.1} KiB per live client",
            r.logged_in,
            r.live,
            r.grown / 1024,
            r.per_live() / 1024.0
        );
        Ok(r)
    }

    /// Bytes of tracker memory per client that answered.
    fn per_live(&self) -> f64 {
        self.grown as f64 / self.live.max(1) as f64
    }

    fn kib(&self) -> String {
        format!("{}: {:.1} KiB", self.live, self.per_live() / 1024.0)
    }
}

/// Changes `STAR`'s presence `rounds` times and times its arrival at every subscriber.
async fn fan_out(
    star: &mut Sim,
    subscribers: usize,
    rounds: usize,
    events: &mut mpsc::UnboundedReceiver<(usize, PresenceStatus, Instant)>,
) -> Result<Samples> {
    let mut samples = Samples::default();
    for (_, d) in fan_out_each(star, subscribers, rounds, events).await? {
        samples.push(d);
    }
    Ok(samples)
}

/// [`fan_out`], with each arrival's subscriber: (client index, time).
pub(crate) async fn fan_out_each(
    star: &mut Sim,
    subscribers: usize,
    rounds: usize,
    events: &mut mpsc::UnboundedReceiver<(usize, PresenceStatus, Instant)>,
) -> Result<Vec<(usize, Duration)>> {
    let mut samples = Vec::new();
    while events.try_recv().is_ok() {}
    for round in 0..rounds {
        let status = if round % 2 == 0 { PresenceStatus::Away } else { PresenceStatus::Online };
        let t0 = Instant::now();
        star.ask(Request::SetPresence(SetPresence { status, note: None })).await?;
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got < subscribers {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some((i, s, at))) if s == status => {
                    samples.push((i, at - t0));
                    got += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => bail!("only {got} of {subscribers} subscribers heard the change"),
            }
        }
    }
    Ok(samples)
}

/// tracker-conns: clients that stay live (answer a ping), the tracker's
/// memory per live client, and presence fan-out.
pub async fn tracker_conns(plan: &LoadPlan) -> Result<Vec<Row>> {
    RETRIED.store(0, std::sync::atomic::Ordering::Relaxed);
    let cfg = tempfile::NamedTempFile::new()?;
    // Password hashing is not what this measures; logins are.
    std::fs::write(cfg.path(), "password_memory_kib = 64\npassword_iterations = 1\nidle_timeout_secs = 15\n")?;
    let mut cluster = Cluster::start(&["--config", cfg.path().to_str().context("utf-8 path")?]).await?;
    cluster.admin("boss").await?;
    cluster.user(STAR).await?;
    let addr: SocketAddr = cluster.addr.parse()?;
    let ca = cluster.data().join("ca.pem");
    let eps = endpoints(&ca)?;
    let most = plan.beyond.map_or(0, |b| b.1).max(plan.steps.iter().copied().max().unwrap_or(0));
    let t0 = Instant::now();
    create_users(&eps, addr, most).await?;
    eprintln!("skein-load: {most} users created in {:.1} s", t0.elapsed().as_secs_f64());
    // A fresh tracker process, so memory its allocator kept from creating
    // the users does not take in the clients' and shrink their share.
    cluster.restart().await?;
    let pid = cluster.tracker.id().context("tracker pid")?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut star = Sim::open(&eps[0], addr).await?;
    star.login(STAR).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = rss(pid)?;
    let mut held: Vec<Held> = Vec::new();
    let mut tried = 0;
    let mut readings = Vec::new();
    for &n in &plan.steps {
        held.extend(connect_clients(&eps, addr, tried, n, plan.subscribers, &tx).await);
        tried = tried.max(n);
        tokio::time::sleep(Duration::from_secs(2)).await;
        readings.push(Reading::take(pid, base, &held).await?);
    }
    if !plan.hold.is_zero() {
        eprintln!(
            "skein-load: holding {} clients for {} s; the tracker is process {pid}",
            held.len(),
            plan.hold.as_secs()
        );
        tokio::time::sleep(plan.hold).await;
    }
    let subs = plan.subscribers.min(held.len());
    let fan = fan_out(&mut star, subs, 5, &mut rx).await?;
    let mut end = None;
    if let Some((step, ceiling)) = plan.beyond {
        while tried < ceiling {
            let to = (tried + step).min(ceiling);
            let more = connect_clients(&eps, addr, tried, to, subs, &tx).await;
            let short = more.len() < to - tried;
            held.extend(more);
            tried = to;
            eprintln!("skein-load: {} clients logged in (of {tried} tried)", held.len());
            if short {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        end = Some(Reading::take(pid, base, &held).await?);
    }
    let target_n = plan.steps.iter().copied().max().unwrap_or(0);
    let retried = RETRIED.swap(0, std::sync::atomic::Ordering::Relaxed);
    let at = readings.last().copied().unwrap_or(Reading { logged_in: 0, live: 0, grown: 0 });
    let per = at.per_live();
    let mut skein = format!(
        "{} of {} logged-in clients answered a ping; RSS per live client {}",
        at.live,
        at.logged_in,
        readings.iter().map(Reading::kib).collect::<Vec<_>>().join(", ")
    );
    let mut measured = format!(
        "After {} clients logged in and subscribed, {} answered a ping within {} s; the tracker's RSS had grown by \
         {:.1} MiB, {:.1} KiB per live client",
        at.logged_in,
        at.live,
        PING_WAIT.as_secs(),
        at.grown as f64 / (1 << 20) as f64,
        per / 1024.0
    );
    if let Some(e) = end {
        skein.push_str(&format!(
            "; at the end {} of {} answered (of {tried} tried), {:.1} KiB per live client",
            e.live,
            e.logged_in,
            e.per_live() / 1024.0
        ));
        measured.push_str(&format!(
            "; at the end of the run {} of {} logged-in clients (of {tried} tried) answered a ping, the tracker's \
             RSS had grown by {:.1} MiB, {:.1} KiB per live client",
            e.live,
            e.logged_in,
            e.grown as f64 / (1 << 20) as f64,
            e.per_live() / 1024.0
        ));
    }
    measured.push_str(&format!(
        "; {retried} clients connected only on a second or third try (128 connect at once; a client gives up an \
         attempt after 3 s of silence, as a node does)"
    ));
    let mut rows = vec![Row {
        scenario: "tracker-conns".into(),
        skein,
        baseline: "–".into(),
        ratio: format!("{:.1} KiB/client", per / 1024.0),
        target: format!("≥ {target_n} live clients; ≤ 32 KiB/client"),
        met: Some(at.live >= target_n && per <= 32.0 * 1024.0),
        measured,
    }];
    rows.push(Row {
        scenario: "presence fan-out".into(),
        skein: format!("p50 {}, p99 {} to {subs} subscribers", ms(fan.percentile(50.0)), ms(fan.percentile(99.0))),
        baseline: "–".into(),
        ratio: ms(fan.percentile(99.0)),
        target: "p99 ≤ 250 ms".into(),
        met: Some(fan.percentile(99.0) <= Duration::from_millis(250)),
        measured: format!("{} arrivals over 5 changes", fan.len()),
    });
    drop(held);
    close_all(&eps).await;
    Ok(rows)
}

/// tracker-logins: session resumes and password logins per second, each on
/// a fresh connection as a reconnecting device makes them, on a tracker
/// with the default password cost.
pub async fn tracker_logins(plan: &LoadPlan) -> Result<Row> {
    let cluster = Cluster::start(&[]).await?;
    let addr: SocketAddr = cluster.addr.parse()?;
    let eps = endpoints(&cluster.data().join("ca.pem"))?;
    // Sessions to resume: one per worker, each resumed over and over. Each
    // is a different user's device, as devices are capped per user.
    let workers = 32;
    let worker_user = |k: usize| format!("device{k:02}");
    let mut sessions = Vec::new();
    for k in 0..workers {
        cluster.user(&worker_user(k)).await?;
        let mut sim = Sim::open(&eps[k % ENDPOINTS], addr).await?;
        let token = sim.login(&worker_user(k)).await?;
        sessions.push((token, sim.device.clone()));
    }
    let here = Some(std::process::id());
    let watch = CpuWatch::start(&[("the tracker", cluster.tracker.id()), ("the load generator", here)]);
    let resumes = rate(
        plan.login_time,
        workers,
        |k, state: &mut Option<(SessionToken, Device)>| {
            let ep = eps[k % ENDPOINTS].clone();
            let (token, device) = state.take().expect("a session");
            async move {
                let mut sim = Sim::open(&ep, addr).await?;
                let token = sim.resume(token, device.clone()).await?;
                sim.conn.close(0u32.into(), b"bye");
                Ok((token, device))
            }
        },
        sessions.into_iter().map(Some).collect(),
    )
    .await?;
    let resume_cpu = watch.finish();
    // Password logins: each worker logs one user in again and again on one
    // device of its own.
    let logins = rate(
        plan.login_time,
        4,
        |k, state: &mut Option<Device>| {
            let ep = eps[k % ENDPOINTS].clone();
            let (user, device) = (worker_user(k), state.take().expect("a device"));
            async move {
                let mut sim = Sim::open(&ep, addr).await?;
                sim.device = device;
                sim.login(&user).await?;
                sim.conn.close(0u32.into(), b"bye");
                Ok(sim.device)
            }
        },
        (0..4).map(|_| Some(device())).collect(),
    )
    .await?;
    // The baseline: raw quinn connections, each with one request and
    // answer of a resume's size, with the same workers and endpoints.
    let watch = CpuWatch::start(&[("the load generator and raw quinn server", here)]);
    let base = crate::rawquic::connect_rate(plan.login_time, workers, ENDPOINTS, 200).await?;
    let base_cpu = watch.finish();
    let ratio = resumes / base;
    Ok(Row {
        scenario: "tracker-logins".into(),
        skein: format!("{resumes:.0} resumes/s, {logins:.1} password logins/s (argon2id 19 MiB, 2 passes)"),
        baseline: format!("{base:.0} raw QUIC connections/s, each a full handshake with one request"),
        ratio: format!("{ratio:.2}× ({resumes:.0}/s)"),
        target: "≥ 1.0× raw full-handshake connections/s".into(),
        met: Some(ratio >= 1.0),
        measured: format!(
            "During the resumes: {}. During the raw QUIC baseline: {}",
            cpu::describe(resume_cpu),
            cpu::describe(base_cpu)
        ),
    })
}

/// Closes every client of `eps` and waits until they are gone, so many
/// connections timing out in the background do not share the CPU with
/// what runs next.
pub(crate) async fn close_all(eps: &[Endpoint]) {
    for ep in eps {
        ep.close(0u32.into(), b"done");
    }
    for ep in eps {
        ep.wait_idle().await;
    }
}

/// Runs `workers` loops of `op` for `period`; returns completions per second.
/// Each worker threads its state from one operation to the next.
pub(crate) async fn rate<S, F, Fut>(period: Duration, workers: usize, op: F, states: Vec<Option<S>>) -> Result<f64>
where
    F: Fn(usize, &mut Option<S>) -> Fut + Clone,
    Fut: std::future::Future<Output = Result<S>>,
{
    let t0 = Instant::now();
    let deadline = t0 + period;
    let runs = states.into_iter().enumerate().take(workers).map(|(k, mut state)| {
        let op = op.clone();
        async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let next = op(k, &mut state).await?;
                state = Some(next);
                done += 1;
            }
            anyhow::Ok(done)
        }
    });
    let mut total = 0;
    for r in futures::future::join_all(runs).await {
        total += r?;
    }
    Ok(total as f64 / t0.elapsed().as_secs_f64())
}
