//! The relay limits in `tracker.toml` hold: the real `skein-tracker` binary
//! runs with `relay_max_circuits_per_peer`, `relay_max_circuit_bytes` or
//! `relay_max_circuit_secs` set low, its users log in over the control
//! plane, and minimal libp2p swarms keyed with their device keys (as in
//! `relay.rs`) open circuits through its relay. A circuit beyond the
//! per-device count is refused, a circuit that carries more than its bytes
//! is cut, and one that outlives its time is closed, while circuits within
//! the limits work.

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, identify, noise, ping, relay, yamux};
use skein_node::profile::Profile;
use skein_proto::control::{Request, Response};
use skein_tests::{Proc, bin, init};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const PW: &str = "correct horse battery";
const ECHO: StreamProtocol = StreamProtocol::new("/skein-test/count/1");
const DEADLINE: Duration = Duration::from_secs(20);
const KIB: usize = 1024;

#[derive(NetworkBehaviour)]
struct Node {
    relay_client: relay::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
}

type Event = SwarmEvent<NodeEvent>;
type Cmd = Box<dyn FnOnce(&mut Swarm<Node>) + Send>;

/// A device's swarm, driven by its own task.
struct Peer {
    id: PeerId,
    cmds: mpsc::UnboundedSender<Cmd>,
    events: mpsc::UnboundedReceiver<Event>,
    control: libp2p_stream::Control,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    fn spawn(key: Keypair) -> Peer {
        let id = key.public().to_peer_id();
        let mut swarm = SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_quic()
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .expect("relay client transport")
            .with_behaviour(|key, relay_client| Node {
                relay_client,
                identify: identify::Behaviour::new(
                    identify::Config::new("/skein/1".into(), key.public()).with_cache_size(0),
                ),
                ping: ping::Behaviour::new(ping::Config::new()),
                stream: libp2p_stream::Behaviour::new(),
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm.listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("addr")).expect("listen");
        let control = swarm.behaviour().stream.new_control();
        let (cmds, mut cmd_rx) = mpsc::unbounded_channel::<Cmd>();
        let (event_tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    cmd = cmd_rx.recv() => match cmd {
                        Some(f) => f(&mut swarm),
                        None => return,
                    },
                    ev = swarm.select_next_some() => {
                        let _ = event_tx.send(ev);
                    }
                }
            }
        });
        Peer { id, cmds, events, control, task }
    }

    async fn with<R: Send + 'static>(&self, f: impl FnOnce(&mut Swarm<Node>) -> R + Send + 'static) -> R {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
            .expect("swarm task alive");
        rx.await.expect("swarm task alive")
    }

    async fn wait<T>(&mut self, what: &str, within: Duration, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => {
                    if let Some(v) = pick(&ev) {
                        return v;
                    }
                }
                Ok(None) => panic!("swarm task ended while waiting for {what}"),
                Err(_) => panic!("timed out after {within:?} waiting for {what}"),
            }
        }
    }

    /// Reserves a slot on `relay` and waits until it is accepted.
    async fn reserve(&mut self, relay: &Multiaddr) {
        let circuit = relay.clone().with(Protocol::P2pCircuit);
        self.with(move |s| s.listen_on(circuit)).await.expect("listen on the relay");
        self.wait("the relay reservation", DEADLINE, |e| match e {
            SwarmEvent::Behaviour(NodeEvent::RelayClient(relay::client::Event::ReservationReqAccepted { .. })) => {
                Some(())
            }
            SwarmEvent::ListenerClosed { reason, .. } => panic!("reservation refused: {reason:?}"),
            _ => None,
        })
        .await;
    }

    /// Opens a new circuit to `target` through `relay`: its connection,
    /// or why it failed.
    async fn circuit(&mut self, relay: &Multiaddr, target: PeerId) -> Result<ConnectionId, String> {
        let via = relay.clone().with(Protocol::P2pCircuit).with(Protocol::P2p(target));
        let opts = DialOpts::peer_id(target).addresses(vec![via]).condition(PeerCondition::Always).build();
        let conn = opts.connection_id();
        self.with(move |s| s.dial(opts)).await.map_err(|e| e.to_string())?;
        self.wait("the relayed dial to end", DEADLINE, |e| match e {
            SwarmEvent::ConnectionEstablished { connection_id, endpoint, .. } if *connection_id == conn => {
                assert!(endpoint.is_relayed(), "the connection must be relayed: {endpoint:?}");
                Some(Ok(conn))
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } if *connection_id == conn => {
                Some(Err(error.to_string()))
            }
            _ => None,
        })
        .await
    }

    /// Waits until the connection `conn` closes; returns how long that took.
    async fn closed(&mut self, conn: ConnectionId, within: Duration) -> Duration {
        let start = Instant::now();
        self.wait("the circuit to close", within, |e| match e {
            SwarmEvent::ConnectionClosed { connection_id, .. } if *connection_id == conn => Some(()),
            _ => None,
        })
        .await;
        start.elapsed()
    }

    /// Answers every ECHO stream with the number of bytes it read.
    fn serve_counts(&self) {
        let mut incoming = self.control.clone().accept(ECHO).expect("accept once");
        tokio::spawn(async move {
            while let Some((_, mut s)) = incoming.next().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    if s.read_to_end(&mut buf).await.is_ok() {
                        let _ = s.write_all(&(buf.len() as u64).to_be_bytes()).await;
                        let _ = s.close().await;
                    }
                });
            }
        });
    }

    /// Sends `len` bytes to `peer` on a new stream; Ok(count the peer read)
    /// or why it failed.
    async fn send(&self, peer: PeerId, len: usize) -> Result<u64, String> {
        let mut control = self.control.clone();
        let transfer = async move {
            let mut s = control.open_stream(peer, ECHO).await.map_err(|e| format!("open: {e}"))?;
            s.write_all(&vec![0x5a; len]).await.map_err(|e| format!("write: {e}"))?;
            s.close().await.map_err(|e| format!("close: {e}"))?;
            let mut reply = [0u8; 8];
            s.read_exact(&mut reply).await.map_err(|e| format!("reply: {e}"))?;
            Ok(u64::from_be_bytes(reply))
        };
        tokio::time::timeout(DEADLINE, transfer).await.unwrap_or_else(|_| Err("timed out".into()))
    }
}

/// A `skein-tracker` process with `toml` as its `tracker.toml`, users
/// with device keys, and its relay's address.
struct Setup {
    _tracker: Proc,
    relay: Multiaddr,
    keys: Vec<Keypair>,
    _dir: tempfile::TempDir,
}

async fn tracker_cmd(data: &Path, args: &[&str]) {
    let mut cmd = tokio::process::Command::new(bin("skein-tracker"));
    cmd.args(args).arg("--data").arg(data).env("SKEIN_PASSWORD", PW);
    let (ok, _, err) = skein_tests::output(cmd, "skein-tracker").await;
    assert!(ok, "skein-tracker {args:?}: {err}");
}

async fn setup(toml: &str, users: &[&str]) -> Setup {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // Cheap password hashing, so the test spends its time relaying.
    let toml = format!("{toml}\npassword_memory_kib = 1024\npassword_iterations = 1\n");
    std::fs::write(data.join("tracker.toml"), toml).expect("write tracker.toml");
    let d = data.to_str().expect("utf-8");
    let mut tracker = Proc::spawn(
        &bin("skein-tracker"),
        &["run", "--data", d, "--listen", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0"],
        &[("RUST_LOG", "warn")],
    );
    let serving = tracker.wait_line(DEADLINE, "the serving line", |l| l.starts_with("Tracker serving on UDP")).await;
    let addr = serving.split_whitespace().nth(4).expect("address").to_owned();
    let ca: PathBuf = data.join("ca.pem");
    let mut keys = Vec::new();
    let mut relay = None;
    for user in users {
        tracker_cmd(&data, &["user", "add", user]).await;
        let profile = Profile::new(dir.path().join(user));
        let conn = skein_node::session::login(&profile, &addr, &ca, user, PW.into()).await.expect("login");
        if relay.is_none() {
            let Response::Relay(info) = conn.client.request(Request::RelayInfo).await.expect("relay info") else {
                panic!("expected relay info")
            };
            let peer = PeerId::from_bytes(&info.peer_id).expect("relay PeerId");
            relay = Some(info.addrs[0].parse::<Multiaddr>().expect("multiaddr").with(Protocol::P2p(peer)));
        }
        conn.client.close();
        keys.push(profile.device().expect("device").keypair);
    }
    Setup { _tracker: tracker, relay: relay.expect("relay address"), keys, _dir: dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuits_beyond_the_per_device_limit_are_refused() {
    let s = setup("relay_max_circuits_per_peer = 1", &["alice", "bob"]).await;
    let mut alice = Peer::spawn(s.keys[0].clone());
    alice.reserve(&s.relay).await;
    let mut bob = Peer::spawn(s.keys[1].clone());

    let first = bob.circuit(&s.relay, alice.id).await.expect("the first circuit");
    let refused = bob.circuit(&s.relay, alice.id).await.expect_err("a second circuit must be refused");
    eprintln!("refused: {refused}");
    assert!(refused.contains("resource limit exceeded"), "refused for the limit, not something else: {refused}");

    // The limit counts open circuits: once one closes, another may open.
    bob.with(move |sw| sw.close_connection(first)).await;
    bob.closed(first, DEADLINE).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        match bob.circuit(&s.relay, alice.id).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "no circuit after one closed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_that_carries_more_than_its_bytes_is_cut() {
    let limit = 256 * KIB;
    let s = setup(&format!("relay_max_circuit_bytes = {limit}"), &["carol", "dave"]).await;
    let mut dave = Peer::spawn(s.keys[1].clone());
    dave.reserve(&s.relay).await;
    dave.serve_counts();
    let mut carol = Peer::spawn(s.keys[0].clone());

    // Within the limit the circuit carries data.
    let conn = carol.circuit(&s.relay, dave.id).await.expect("a circuit");
    assert_eq!(carol.send(dave.id, 64 * KIB).await, Ok(64 * KIB as u64));
    // Past it, the relay cuts the circuit: not all of it arrives (the
    // stream fails, or ends short) and the connection over it closes.
    let cut = carol.send(dave.id, 4 * limit).await;
    assert!(cut != Ok(4 * limit as u64), "{} bytes crossed a circuit limited to {limit}", 4 * limit);
    carol.closed(conn, DEADLINE).await;

    // The limit is per circuit: a new one carries data again.
    carol.circuit(&s.relay, dave.id).await.expect("a new circuit");
    assert_eq!(carol.send(dave.id, 64 * KIB).await, Ok(64 * KIB as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_is_closed_when_its_time_is_up() {
    let s = setup("relay_max_circuit_secs = 2", &["erin", "frank"]).await;
    let mut erin = Peer::spawn(s.keys[0].clone());
    erin.reserve(&s.relay).await;
    erin.serve_counts();
    let mut frank = Peer::spawn(s.keys[1].clone());
    let conn = frank.circuit(&s.relay, erin.id).await.expect("a circuit");
    let opened = Instant::now();
    assert_eq!(frank.send(erin.id, 16 * KIB).await, Ok(16 * KIB as u64));
    // Ping keeps the connection busy and the peers' idle timeouts are 30 s
    // and more, so a close this early is the relay's limit.
    frank.closed(conn, Duration::from_secs(15)).await;
    let lived = opened.elapsed();
    eprintln!("the circuit lived {lived:?}");
    assert!(lived >= Duration::from_millis(1500), "closed before its time: {lived:?}");
    // The relay itself still serves: a new circuit opens.
    frank.circuit(&s.relay, erin.id).await.expect("a new circuit");
}
