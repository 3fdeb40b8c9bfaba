//! A soak of two trackers on one PostgreSQL database, bounded to about two
//! minutes: 200 simulated nodes (real sessions, through the node library's
//! login and resume) put sealed items in each other's mailboxes and take
//! their own, while the trackers are killed (SIGKILL) and restarted in
//! turn. Every item a tracker acknowledged is counted, and each must reach
//! its recipient.

use skein_node::profile::Profile;
use skein_node::session::{self, Connected};
use skein_node::tracker_client::{ClientError, TrackerClient};
use skein_proto::bytes::{DeviceId, MailId};
use skein_proto::control::{MailboxPut, NewUser, Request, Response, SealedItem};
use skein_tests::{Proc, bin, init};
use skein_tracker::test_utils::{PgDatabase, test_password_cost};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
/// Simulated nodes.
const NODES: usize = 200;
/// How long the nodes write while the trackers are killed in turn.
const SOAK: Duration = Duration::from_secs(60);
/// Between a node's puts (and fetches).
const PACE: Duration = Duration::from_millis(1000);

/// A free loopback UDP port for a tracker, which comes back on it after each
/// kill. It is taken below the range the kernel picks ephemeral ports from
/// (`ip_local_port_range`), so none of the nodes' own sockets, opened by
/// the hundred while a tracker is down, can take it meanwhile.
fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let from = low.saturating_sub(8000).max(1024);
    for _ in 0..1000 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), from..low.max(from + 1));
        let free = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free UDP port below the ephemeral range ({from}..{low})")
}

/// One tracker of the two: its directory and addresses, for restarts.
struct Tracker {
    args: Vec<String>,
    addr: String,
    proc: Option<Proc>,
}

impl Tracker {
    fn new(data: &Path, url: &str, join: Option<&Path>) -> Tracker {
        let addr = format!("127.0.0.1:{}", free_port());
        let relay = format!("127.0.0.1:{}", free_port());
        let mut args: Vec<String> =
            ["run", "--data", data.to_str().expect("utf-8"), "--database", url].into_iter().map(String::from).collect();
        args.extend(["--listen".into(), addr.clone(), "--relay-listen".into(), relay]);
        if let Some(j) = join {
            args.extend(["--join".into(), j.to_str().expect("utf-8").into()]);
        }
        Tracker { args, addr, proc: None }
    }

    async fn start(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut p = Proc::spawn(&bin("skein-tracker"), &args, &[("RUST_LOG", "warn")]);
        p.wait_line(Duration::from_secs(30), "the serving line", |l| l.starts_with("Tracker serving on UDP")).await;
        // Later starts need no --join: the directory is the organisation's now.
        if let Some(i) = self.args.iter().position(|a| a == "--join") {
            self.args.drain(i..i + 2);
        }
        self.proc = Some(p);
    }

    async fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
        }
    }
}

/// What the nodes counted.
#[derive(Default)]
struct Ledger {
    /// Items a tracker acknowledged storing.
    acked: HashSet<[u8; 16]>,
    /// Items their recipients took.
    received: HashSet<[u8; 16]>,
    /// Items taken again (an acknowledgement of the taking was lost).
    again: usize,
    /// Resumes after a lost tracker.
    resumes: usize,
}

/// One simulated node: its profile, its tracker while it has one.
struct Node {
    profile: Profile,
    client: Option<TrackerClient>,
}

impl Node {
    /// Keeps the client of a new session; its events are read and let go.
    fn connected(&mut self, c: Connected) -> TrackerClient {
        let mut events = c.events;
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        self.client = Some(c.client.clone());
        c.client
    }

    /// The live client, resuming on a tracker of the organisation first if
    /// the last one went away (as a daemon does: the nearest that answers).
    async fn client(&mut self, ledger: &Mutex<Ledger>) -> Option<TrackerClient> {
        if let Some(c) = &self.client {
            return Some(c.clone());
        }
        let avoid = self.profile.session().ok().map(|s| s.tracker);
        match session::resume_avoiding(&self.profile, avoid.as_deref()).await {
            Ok(c) => {
                ledger.lock().expect("ledger").resumes += 1;
                Some(self.connected(c))
            }
            Err(e) => {
                assert!(e.is_transient(), "a resume was refused: {e}");
                None
            }
        }
    }

    /// Forgets a session whose connection failed.
    fn lost(&mut self, e: &ClientError) {
        if matches!(e, ClientError::Closed | ClientError::Timeout(_) | ClientError::Unreachable { .. })
            && let Some(c) = self.client.take()
        {
            c.close();
        }
    }

    /// Takes and acknowledges waiting items until none are left or the
    /// tracker fails; true if the mailbox was emptied.
    async fn take_mail(&mut self, ledger: &Mutex<Ledger>) -> bool {
        let Some(client) = self.client(ledger).await else { return false };
        loop {
            let items = match client.request(Request::MailboxFetch { limit: 200 }).await {
                Ok(Response::Mail(items)) => items,
                Ok(other) => panic!("unexpected answer to a fetch: {other:?}"),
                Err(e) => {
                    self.lost(&e);
                    return false;
                }
            };
            if items.is_empty() {
                return true;
            }
            let ids: Vec<MailId> = items.iter().map(|i| i.id).collect();
            {
                let mut l = ledger.lock().expect("ledger");
                for id in &ids {
                    if !l.received.insert(id.0) {
                        l.again += 1;
                    }
                }
            }
            if let Err(e) = client.request(Request::MailboxAck { ids }).await {
                self.lost(&e);
                return false;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (SKEIN_TEST_POSTGRES_URL); scripts/test starts one and runs it"]
async fn no_acknowledged_item_is_lost_while_the_trackers_are_killed_in_turn() {
    init();
    let pg = PgDatabase::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (d1, d2) = (dir.path().join("t1"), dir.path().join("t2"));
    let mut trackers = [Tracker::new(&d1, &pg.url, None), Tracker::new(&d2, &pg.url, Some(&d1))];
    for t in &mut trackers {
        t.start().await;
    }
    let store = skein_tracker::store::Store::open(&pg.url).await.expect("the store");
    let passwords = skein_tracker::passwords::Passwords::per_core(test_password_cost());
    let users: Vec<String> = (0..NODES).map(|i| format!("node{i:03}")).collect();
    for name in &users {
        let new = NewUser {
            name: name.clone(),
            display_name: name.clone(),
            password: PW.into(),
            department: None,
            title: None,
            email: None,
            phone: None,
            admin: false,
        };
        skein_tracker::admin::add_user(&store, new, &passwords).await.expect("add a user");
    }
    store.close().await;

    // Half log in through each tracker.
    let ca: PathBuf = d1.join("ca.pem");
    let mut nodes = Vec::new();
    let mut devices: Vec<(String, DeviceId)> = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let profile = Profile::new(dir.path().join(user));
        let at = &trackers[i % 2].addr;
        let conn = session::login(&profile, at, &ca, user, PW.into()).await.expect("login");
        devices.push((user.clone(), profile.device().expect("device").device_id));
        let mut node = Node { profile, client: None };
        node.connected(conn);
        nodes.push(node);
    }
    let devices = Arc::new(devices);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Instant::now() + SOAK;

    let mut tasks = Vec::new();
    for (i, mut node) in nodes.into_iter().enumerate() {
        let (devices, ledger) = (devices.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(PACE);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < stop {
                tick.tick().await;
                let Some(client) = node.client(&ledger).await else { continue };
                let (to_user, to_device) = devices[(i + 1 + (n as usize * 7) % (NODES - 1)) % NODES].clone();
                n += 1;
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&(i as u64).to_be_bytes());
                id[8..].copy_from_slice(&n.to_be_bytes());
                let item = SealedItem { id: MailId(id), to_device, sealed: vec![0x5a; 64] };
                match client.request(Request::MailboxPut(MailboxPut { to_user, items: vec![item] })).await {
                    Ok(Response::MailboxStored { stored: 1 }) => {
                        ledger.lock().expect("ledger").acked.insert(id);
                    }
                    Ok(other) => panic!("unexpected answer to a put: {other:?}"),
                    Err(e) => node.lost(&e),
                }
                node.take_mail(&ledger).await;
            }
            node
        }));
    }

    // The trackers are killed in turn, each brought back after a while.
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() + Duration::from_secs(20) < SOAK {
        tokio::time::sleep(Duration::from_secs(8)).await;
        let t = &mut trackers[kills % 2];
        t.kill().await;
        kills += 1;
        tokio::time::sleep(Duration::from_secs(5)).await;
        t.start().await;
    }
    let mut nodes = Vec::new();
    for t in tasks {
        nodes.push(t.await.expect("a node's task"));
    }

    // Everything acknowledged is taken in the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in &mut nodes {
        while !node.take_mail(&ledger).await {
            assert!(Instant::now() < deadline, "a node could not empty its mailbox");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (acked, received, lost, strays, again, resumes) = {
        let l = ledger.lock().expect("ledger");
        let lost = l.acked.difference(&l.received).count();
        let strays = l.received.difference(&l.acked).count();
        (l.acked.len(), l.received.len(), lost, strays, l.again, l.resumes)
    };
    println!(
        "{acked} items acknowledged, {received} received ({strays} of them not acknowledged to their sender, \
         {again} taken twice); {kills} tracker kills, {resumes} resumes"
    );
    assert!(kills >= 3, "the trackers were killed {kills} times");
    assert!(resumes >= NODES / 2, "only {resumes} resumes after {kills} kills");
    assert!(acked > NODES * 20, "the nodes wrote too little to count: {acked}");
    assert_eq!(lost, 0, "{lost} acknowledged items never arrived");
    for t in &mut trackers {
        t.kill().await;
    }
    pg.drop_now().await;
}
