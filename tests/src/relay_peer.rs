//! A minimal libp2p node for tests of the relay alone: relay client,
//! identify, ping and libp2p-stream, keyed with a real device's key and
//! driven by its own task. DCUtR is left out, so every peer connection
//! stays relayed.

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, identify, noise, ping, relay, yamux};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The test protocol [`Peer::send_file`] speaks.
pub const FILE: StreamProtocol = StreamProtocol::new("/skein-test/file/1");
/// How long any wait of a [`Peer`] lasts before it panics.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The node's behaviours.
#[allow(missing_docs, missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub struct Node {
    relay_client: relay::client::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
}

/// What the swarm reports.
pub type Event = SwarmEvent<NodeEvent>;
type Cmd = Box<dyn FnOnce(&mut Swarm<Node>) + Send>;

/// A node's swarm, driven by its own task; the test sends it closures and
/// reads its events.
#[allow(missing_debug_implementations)]
pub struct Peer {
    /// Its PeerId.
    pub id: PeerId,
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
    pub fn spawn(key: Keypair) -> Peer {
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
    pub async fn with<R: Send + 'static>(&self, f: impl FnOnce(&mut Swarm<Node>) -> R + Send + 'static) -> R {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
            .expect("swarm task alive");
        rx.await.expect("swarm task alive")
    }

    /// Waits until `pick` returns `Some` for an event, or panics naming `what`.
    pub async fn wait<T>(&mut self, what: &str, pick: impl FnMut(&Event) -> Option<T>) -> T {
        self.wait_within(what, DEADLINE, pick).await
    }

    /// [`Peer::wait`], for at most `within`.
    pub async fn wait_within<T>(
        &mut self,
        what: &str,
        within: Duration,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
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

    /// Reserves a slot on `relay` (`.../p2p/RELAY`); returns the listener
    /// and the relayed listen address, or the refusal.
    pub async fn reserve(
        &mut self,
        relay: &Multiaddr,
    ) -> Result<(libp2p::core::transport::ListenerId, Multiaddr), String> {
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

    /// Dials `target` only through `relay` on a new circuit; its connection
    /// once connected, Err(why) if the dial fails.
    pub async fn dial_via(&mut self, relay: &Multiaddr, target: PeerId) -> Result<ConnectionId, String> {
        let via = relay.clone().with(Protocol::P2pCircuit).with(Protocol::P2p(target));
        let opts = DialOpts::peer_id(target).addresses(vec![via]).condition(PeerCondition::Always).build();
        let conn = opts.connection_id();
        self.with(move |s| s.dial(opts)).await.map_err(|e| e.to_string())?;
        self.wait("the relayed dial to end", |e| match e {
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

    /// Waits until the connection `conn` closes, for at most `within`;
    /// returns how long that took.
    pub async fn closed(&mut self, conn: ConnectionId, within: Duration) -> Duration {
        let start = std::time::Instant::now();
        self.wait_within("the connection to close", within, |e| match e {
            SwarmEvent::ConnectionClosed { connection_id, .. } if *connection_id == conn => Some(()),
            _ => None,
        })
        .await;
        start.elapsed()
    }

    /// Answers every FILE stream with the number of bytes read.
    pub fn serve_files(&self) {
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
    pub async fn send_file(&self, peer: PeerId, len: usize) -> u64 {
        self.try_send_file(peer, len).await.expect("the transfer")
    }

    /// [`Peer::send_file`], saying why it failed (a circuit cut, say).
    pub async fn try_send_file(&self, peer: PeerId, len: usize) -> Result<u64, String> {
        let mut control = self.control.clone();
        let transfer = async move {
            let mut s = control.open_stream(peer, FILE).await.map_err(|e| format!("open: {e}"))?;
            s.write_all(&vec![0x5a; len]).await.map_err(|e| format!("write: {e}"))?;
            s.close().await.map_err(|e| format!("close: {e}"))?;
            let mut reply = [0u8; 8];
            s.read_exact(&mut reply).await.map_err(|e| format!("reply: {e}"))?;
            Ok(u64::from_be_bytes(reply))
        };
        tokio::time::timeout(DEADLINE, transfer).await.unwrap_or_else(|_| Err("timed out".into()))
    }
}
