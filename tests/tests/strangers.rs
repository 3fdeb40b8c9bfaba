//! Strangers are bounded on a node: connections are capped in all and per
//! peer, a connection whose peer does not pass the hello in time is closed,
//! requests from a peer whose hello is under way are kept only within a
//! small budget, a peer that dialled us gets no certificate before its own,
//! and raw streams are taken only from peers that passed the hello.
//!
//! Nodes run in this process on loopback with certificates signed by an
//! organisation key made here. A stranger is a bare libp2p swarm that speaks
//! the peer protocol without the mesh's rules, driven by the test.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder};
use skein_certs::OrgSigningKey;
use skein_node::mesh::codec::{PROTOCOL, PeerCodec};
use skein_node::mesh::{Mesh, MeshConfig, MeshEvent};
use skein_proto::ErrorCode;
use skein_proto::bytes::{DeviceId, MailId, PublicKey};
use skein_proto::device::{DeviceCert, DeviceCertBody};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody, PeerHello, PeerRequest, PeerResponse};
use skein_tests::{init, wait_for};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

fn config() -> MeshConfig {
    MeshConfig { listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("addr")], ..MeshConfig::default() }
}

fn cert(org: &OrgSigningKey, user: &str, peer: &PeerId) -> DeviceCert {
    let now = skein_node::now_ms();
    org.sign(DeviceCertBody {
        version: 1,
        serial: 1,
        org: "Skein".into(),
        user: user.into(),
        device_id: DeviceId(rand::random()),
        peer_id: peer.to_bytes(),
        x25519: PublicKey([7; 32]),
        issued_at_ms: now - 1_000,
        expires_at_ms: now + 3_600_000,
    })
}

fn hello(org: &OrgSigningKey, user: &str, peer: &PeerId) -> PeerRequest {
    PeerRequest::Hello(PeerHello { cert: cert(org, user, peer), agent: "stranger".into() })
}

fn deliver(from: &str, text: String) -> PeerRequest {
    PeerRequest::Deliver(ChatMessage {
        id: MailId(rand::random()),
        from_user: from.into(),
        from_device: DeviceId([9; 16]),
        to_user: "alice".into(),
        conversation: Conversation::Direct,
        sent_at_ms: skein_node::now_ms(),
        body: MessageBody::Text(text),
    })
}

fn not_authenticated(r: &Result<PeerResponse, String>) -> bool {
    matches!(r, Ok(PeerResponse::Refused(b)) if b.code == ErrorCode::NotAuthenticated)
}

/// A node of `user` on loopback: its mesh, events and listen addresses.
async fn node(
    org: &OrgSigningKey,
    user: &str,
    config: MeshConfig,
) -> (Mesh, mpsc::Receiver<MeshEvent>, Vec<Multiaddr>) {
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let (mesh, mut events) = Mesh::start(key, cert(org, user, &peer), org.public(), config).expect("mesh");
    let addrs = skein_tests::listen_addrs(&mut events).await;
    (mesh, events, addrs)
}

/// Answers every request the node hands over with `Ok`, and drops the rest.
fn answer_everything(mut events: mpsc::Receiver<MeshEvent>) {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let MeshEvent::Request { reply, .. } = ev {
                let _ = reply.send(PeerResponse::Ok);
            }
        }
    });
}

/// Waits for the node to ask whether to accept `peer`; returns the answer channel.
async fn confirm_asked(events: &mut mpsc::Receiver<MeshEvent>, peer: PeerId) -> oneshot::Sender<bool> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("confirmation asked in time") {
            Some(MeshEvent::Confirm { peer: p, reply, .. }) if p == peer => return reply,
            Some(MeshEvent::Request { .. }) => panic!("an unverified peer's request reached the owner"),
            Some(_) => continue,
            None => panic!("mesh stopped"),
        }
    }
}

/// Connection counts a stranger saw: dials resolved (connected or failed)
/// and connections open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Conns {
    resolved: usize,
    open: usize,
}

enum Cmd {
    Listen(oneshot::Sender<Multiaddr>),
    Dial(PeerId, Multiaddr, oneshot::Sender<Result<(), String>>),
    Send(PeerId, Box<PeerRequest>, oneshot::Sender<Result<PeerResponse, String>>),
}

/// A bare swarm speaking the peer protocol, run by a task; it follows none
/// of the mesh's rules.
struct Stranger {
    peer: PeerId,
    cmds: mpsc::Sender<Cmd>,
    /// Requests the node sends it, with where the answer goes (unanswered
    /// ones are dropped).
    inbound: mpsc::Receiver<(PeerRequest, oneshot::Sender<PeerResponse>)>,
    conns: watch::Receiver<Conns>,
}

impl Stranger {
    fn start(key: Keypair) -> Stranger {
        let peer = key.public().to_peer_id();
        let mut swarm: Swarm<request_response::Behaviour<PeerCodec>> = SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_quic()
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    PeerCodec,
                    [(PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
                )
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let (cmds, mut cmd_rx) = mpsc::channel::<Cmd>(64);
        let (inbound_tx, inbound) = mpsc::channel(64);
        let (conns_tx, conns) = watch::channel(Conns::default());
        tokio::spawn(async move {
            let mut dials: HashMap<ConnectionId, oneshot::Sender<Result<(), String>>> = HashMap::new();
            let mut sent = HashMap::new();
            let mut answers = FuturesUnordered::new();
            let mut counts = Conns::default();
            let mut listening: Option<oneshot::Sender<Multiaddr>> = None;
            loop {
                tokio::select! {
                    cmd = cmd_rx.recv() => match cmd {
                        Some(Cmd::Listen(reply)) => {
                            swarm.listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("addr")).expect("listen");
                            listening = Some(reply);
                        }
                        Some(Cmd::Dial(peer, addr, reply)) => {
                            let opts = DialOpts::peer_id(peer).addresses(vec![addr]).condition(PeerCondition::Always).build();
                            let id = opts.connection_id();
                            match swarm.dial(opts) {
                                Ok(()) => { dials.insert(id, reply); }
                                Err(e) => { let _ = reply.send(Err(e.to_string())); }
                            }
                        }
                        Some(Cmd::Send(peer, req, reply)) => {
                            sent.insert(swarm.behaviour_mut().send_request(&peer, *req), reply);
                        }
                        None => return,
                    },
                    Some((channel, answer)) = answers.next(), if !answers.is_empty() => {
                        let answer: Result<PeerResponse, oneshot::error::RecvError> = answer;
                        let channel: ResponseChannel<PeerResponse> = channel;
                        if let Ok(a) = answer {
                            let _ = swarm.behaviour_mut().send_response(channel, a);
                        }
                    }
                    ev = swarm.select_next_some() => match ev {
                        SwarmEvent::NewListenAddr { address, .. } => {
                            if let Some(reply) = listening.take() {
                                let _ = reply.send(address);
                            }
                        }
                        SwarmEvent::ConnectionEstablished { connection_id, .. } => {
                            counts.open += 1;
                            if let Some(reply) = dials.remove(&connection_id) {
                                counts.resolved += 1;
                                let _ = reply.send(Ok(()));
                            }
                            conns_tx.send_replace(counts);
                        }
                        SwarmEvent::ConnectionClosed { .. } => {
                            counts.open -= 1;
                            conns_tx.send_replace(counts);
                        }
                        SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                            if let Some(reply) = dials.remove(&connection_id) {
                                counts.resolved += 1;
                                let _ = reply.send(Err(error.to_string()));
                            }
                            conns_tx.send_replace(counts);
                        }
                        SwarmEvent::Behaviour(request_response::Event::Message { message, .. }) => match message {
                            request_response::Message::Request { request, channel, .. } => {
                                let (tx, rx) = oneshot::channel();
                                let _ = inbound_tx.try_send((request, tx));
                                answers.push(async move { (channel, rx.await) });
                            }
                            request_response::Message::Response { request_id, response } => {
                                if let Some(reply) = sent.remove(&request_id) {
                                    let _ = reply.send(Ok(response));
                                }
                            }
                        },
                        SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                            if let Some(reply) = sent.remove(&request_id) {
                                let _ = reply.send(Err(error.to_string()));
                            }
                        }
                        _ => {}
                    },
                }
            }
        });
        Stranger { peer, cmds, inbound, conns }
    }

    /// Listens on loopback; returns the address.
    async fn listen(&self) -> Multiaddr {
        let (reply, rx) = oneshot::channel();
        self.cmds.send(Cmd::Listen(reply)).await.expect("stranger running");
        rx.await.expect("a listen address")
    }

    /// Dials `peer` once more (even if connected); waits for the outcome.
    async fn dial(&self, peer: PeerId, addr: &Multiaddr) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.cmds.send(Cmd::Dial(peer, addr.clone(), reply)).await.expect("stranger running");
        rx.await.expect("dial outcome")
    }

    /// Sends `req` to `peer`; the returned receiver gets the answer.
    async fn send(&self, peer: PeerId, req: PeerRequest) -> oneshot::Receiver<Result<PeerResponse, String>> {
        let (reply, rx) = oneshot::channel();
        self.cmds.send(Cmd::Send(peer, Box::new(req), reply)).await.expect("stranger running");
        rx
    }

    fn conns(&self) -> Conns {
        *self.conns.borrow()
    }
}

async fn answer(rx: oneshot::Receiver<Result<PeerResponse, String>>) -> Result<PeerResponse, String> {
    tokio::time::timeout(Duration::from_secs(15), rx).await.expect("an answer in time").expect("stranger running")
}

/// Sends `reqs` and waits (at most `window`) until `refusals` of them are
/// refused; returns the answers still to come and how many were refused.
async fn send_and_count_refusals(
    s: &Stranger,
    peer: PeerId,
    reqs: Vec<PeerRequest>,
    refusals: usize,
    window: Duration,
) -> (Vec<oneshot::Receiver<Result<PeerResponse, String>>>, usize) {
    let mut pending = Vec::new();
    for r in reqs {
        pending.push(s.send(peer, r).await);
    }
    let deadline = tokio::time::Instant::now() + window;
    let mut refused = 0;
    while refused < refusals && tokio::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for mut rx in pending {
            match rx.try_recv() {
                Ok(r) => {
                    assert!(not_authenticated(&r), "only a refusal comes back before the hello: {r:?}");
                    refused += 1;
                }
                Err(oneshot::error::TryRecvError::Empty) => still.push(rx),
                Err(e) => panic!("stranger stopped: {e}"),
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (pending, refused)
}

#[tokio::test]
async fn a_peer_that_dialled_us_gets_no_certificate_before_its_own_and_is_refused_at_once() {
    init();
    let org = OrgSigningKey::generate();
    let (alice, events, addrs) = node(&org, "alice", config()).await;
    answer_everything(events);
    let mut s = Stranger::start(Keypair::generate_ed25519());
    s.dial(alice.peer_id(), &addrs[0]).await.expect("connected");

    let started = tokio::time::Instant::now();
    let r = answer(s.send(alice.peer_id(), deliver("mallory", "hi".into())).await).await;
    assert!(not_authenticated(&r), "{r:?}");
    // The node keeps a request only while a hello is under way (5 s); none is.
    assert!(started.elapsed() < Duration::from_secs(3), "refused only after {:?}", started.elapsed());
    // The node did not present its certificate to the stranger.
    if let Ok(Some((req, _))) = tokio::time::timeout(Duration::from_millis(1500), s.inbound.recv()).await {
        panic!("the node sent a peer that had not said hello: {req:?}");
    }
}

#[tokio::test]
async fn requests_from_a_peer_whose_hello_is_under_way_are_kept_within_a_small_budget() {
    init();
    let org = OrgSigningKey::generate();
    let (alice, mut events, addrs) = node(&org, "alice", MeshConfig { confirm: true, ..config() }).await;
    let key = Keypair::generate_ed25519();
    let s = Stranger::start(key.clone());
    s.dial(alice.peer_id(), &addrs[0]).await.expect("connected");
    let hello_answer = s.send(alice.peer_id(), hello(&org, "mallory", &s.peer)).await;
    // The owner has not yet said whether this device is still valid.
    let confirm = confirm_asked(&mut events, s.peer).await;

    let per_peer = skein_node::mesh::HeldBudget::default().per_peer;
    let sent = 20;
    let reqs = (0..sent).map(|n| deliver("mallory", format!("message {n}"))).collect();
    let (pending, refused) =
        send_and_count_refusals(&s, alice.peer_id(), reqs, sent - per_peer, Duration::from_secs(3)).await;
    assert_eq!(refused, sent - per_peer, "all but {per_peer} are refused at once");

    // Once accepted, the requests kept are answered.
    let _ = confirm.send(true);
    answer_everything(events);
    assert!(matches!(answer(hello_answer).await, Ok(PeerResponse::Hello(_))));
    for rx in pending {
        assert!(matches!(answer(rx).await, Ok(PeerResponse::Ok)));
    }
}

#[tokio::test]
async fn large_requests_count_against_the_budget_by_their_size() {
    init();
    let org = OrgSigningKey::generate();
    let (alice, mut events, addrs) = node(&org, "alice", MeshConfig { confirm: true, ..config() }).await;
    let s = Stranger::start(Keypair::generate_ed25519());
    s.dial(alice.peer_id(), &addrs[0]).await.expect("connected");
    let _hello = s.send(alice.peer_id(), hello(&org, "mallory", &s.peer)).await;
    let confirm = confirm_asked(&mut events, s.peer).await;

    // Each is well within a frame (1 MiB); two are over a peer's share.
    let big = || deliver("mallory", "x".repeat(600 * 1024));
    let (pending, refused) =
        send_and_count_refusals(&s, alice.peer_id(), vec![big(), big(), big()], 2, Duration::from_secs(3)).await;
    assert_eq!(refused, 2, "only one large request is kept");
    let _ = confirm.send(true);
    answer_everything(events);
    for rx in pending {
        assert!(matches!(answer(rx).await, Ok(PeerResponse::Ok)));
    }
}

#[tokio::test]
async fn requests_kept_from_all_peers_together_are_capped() {
    init();
    let org = OrgSigningKey::generate();
    let budget = skein_node::mesh::HeldBudget { per_peer: 2, total: 3, ..Default::default() };
    let (alice, mut events, addrs) = node(&org, "alice", MeshConfig { confirm: true, held: budget, ..config() }).await;
    let mut strangers = Vec::new();
    let mut confirms = Vec::new();
    for name in ["mallory", "trudy"] {
        let s = Stranger::start(Keypair::generate_ed25519());
        s.dial(alice.peer_id(), &addrs[0]).await.expect("connected");
        let _hello = s.send(alice.peer_id(), hello(&org, name, &s.peer)).await;
        confirms.push(confirm_asked(&mut events, s.peer).await);
        strangers.push((s, name));
    }
    let mut pending = Vec::new();
    let mut refused = 0;
    for (s, name) in &strangers {
        let reqs = vec![deliver(name, "one".into()), deliver(name, "two".into())];
        let (rest, r) = send_and_count_refusals(s, alice.peer_id(), reqs, 0, Duration::ZERO).await;
        pending.extend(rest);
        refused += r;
    }
    // Four sent, three kept: one is refused at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while refused < 1 && tokio::time::Instant::now() < deadline {
        let mut still = Vec::new();
        for mut rx in pending {
            match rx.try_recv() {
                Ok(r) => {
                    assert!(not_authenticated(&r), "{r:?}");
                    refused += 1;
                }
                Err(_) => still.push(rx),
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((refused, pending.len()), (1, 3));
    for c in confirms {
        let _ = c.send(true);
    }
    answer_everything(events);
    for rx in pending {
        assert!(matches!(answer(rx).await, Ok(PeerResponse::Ok)));
    }
}

#[tokio::test]
async fn a_peer_that_lost_our_hello_asks_for_it_and_the_request_goes_through() {
    init();
    let org = OrgSigningKey::generate();
    let (alice, events, _) = node(&org, "alice", config()).await;
    answer_everything(events);
    // Bob (a scripted peer) lost alice's hello, as when a relayed connection
    // closes before the direct one replacing it is reported, while alice
    // still has bob verified: he refuses her request until she says hello
    // again.
    let mut bob = Stranger::start(Keypair::generate_ed25519());
    let (bob_peer, bob_addr) = (bob.peer, bob.listen().await);
    let PeerRequest::Hello(bob_hello) = hello(&org, "bob", &bob_peer) else { unreachable!() };
    let script = tokio::spawn(async move {
        let mut hellos = 0;
        while let Some((req, reply)) = bob.inbound.recv().await {
            match req {
                PeerRequest::Hello(_) => {
                    hellos += 1;
                    let _ = reply.send(PeerResponse::Hello(bob_hello.clone()));
                }
                // The first hello is the one that was lost.
                PeerRequest::Deliver(_) if hellos < 2 => {
                    let why = "present a device certificate first";
                    let _ = reply
                        .send(PeerResponse::Refused(skein_proto::ErrorBody::new(ErrorCode::NotAuthenticated, why)));
                }
                PeerRequest::Deliver(m) => {
                    let _ = reply.send(PeerResponse::Stored { id: m.id });
                    return hellos;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        hellos
    });
    let s = alice.connect(bob_peer, vec![bob_addr]).await.expect("alice reaches bob");
    assert_eq!(s.user, "bob");
    let (resp, _) = alice.request(bob_peer, deliver("alice", "hello bob".into())).await.expect("request");
    assert!(matches!(resp, PeerResponse::Stored { .. }), "{resp:?}");
    let hellos = tokio::time::timeout(Duration::from_secs(10), script).await.expect("script ends").expect("script");
    assert_eq!(hellos, 2, "alice said hello again");
}

#[tokio::test]
async fn connections_from_one_peer_are_capped() {
    init();
    let org = OrgSigningKey::generate();
    let (alice, events, addrs) = node(&org, "alice", config()).await;
    answer_everything(events);
    let s = Stranger::start(Keypair::generate_ed25519());
    let dials = 12;
    for _ in 0..dials {
        let _ = s.dial(alice.peer_id(), &addrs[0]).await;
    }
    let cap = skein_node::mesh::ConnectionCaps::default().per_peer as usize;
    let c = wait_for(Duration::from_secs(10), "connections beyond the cap to close", || {
        let c = s.conns();
        async move { (c.resolved == dials && c.open <= cap).then_some(c) }
    })
    .await;
    assert_eq!(c.open, cap);
}

#[tokio::test]
async fn incoming_connections_are_capped_in_all() {
    init();
    let org = OrgSigningKey::generate();
    let caps = skein_node::mesh::ConnectionCaps { incoming: 3, ..Default::default() };
    let (alice, events, addrs) = node(&org, "alice", MeshConfig { connections: caps, ..config() }).await;
    answer_everything(events);
    let strangers: Vec<Stranger> = (0..5).map(|_| Stranger::start(Keypair::generate_ed25519())).collect();
    for s in &strangers {
        let _ = s.dial(alice.peer_id(), &addrs[0]).await;
    }
    let open = wait_for(Duration::from_secs(10), "connections beyond the cap to close", || {
        let counts: Vec<Conns> = strangers.iter().map(Stranger::conns).collect();
        async move {
            let open: usize = counts.iter().map(|c| c.open).sum();
            (counts.iter().all(|c| c.resolved == 1) && open <= 3).then_some(open)
        }
    })
    .await;
    assert_eq!(open, 3);
}

#[tokio::test]
async fn a_connection_whose_peer_does_not_say_hello_in_time_is_closed() {
    init();
    let org = OrgSigningKey::generate();
    let config = MeshConfig { hello_deadline: Duration::from_secs(2), ..config() };
    let (alice, events, addrs) = node(&org, "alice", config.clone()).await;
    answer_everything(events);
    let s = Stranger::start(Keypair::generate_ed25519());
    s.dial(alice.peer_id(), &addrs[0]).await.expect("connected");
    // A verified peer on the same node stays connected.
    let (bob, bob_events, _) = node(&org, "bob", config).await;
    answer_everything(bob_events);
    bob.connect(alice.peer_id(), addrs.clone()).await.expect("bob is verified");
    wait_for(Duration::from_secs(10), "the stranger's connection to close", || {
        let c = s.conns();
        async move { (c.open == 0).then_some(()) }
    })
    .await;
    assert!(bob.peers().await.iter().any(|p| p.peer == alice.peer_id()), "bob is still connected");
}

#[tokio::test]
async fn raw_streams_are_taken_only_from_peers_that_passed_the_hello() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    init();
    let org = OrgSigningKey::generate();
    let (alice, mut alice_events, addrs) = node(&org, "alice", MeshConfig { confirm: true, ..config() }).await;
    let (bob, bob_events, _) = node(&org, "bob", config()).await;
    answer_everything(bob_events);
    let protocol = StreamProtocol::new("/skein/test-stream/1");
    let mut accepted = alice.streams().accept(protocol.clone()).expect("accept");
    let (taken_tx, mut incoming) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(s) = accepted.next().await {
            let _ = taken_tx.send(s).await;
        }
    });

    // Bob is connected and has said hello, but alice's owner has not yet
    // accepted him.
    let connect = tokio::spawn({
        let (bob, alice_peer) = (bob.clone(), alice.peer_id());
        async move { bob.connect(alice_peer, addrs).await }
    });
    let confirm = confirm_asked(&mut alice_events, bob.peer_id()).await;
    let mut early = bob.streams().open_stream(alice.peer_id(), protocol.clone()).await.expect("stream opened");
    let _ = early.write_all(b"let me in").await;
    let _ = early.flush().await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), early.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "the stream ends at once: {read:?}");
    assert!(incoming.try_recv().is_err(), "a stream from a peer that had not passed the hello was taken");

    // Accepted, bob's streams are taken.
    let _ = confirm.send(true);
    answer_everything(alice_events);
    connect.await.expect("task").expect("bob is verified");
    let mut s = bob.streams().open_stream(alice.peer_id(), protocol).await.expect("stream opened");
    s.write_all(b"hello").await.expect("write");
    s.close().await.expect("close");
    let (peer, mut taken) =
        tokio::time::timeout(Duration::from_secs(10), incoming.recv()).await.expect("in time").expect("a stream");
    assert_eq!(peer, bob.peer_id());
    let mut got = Vec::new();
    taken.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"hello");
}

/// Waits a moment for the node to hand anything to its owner; fails if a
/// request does.
async fn no_request_reaches_the_owner(events: &mut mpsc::Receiver<MeshEvent>) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let MeshEvent::Request { req, .. } = ev {
            panic!("a request from a peer without a valid certificate reached the owner: {req:?}");
        }
    }
}

#[tokio::test]
async fn a_call_from_a_peer_without_a_valid_certificate_never_rings() {
    use skein_proto::call::{CallSignal, Invite, Media};
    init();
    let org = OrgSigningKey::generate();
    let (alice, mut events, addrs) = node(&org, "alice", config()).await;
    let invite = || {
        let call = skein_proto::bytes::CallId(rand::random());
        PeerRequest::Call(CallSignal::Invite(Invite { call, media: Media::Video, group: None, sent_at_ms: 1 }))
    };
    // No hello at all: refused.
    let s = Stranger::start(Keypair::generate_ed25519());
    s.dial(alice.peer_id(), &addrs[0]).await.expect("connected");
    let r = answer(s.send(alice.peer_id(), invite()).await).await;
    assert!(not_authenticated(&r), "{r:?}");
    no_request_reaches_the_owner(&mut events).await;
    // A certificate another organisation signed: the hello is refused, and
    // so is the invite after it.
    let key = Keypair::generate_ed25519();
    let outsider = Stranger::start(key.clone());
    outsider.dial(alice.peer_id(), &addrs[0]).await.expect("connected");
    let other_org = OrgSigningKey::generate();
    let r = answer(outsider.send(alice.peer_id(), hello(&other_org, "mallory", &outsider.peer)).await).await;
    assert!(matches!(r, Ok(PeerResponse::Refused(_)) | Err(_)), "another organisation's certificate: {r:?}");
    let r = answer(outsider.send(alice.peer_id(), invite()).await).await;
    assert!(!matches!(r, Ok(PeerResponse::Ok)), "the invite was taken: {r:?}");
    no_request_reaches_the_owner(&mut events).await;
}
