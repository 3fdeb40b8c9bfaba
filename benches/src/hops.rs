//! msg-hops: where a message's time goes, rung by rung.
//!
//! Each rung adds one hop to the rung before it, all measured in the same
//! run with 200-byte messages on loopback:
//!
//! 1. raw quinn: an echo (one at a time) and framed messages (64 in flight);
//! 2. the peer network: two meshes (libp2p over QUIC, TLS with the device
//!    certificates, the hello) with a request on the message lane answered
//!    at once by the receiver's handler;
//! 3. storing: the same, the handler storing each message in a real
//!    history (SQLite, the node's settings, its batched writer) before it
//!    answers;
//! 4. the receiving node: the same requests to bob's daemon (its inbox:
//!    checks, storing, the events it prints);
//! 5. the sending node: the msg-rtt and msg-rate rows (the sender's node
//!    storing too, lookups, delivery bookkeeping, and for msg-rate the
//!    daemon's control socket).
//!
//! The difference between two rungs is what that hop costs.

use crate::cluster::{Cluster, Node};
use crate::rawquic;
use crate::report::{Row, Samples, us};
use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use skein_node::history::History;
use skein_node::mesh::lane::Handler;
use skein_node::mesh::{Mesh, MeshConfig, MeshEvent};
use skein_node::profile::Profile;
use skein_proto::bytes::{DeviceId, MailId, PublicKey};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody, PeerRequest, PeerResponse};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MSG: usize = 200;
/// Messages in flight for the rates, as msg-rate keeps.
const IN_FLIGHT: usize = 64;

/// One rung: one at a time (p50, p99) and pipelined (messages per second).
#[derive(Debug, Clone)]
pub struct Rung {
    /// What it adds.
    pub name: &'static str,
    /// One at a time.
    pub rtt: Samples,
    /// 64 in flight.
    pub rate: f64,
}

/// A mesh of `user`'s freshly logged-in profile.
async fn mesh(cluster: &Cluster, user: &str) -> Result<(Mesh, tokio::sync::mpsc::Receiver<MeshEvent>, Profile)> {
    cluster.user(user).await?;
    let profile = Profile::new(cluster.login(user).await?);
    let saved = profile.session()?;
    let cert = saved.cert().context("the session holds no device certificate")?;
    let org_key = PublicKey::from_hex(&saved.org_signing_key).context("the session's organisation key")?;
    let config = MeshConfig { listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse()?], ..MeshConfig::default() };
    let (mesh, events) = Mesh::start(profile.device()?.keypair, cert, org_key, config)?;
    Ok((mesh, events, profile))
}

/// Waits for the mesh's listening addresses.
async fn addresses(events: &mut tokio::sync::mpsc::Receiver<MeshEvent>) -> Result<Vec<libp2p::Multiaddr>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.context("no addresses in 10 s")? {
            Some(MeshEvent::Addresses { listen, .. }) if !listen.is_empty() => {
                return Ok(listen.iter().filter_map(|a| a.parse().ok()).collect());
            }
            Some(_) => continue,
            None => return Err(anyhow!("the mesh stopped")),
        }
    }
}

/// A 200-byte message from hop-a to `to` with a fresh id.
fn message(n: u64, run: u64, to: &str, device: DeviceId) -> ChatMessage {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&run.to_be_bytes());
    id[8..].copy_from_slice(&n.to_be_bytes());
    ChatMessage {
        id: MailId(id),
        from_user: "hop-a".into(),
        from_device: device,
        to_user: to.into(),
        conversation: Conversation::Direct,
        sent_at_ms: 1,
        body: MessageBody::Text(crate::scenarios::text(n as usize)),
    }
}

/// Answers at once, or, once `history` holds one, stores each message in
/// it before answering, as the inbox does. A lane takes its handler when
/// it opens, so one handler serves both rungs.
fn handler(history: Arc<std::sync::OnceLock<History>>) -> Handler {
    Arc::new(move |_from, path, req| {
        let history = history.clone();
        Box::pin(async move {
            let m = match req {
                PeerRequest::Deliver(m) => m,
                _ => return PeerResponse::Ok,
            };
            let Some(history) = history.get() else { return PeerResponse::Stored { id: m.id } };
            match history.insert_incoming("hop-b", &m, path.as_str()).await {
                Ok(_) => PeerResponse::Stored { id: m.id },
                Err(e) => PeerResponse::Refused(skein_proto::ErrorBody::new(
                    skein_proto::ErrorCode::Unavailable,
                    e.to_string(),
                )),
            }
        })
    })
}

/// Who the requests go to, and how they are addressed.
struct To<'a> {
    peer: libp2p::PeerId,
    user: &'a str,
    /// The sending device (hop-a's).
    from: DeviceId,
}

/// Times `rtt_count` requests one at a time and `rate_count` with 64 in
/// flight, from `a` to `to`.
async fn measure(
    a: &Mesh,
    to: &To<'_>,
    rtt_count: usize,
    rate_count: usize,
    run: &AtomicU64,
) -> Result<(Samples, f64)> {
    let peer = to.peer;
    let mut rtt = Samples::default();
    for i in 0..rtt_count + rtt_count / 10 {
        let m = message(i as u64, run.fetch_add(1, Ordering::Relaxed), to.user, to.from);
        let t0 = Instant::now();
        let (resp, _) = a.request(peer, PeerRequest::Deliver(m)).await?;
        if !matches!(resp, PeerResponse::Stored { .. }) {
            return Err(anyhow!("a request was answered {resp:?}"));
        }
        if i >= rtt_count / 10 {
            rtt.push(t0.elapsed());
        }
    }
    let t0 = Instant::now();
    let answered: Vec<_> = futures::stream::iter(0..rate_count)
        .map(|i| {
            let m = message(i as u64, run.fetch_add(1, Ordering::Relaxed), to.user, to.from);
            async move { a.request(peer, PeerRequest::Deliver(m)).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let took = t0.elapsed();
    for r in answered {
        let (resp, _) = r?;
        if !matches!(resp, PeerResponse::Stored { .. }) {
            return Err(anyhow!("a request was answered {resp:?}"));
        }
    }
    Ok((rtt, rate_count as f64 / took.as_secs_f64()))
}

/// Measures rungs 1 to 4 (see the module's documentation); `bob` is the
/// receiving daemon.
pub async fn rungs(cluster: &Cluster, bob: &Node, rtt_count: usize, rate_count: usize) -> Result<Vec<Rung>> {
    let raw_rtt = rawquic::echo_rtt(rtt_count, MSG).await?;
    let raw_rate = rawquic::framed_rate(rate_count, MSG).await?;
    let (a, _a_events, a_profile) = mesh(cluster, "hop-a").await?;
    let (b, mut b_events, b_profile) = mesh(cluster, "hop-b").await?;
    let b_addrs = addresses(&mut b_events).await?;
    a.connect(b.peer_id(), b_addrs).await?;
    let run = AtomicU64::new(1);
    let from = a_profile.device()?.device_id;
    let to_b = To { peer: b.peer_id(), user: "hop-b", from };

    let storing = Arc::new(std::sync::OnceLock::new());
    b.set_handler(handler(storing.clone()));
    let (mesh_rtt, mesh_rate) = measure(&a, &to_b, rtt_count, rate_count, &run).await?;

    let _ = storing.set(History::open(&b_profile.dir().join("hops-history.db")).await?);
    let (store_rtt, store_rate) = measure(&a, &to_b, rtt_count, rate_count, &run).await?;

    let info = bob.call(&skein_node::control::ControlRequest::Info).await?;
    let bob_peer: libp2p::PeerId = info["peer_id"].as_str().context("bob's peer id")?.parse()?;
    let bob_addrs = info["addresses"]["listen"]
        .as_array()
        .context("bob's addresses")?
        .iter()
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect();
    a.connect(bob_peer, bob_addrs).await?;
    let to_bob = To { peer: bob_peer, user: "bob", from };
    let (node_rtt, node_rate) = measure(&a, &to_bob, rtt_count, rate_count, &run).await?;
    a.shutdown().await;
    b.shutdown().await;
    Ok(vec![
        Rung { name: "raw quinn", rtt: raw_rtt, rate: raw_rate },
        Rung { name: "+ the peer network (libp2p, lane, handler answering at once)", rtt: mesh_rtt, rate: mesh_rate },
        Rung { name: "+ storing on the receiver (history, batched writer)", rtt: store_rtt, rate: store_rate },
        Rung { name: "+ the receiving node (bob's daemon: inbox, events)", rtt: node_rtt, rate: node_rate },
    ])
}

/// The msg-hops row: rungs 1 to 4 and the whole node (`node_rtt` from
/// msg-rtt, `node_rate` from msg-rate, where they ran).
pub fn row(rungs: &[Rung], node_rtt: Option<&Samples>, node_rate: Option<f64>) -> Row {
    let mut parts = Vec::new();
    let mut prev: Option<(Duration, f64)> = None;
    for r in rungs {
        let p50 = r.rtt.percentile(50.0);
        let step = match prev {
            Some((d, _)) => format!(" (+{})", us(p50.saturating_sub(d))),
            None => String::new(),
        };
        parts.push(format!(
            "{}: p50 {}{step}, p99 {}, {:.0} msg/s",
            r.name,
            us(p50),
            us(r.rtt.percentile(99.0)),
            r.rate
        ));
        prev = Some((p50, r.rate));
    }
    let node = match (node_rtt, node_rate) {
        (Some(s), rate) => {
            let step =
                prev.map(|(d, _)| format!(" (+{})", us(s.percentile(50.0).saturating_sub(d)))).unwrap_or_default();
            let rate = rate.map(|r| format!(", {r:.0} msg/s through the daemon (msg-rate)")).unwrap_or_default();
            format!(
                "+ the sending node (msg-rtt): p50 {}{step}, p99 {}{rate}",
                us(s.percentile(50.0)),
                us(s.percentile(99.0))
            )
        }
        (None, Some(r)) => format!("+ the sending node: {r:.0} msg/s through the daemon (msg-rate)"),
        (None, None) => "the sending node: not run (msg-rtt and msg-rate were left out)".into(),
    };
    parts.push(node);
    Row {
        scenario: "msg-hops".into(),
        skein: "see the rungs".into(),
        baseline: "raw quinn (rung 1)".into(),
        ratio: "–".into(),
        target: "– (explains msg-rtt and msg-rate)".into(),
        met: None,
        measured: format!(
            "Each rung adds one hop to the one before, one at a time and 64 in flight: {}.",
            parts.join("; ")
        ),
    }
}
