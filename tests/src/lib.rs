//! Shared pieces of Skein's end-to-end tests: logging setup, the paths of
//! the real binaries, a child-process wrapper that reads JSON event lines,
//! a UDP proxy that can go silent to simulate a vanished client, the NAT
//! lab ([`lab`]), a bare libp2p node for relay tests ([`relay_peer`]) and a
//! desktop session for the desktop app ([`x11`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub mod http;
pub mod lab;
pub mod relay_peer;
pub mod x11;

pub use skein_tracker::test_utils::{TestTracker, wait_for};

/// Installs the rustls provider and a test log subscriber (once).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A tracker with these users, all with `password`.
pub async fn tracker_with_users(users: &[&str], password: &str) -> TestTracker {
    init();
    let t = TestTracker::start().await;
    for u in users {
        t.add_user(u, password).await;
    }
    t
}

/// Logs `user` in with a profile at `profile_dir`, keeping the session open.
pub async fn login(t: &TestTracker, profile_dir: &Path, user: &str, password: &str) -> skein_node::session::Connected {
    let profile = skein_node::profile::Profile::new(profile_dir);
    skein_node::session::login(&profile, &t.address(), &t.ca_path(), user, password.into()).await.expect("login")
}

/// Logs `user` in with a profile at `dir/name` for the CLI, and returns its path.
pub async fn login_profile(t: &TestTracker, dir: &Path, name: &str, user: &str, password: &str) -> PathBuf {
    let path = dir.join(name);
    login(t, &path, user, password).await.client.close();
    path
}

/// The addresses a mesh listens on, once it reports them (events before
/// that are skipped).
pub async fn listen_addrs(events: &mut mpsc::Receiver<skein_node::mesh::MeshEvent>) -> Vec<libp2p::Multiaddr> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("addresses in time") {
            Some(skein_node::mesh::MeshEvent::Addresses { listen, .. }) if !listen.is_empty() => {
                return listen.iter().filter_map(|a| a.parse().ok()).collect();
            }
            Some(_) => continue,
            None => panic!("mesh stopped"),
        }
    }
}

/// A tracker with `users`, all with `password`, and a profile logged in for
/// each (named after its user) in a fresh temporary folder, which the
/// caller keeps alive.
pub async fn users_with_profiles<const N: usize>(
    users: [&str; N],
    password: &str,
) -> (TestTracker, tempfile::TempDir, [PathBuf; N]) {
    let t = tracker_with_users(&users, password).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut profiles = Vec::with_capacity(N);
    for user in users {
        profiles.push(login_profile(&t, dir.path(), user, user, password).await);
    }
    let profiles: [PathBuf; N] = profiles.try_into().unwrap_or_else(|_| unreachable!("one profile per user"));
    (t, dir, profiles)
}

/// A device of `user` that speaks the peer protocol from the test itself,
/// with no daemon behind it. It sends what a real node refuses to send (an
/// offer over the organisation's limit, a broken thumbnail), so a test can
/// see the receiving daemon's own checks at work.
#[derive(Debug)]
pub struct RawDevice {
    /// The user.
    pub user: String,
    /// The device.
    pub device: skein_proto::bytes::DeviceId,
    /// Its live tracker session, used to look peers up.
    pub session: skein_node::session::Connected,
    /// Its mesh on loopback.
    pub mesh: skein_node::mesh::Mesh,
}

impl RawDevice {
    /// Logs `user` in as a new device with a profile at `profile_dir` and
    /// starts its mesh. Requests from peers are dropped unanswered.
    pub async fn login(t: &TestTracker, profile_dir: &Path, user: &str, password: &str) -> RawDevice {
        let session = login(t, profile_dir, user, password).await;
        let identity = skein_node::profile::Profile::new(profile_dir).device().expect("device identity");
        let cert = session.saved.cert().expect("device certificate");
        let org_key =
            skein_proto::bytes::PublicKey::from_hex(&session.saved.org_signing_key).expect("organisation key");
        let config = skein_node::mesh::MeshConfig {
            listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("multiaddr")],
            ..skein_node::mesh::MeshConfig::default()
        };
        let (mesh, mut events) =
            skein_node::mesh::Mesh::start(identity.keypair, cert, org_key, config).expect("start the mesh");
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        RawDevice { user: user.to_owned(), device: identity.device_id, session, mesh }
    }

    /// Sends a message with `body` to every online device of `to`, dialling
    /// each directly, and returns each device's answer. Waits (at most 30 s)
    /// until the tracker lists at least one of them with addresses.
    pub async fn deliver(
        &self,
        to: &str,
        body: skein_proto::peer::MessageBody,
    ) -> (skein_proto::bytes::MailId, Vec<skein_proto::peer::PeerResponse>) {
        use skein_proto::control::{Request, Response};
        let client = self.session.client.clone();
        let info = wait_for(Duration::from_secs(30), &format!("{to}'s online devices"), || {
            let (client, to) = (client.clone(), to.to_owned());
            async move {
                match client.request(Request::LookupPeer { user: to }).await {
                    Ok(Response::Peer(p)) if p.online.iter().any(|d| !d.addresses.listen.is_empty()) => Some(p),
                    _ => None,
                }
            }
        })
        .await;
        let msg = skein_proto::peer::ChatMessage {
            id: skein_proto::bytes::MailId(rand::random()),
            from_user: self.user.clone(),
            from_device: self.device,
            to_user: to.to_owned(),
            conversation: skein_proto::peer::Conversation::Direct,
            sent_at_ms: skein_node::now_ms(),
            body,
        };
        let mut answers = Vec::new();
        for d in info.online.iter().filter(|d| !d.addresses.listen.is_empty()) {
            let peer = libp2p::PeerId::from_bytes(&d.cert.body.peer_id).expect("peer id");
            let addrs = d.addresses.listen.iter().filter_map(|a| a.parse().ok()).collect();
            self.mesh.connect(peer, addrs).await.unwrap_or_else(|e| panic!("cannot reach {to}'s device: {e}"));
            let req = skein_proto::peer::PeerRequest::Deliver(msg.clone());
            let (answer, _) = self.mesh.request(peer, req).await.unwrap_or_else(|e| panic!("delivery to {to}: {e}"));
            answers.push(answer);
        }
        (msg.id, answers)
    }
}

/// Starts `skein daemon` for a profile on loopback, with extra flags.
pub fn daemon(profile: &Path, extra: &[&str]) -> Proc {
    let mut args = vec!["--profile", profile.to_str().expect("utf-8 path"), "daemon", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Proc::spawn(&bin("skein"), &args, &[])
}

/// [`daemon`], once it has said it is connected to the tracker.
pub async fn online(profile: &Path, extra: &[&str]) -> Proc {
    let mut d = daemon(profile, extra);
    let name = profile.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    d.wait_line(Duration::from_secs(30), &format!("{name} connected"), |l| l.contains(r#""type":"connected""#)).await;
    d
}

/// `len` pseudo-random bytes (xorshift, seeded): incompressible test
/// content that is the same for the same seed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Path of a workspace binary (`skein`, `skein-tracker`), built by
/// `cargo test --workspace` alongside the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// Runs `skein` with a profile and returns (exit ok, stdout, stderr).
pub async fn skein(profile: &Path, args: &[&str], password: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(bin("skein"));
    cmd.arg("--profile").arg(profile).args(args);
    match password {
        Some(p) => cmd.env("SKEIN_PASSWORD", p),
        None => cmd.env_remove("SKEIN_PASSWORD"),
    };
    output(cmd, "skein").await
}

/// Runs `cmd` to completion, at most a minute: (exit ok, stdout, stderr).
pub async fn output(mut cmd: Command, what: &str) -> (bool, String, String) {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within a minute"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running child process whose standard output lines are collected.
#[derive(Debug)]
pub struct Proc {
    /// The child.
    pub child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line seen so far.
    pub seen: Vec<String>,
}

impl Proc {
    /// Spawns `program args` with extra environment.
    pub fn spawn(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines, seen: Vec::new() }
    }

    /// Waits for a line satisfying `pred`, panicking after `timeout`.
    pub async fn wait_line(&mut self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        self.wait_next(timeout, what, pred).await
    }

    /// Waits for a line satisfying `pred` among lines not yet seen.
    pub async fn wait_next(&mut self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!("process ended before printing {what}; output so far: {:#?}", self.seen),
                Err(_) => panic!("timed out waiting for {what}; output so far: {:#?}", self.seen),
            }
        }
    }

    /// Collects output lines for `period`; returns how many arrived.
    pub async fn collect_for(&mut self, period: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + period;
        let mut n = 0;
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            self.seen.push(line);
            n += 1;
        }
        n
    }

    /// Kills the process with SIGKILL, as a crash or power loss would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends SIGINT, as Ctrl-C would, and waits up to `within` for the
    /// process (`what`) to exit.
    pub async fn interrupt(&mut self, what: &str, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().expect("still running");
        let kill = std::process::Command::new("kill").arg("-INT").arg(pid.to_string()).status().expect("run kill");
        assert!(kill.success(), "kill -INT {pid}");
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{what} still running {within:?} after SIGINT; output: {:#?}", self.seen))
            .expect("wait")
    }
}

/// A UDP relay between clients and a server that can be told to drop
/// everything, so a client seems to vanish without saying goodbye.
#[derive(Debug, Clone)]
pub struct UdpProxy {
    /// Where clients should send.
    pub addr: SocketAddr,
    silent: Arc<AtomicBool>,
}

impl UdpProxy {
    /// Starts a proxy for one client towards `server`.
    pub async fn start(server: SocketAddr) -> UdpProxy {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind proxy"));
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind proxy back"));
        let addr = front.local_addr().expect("proxy address");
        let silent = Arc::new(AtomicBool::new(false));
        let client: Arc<tokio::sync::Mutex<Option<SocketAddr>>> = Arc::default();
        {
            let (front, back, silent, client) = (front.clone(), back.clone(), silent.clone(), client.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    *client.lock().await = Some(from);
                    if !silent.load(Ordering::Relaxed) {
                        let _ = back.send_to(&buf[..n], server).await;
                    }
                }
            });
        }
        {
            let silent = silent.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, _)) = back.recv_from(&mut buf).await {
                    let to = *client.lock().await;
                    if let (Some(to), false) = (to, silent.load(Ordering::Relaxed)) {
                        let _ = front.send_to(&buf[..n], to).await;
                    }
                }
            });
        }
        UdpProxy { addr, silent }
    }

    /// Drops all traffic from now on.
    pub fn go_silent(&self) {
        self.silent.store(true, Ordering::Relaxed);
    }
}
