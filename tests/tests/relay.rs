//! The tracker's relay (libp2p circuit relay v2 over QUIC): logged-in
//! devices reserve and relay, strangers are refused, the relayed bytes are
//! counted per peer and in total, and revoked or disabled devices lose
//! access at once.
//!
//! Nodes here are minimal libp2p swarms (relay client, identify, ping,
//! libp2p-stream) keyed with the device keys of real logged-in profiles, so
//! the tests exercise the tracker's relay alone. DCUtR is left out, so every
//! peer connection stays relayed.

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, identify, noise, ping, relay, yamux};
use skein_node::profile::Profile;
use skein_node::session::{self, Connected};
use skein_proto::control::{Request, Response};
use skein_tests::{TestTracker, init, wait_for};
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const PW: &str = "correct horse battery";
const FILE: StreamProtocol = StreamProtocol::new("/skein-test/file/1");
const DEADLINE: Duration = Duration::from_secs(20);
const MIB: u64 = 1024 * 1024;

#[derive(NetworkBehaviour)]
struct Node {
    relay_client: relay::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
}

type Event = SwarmEvent<NodeEvent>;
type Cmd = Box<dyn FnOnce(&mut Swarm<Node>) + Send>;

/// A node's swarm, driven by its own task; the test sends it closures and
/// reads its events.
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
        // Listen before dialing, so QUIC dials go out from this socket.
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

    /// Runs `f` on the swarm inside its task.
    async fn with<R: Send + 'static>(&self, f: impl FnOnce(&mut Swarm<Node>) -> R + Send + 'static) -> R {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
            .expect("swarm task alive");
        rx.await.expect("swarm task alive")
    }

    /// Waits until `pick` returns `Some` for an event, or panics naming `what`.
    async fn wait<T>(&mut self, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => {
                    if let Some(v) = pick(&ev) {
                        return v;
                    }
                }
                Ok(None) => panic!("swarm task ended while waiting for {what}"),
                Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
            }
        }
    }

    /// Reserves a slot on `relay` (`.../p2p/RELAY`); returns the listener
    /// and the relayed listen address, or the refusal.
    async fn reserve(&mut self, relay: &Multiaddr) -> Result<(libp2p::core::transport::ListenerId, Multiaddr), String> {
        let circuit = relay.clone().with(Protocol::P2pCircuit);
        let id = self.with(move |s| s.listen_on(circuit)).await.map_err(|e| e.to_string())?;
        let (mut accepted, mut addr) = (false, None);
        self.wait("a relay reservation or its refusal", |e| {
            match e {
                SwarmEvent::Behaviour(NodeEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                    ..
                })) => accepted = true,
                SwarmEvent::NewListenAddr { listener_id, address } if *listener_id == id => {
                    addr = Some(address.clone())
                }
                SwarmEvent::ListenerClosed { listener_id, reason, .. } if *listener_id == id => {
                    return Some(Err(format!("{reason:?}")));
                }
                _ => {}
            }
            match (&addr, accepted) {
                (Some(a), true) => Some(Ok((id, a.clone()))),
                _ => None,
            }
        })
        .await
    }

    /// Dials `target` only through `relay`; Ok once connected, Err(why) if
    /// the dial fails.
    async fn dial_via(&mut self, relay: &Multiaddr, target: PeerId) -> Result<(), String> {
        let via = relay.clone().with(Protocol::P2pCircuit).with(Protocol::P2p(target));
        let opts = DialOpts::peer_id(target).addresses(vec![via]).condition(PeerCondition::Always).build();
        let conn = opts.connection_id();
        self.with(move |s| s.dial(opts)).await.map_err(|e| e.to_string())?;
        self.wait("the relayed dial to end", |e| match e {
            SwarmEvent::ConnectionEstablished { connection_id, endpoint, .. } if *connection_id == conn => {
                assert!(endpoint.is_relayed(), "the connection must be relayed: {endpoint:?}");
                Some(Ok(()))
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } if *connection_id == conn => {
                Some(Err(error.to_string()))
            }
            _ => None,
        })
        .await
    }

    /// Answers every FILE stream with the number of bytes read.
    fn serve_files(&self) {
        let mut incoming = self.control.clone().accept(FILE).expect("accept once");
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

    /// Sends `len` bytes to `peer` on a FILE stream; returns what it counted.
    async fn send_file(&self, peer: PeerId, len: usize) -> u64 {
        let mut control = self.control.clone();
        let transfer = async move {
            let mut s = control.open_stream(peer, FILE).await.expect("open stream");
            s.write_all(&vec![0x5a; len]).await.expect("write");
            s.close().await.expect("close");
            let mut reply = [0u8; 8];
            s.read_exact(&mut reply).await.expect("reply");
            u64::from_be_bytes(reply)
        };
        tokio::time::timeout(DEADLINE, transfer).await.expect("transfer finished in time")
    }
}

async fn login(t: &TestTracker, dir: &Path, user: &str) -> (Connected, Keypair) {
    t.add_user(user, PW).await;
    let profile = Profile::new(dir.join(user));
    let conn = session::login(&profile, &t.address(), &t.ca_path(), user, PW.into()).await.expect("login");
    (conn, profile.device().expect("device").keypair)
}

/// The relay's address as a node learns it: RelayInfo over the control plane.
async fn relay_address(t: &TestTracker, conn: &Connected) -> Multiaddr {
    let Response::Relay(info) = conn.client.request(Request::RelayInfo).await.expect("relay info") else {
        panic!("expected relay info")
    };
    let relay = t.running().relay();
    let peer = PeerId::from_bytes(&info.peer_id).expect("relay PeerId");
    assert_eq!(peer, relay.peer_id());
    assert_eq!(info.port, relay.port());
    assert_eq!(info.addrs, vec![format!("/ip4/127.0.0.1/udp/{}/quic-v1", relay.port())]);
    info.addrs[0].parse::<Multiaddr>().expect("multiaddr").with(Protocol::P2p(peer))
}

/// Waits until the relay holds `reservations` and `circuits`.
async fn wait_counts(t: &TestTracker, reservations: usize, circuits: usize) {
    let relay = t.running().relay().clone();
    wait_for(DEADLINE, &format!("{reservations} reservations and {circuits} circuits"), || {
        let relay = relay.clone();
        async move {
            let s = relay.stats().await;
            (s.reservations == reservations && s.circuits == circuits).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_device_reserves_and_stranger_is_refused() {
    init();
    let t = TestTracker::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, alice_key) = login(&t, dir.path(), "alice").await;
    let relay = relay_address(&t, &alice).await;

    let mut a = Peer::spawn(alice_key);
    let (_, relayed) = a.reserve(&relay).await.expect("alice's reservation");
    assert!(relayed.iter().any(|p| p == Protocol::P2pCircuit), "{relayed}");
    assert!(relayed.to_string().starts_with(&relay.to_string()), "{relayed} is not under {relay}");
    wait_counts(&t, 1, 0).await;

    // A key that never logged in gets nothing, not even a connection.
    let mut stranger = Peer::spawn(Keypair::generate_ed25519());
    stranger.reserve(&relay).await.expect_err("a stranger must be refused");
    let relay_peer = t.running().relay().peer_id();
    assert!(!stranger.with(move |s| s.is_connected(&relay_peer)).await, "the relay keeps no connection to a stranger");
    assert_eq!(t.running().relay().stats().await.reservations, 1);
    // Nor a circuit to a device that has a reservation.
    stranger.dial_via(&relay, a.id).await.expect_err("a stranger's circuit must be refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_bytes_are_counted_and_revocation_ends_access() {
    init();
    let t = TestTracker::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, alice_key) = login(&t, dir.path(), "alice").await;
    let (_bob, bob_key) = login(&t, dir.path(), "bob").await;
    let relay = relay_address(&t, &alice).await;

    let mut b = Peer::spawn(bob_key);
    let (b_listener, _) = b.reserve(&relay).await.expect("bob's reservation");
    b.serve_files();
    let mut a = Peer::spawn(alice_key);
    a.dial_via(&relay, b.id).await.expect("alice reaches bob through the relay");
    assert_eq!(a.send_file(b.id, MIB as usize).await, MIB);

    let stats = t.running().relay().stats().await;
    assert!(stats.total_relayed_bytes >= MIB, "{stats:?}");
    assert!(stats.total_relayed_bytes <= MIB + 64 * 1024, "{stats:?}");
    let a_bytes = stats.peer(&a.id).expect("alice counted");
    let b_bytes = stats.peer(&b.id).expect("bob counted");
    assert!(a_bytes.rx >= MIB && b_bytes.tx >= MIB, "{stats:?}");
    assert!(b_bytes.rx < 64 * 1024, "{stats:?}");
    assert_eq!((stats.reservations, stats.circuits), (1, 1), "{stats:?}");

    // Revoked: bob's reservation ends and new circuits to him fail.
    t.running().relay().revoke(b.id).await;
    b.wait("bob's relay listener to close", |e| match e {
        SwarmEvent::ListenerClosed { listener_id, .. } if *listener_id == b_listener => Some(()),
        _ => None,
    })
    .await;
    a.dial_via(&relay, b.id).await.expect_err("no circuit to a revoked device");
    b.reserve(&relay).await.expect_err("a revoked device cannot reserve again");
    let relay_peer = t.running().relay().peer_id();
    assert!(!b.with(move |s| s.is_connected(&relay_peer)).await, "nor keep a connection to the relay");
    wait_counts(&t, 0, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_ends_their_relay_access() {
    init();
    let t = TestTracker::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, _) = login(&t, dir.path(), "alice").await;
    let (_bob, bob_key) = login(&t, dir.path(), "bob").await;
    let relay = relay_address(&t, &alice).await;
    let mut b = Peer::spawn(bob_key);
    let (b_listener, _) = b.reserve(&relay).await.expect("bob's reservation");

    // As the admin CLI would: on the store, from outside the tracker.
    let store = t.store().await;
    skein_tracker::admin::set_disabled(&store, "bob", true).await.expect("disable bob");
    store.close().await;
    b.wait("bob's relay listener to close", |e| match e {
        SwarmEvent::ListenerClosed { listener_id, .. } if *listener_id == b_listener => Some(()),
        _ => None,
    })
    .await;
    b.reserve(&relay).await.expect_err("a disabled user's device cannot reserve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_ends_the_old_devices_reservation_until_it_logs_in_again() {
    init();
    let t = TestTracker::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, _) = login(&t, dir.path(), "alice").await;
    let (_bob, bob_key) = login(&t, dir.path(), "bob").await;
    let relay = relay_address(&t, &alice).await;
    let mut b = Peer::spawn(bob_key);
    let (b_listener, _) = b.reserve(&relay).await.expect("bob's reservation");

    let store = t.store().await;
    skein_tracker::admin::set_password(&store, "bob", "a brand new password".into(), &t.passwords())
        .await
        .expect("reset bob's password");
    store.close().await;
    b.wait("bob's relay listener to close", |e| match e {
        SwarmEvent::ListenerClosed { listener_id, .. } if *listener_id == b_listener => Some(()),
        _ => None,
    })
    .await;
    b.reserve(&relay).await.expect_err("the old device's certificate no longer opens the relay");

    // With the new password the same device is welcome again.
    let profile = Profile::new(dir.path().join("bob"));
    let again = session::login(&profile, &t.address(), &t.ca_path(), "bob", "a brand new password".into())
        .await
        .expect("bob logs in with the new password");
    b.reserve(&relay).await.expect("a fresh login reserves again");
    again.client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_ends_the_devices_reservation() {
    init();
    let t = TestTracker::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, _) = login(&t, dir.path(), "alice").await;
    let (bob, bob_key) = login(&t, dir.path(), "bob").await;
    let relay = relay_address(&t, &alice).await;
    let mut b = Peer::spawn(bob_key);
    let (b_listener, _) = b.reserve(&relay).await.expect("bob's reservation");

    bob.client.request(Request::Logout).await.expect("bob logs out");
    b.wait("bob's relay listener to close", |e| match e {
        SwarmEvent::ListenerClosed { listener_id, .. } if *listener_id == b_listener => Some(()),
        _ => None,
    })
    .await;
    b.reserve(&relay).await.expect_err("a logged-out device cannot reserve");
    wait_counts(&t, 0, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_keeps_its_identity_and_stops_with_the_tracker() {
    init();
    let mut t = TestTracker::start().await;
    let before = t.running().relay().clone();
    assert!(!before.is_stopped());
    t.restart().await;
    assert!(before.is_stopped(), "the old relay must stop with its tracker");
    assert_eq!(before.stats().await, Default::default());
    let after = t.running().relay();
    assert_eq!(after.peer_id(), before.peer_id(), "the relay identity lives in DATA/relay.key");
    let (peer, listen) = after.info().await;
    assert_eq!(peer, before.peer_id());
    assert!(listen.iter().any(|a| a.to_string().ends_with(&format!("/udp/{}/quic-v1", after.port()))), "{listen:?}");
}
