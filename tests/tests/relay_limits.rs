//! The relay limits in `tracker.toml` hold: the real `skein-tracker` binary
//! runs with `relay_max_circuits_per_peer`, `relay_max_circuit_bytes` or
//! `relay_max_circuit_secs` set low, its users log in over the control
//! plane, and minimal libp2p swarms keyed with their device keys
//! ([`skein_tests::relay_peer`]) open circuits through its relay. A circuit beyond the
//! per-device count is refused, a circuit that carries more than its bytes
//! is cut, and one that outlives its time is closed, while circuits within
//! the limits work.

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use skein_node::profile::Profile;
use skein_proto::control::{Request, Response};
use skein_tests::relay_peer::{DEADLINE, Peer};
use skein_tests::{Proc, bin, init};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
const KIB: usize = 1024;

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
    alice.reserve(&s.relay).await.expect("a reservation");
    let mut bob = Peer::spawn(s.keys[1].clone());

    let first = bob.dial_via(&s.relay, alice.id).await.expect("the first circuit");
    let refused = bob.dial_via(&s.relay, alice.id).await.expect_err("a second circuit must be refused");
    eprintln!("refused: {refused}");
    assert!(refused.contains("resource limit exceeded"), "refused for the limit, not something else: {refused}");

    // The limit counts open circuits: once one closes, another may open.
    bob.with(move |sw| sw.close_connection(first)).await;
    bob.closed(first, DEADLINE).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        match bob.dial_via(&s.relay, alice.id).await {
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
    dave.reserve(&s.relay).await.expect("a reservation");
    dave.serve_files();
    let mut carol = Peer::spawn(s.keys[0].clone());

    // Within the limit the circuit carries data.
    let conn = carol.dial_via(&s.relay, dave.id).await.expect("a circuit");
    assert_eq!(carol.try_send_file(dave.id, 64 * KIB).await, Ok(64 * KIB as u64));
    // Past it, the relay cuts the circuit: not all of it arrives (the
    // stream fails, or ends short) and the connection over it closes.
    let cut = carol.try_send_file(dave.id, 4 * limit).await;
    assert!(cut != Ok(4 * limit as u64), "{} bytes crossed a circuit limited to {limit}", 4 * limit);
    carol.closed(conn, DEADLINE).await;

    // The limit is per circuit: a new one carries data again.
    carol.dial_via(&s.relay, dave.id).await.expect("a new circuit");
    assert_eq!(carol.try_send_file(dave.id, 64 * KIB).await, Ok(64 * KIB as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_is_closed_when_its_time_is_up() {
    let s = setup("relay_max_circuit_secs = 2", &["erin", "frank"]).await;
    let mut erin = Peer::spawn(s.keys[0].clone());
    erin.reserve(&s.relay).await.expect("a reservation");
    erin.serve_files();
    let mut frank = Peer::spawn(s.keys[1].clone());
    let conn = frank.dial_via(&s.relay, erin.id).await.expect("a circuit");
    let opened = Instant::now();
    assert_eq!(frank.try_send_file(erin.id, 16 * KIB).await, Ok(16 * KIB as u64));
    // Ping keeps the connection busy and the peers' idle timeouts are 30 s
    // and more, so a close this early is the relay's limit.
    frank.closed(conn, Duration::from_secs(15)).await;
    let lived = opened.elapsed();
    eprintln!("the circuit lived {lived:?}");
    assert!(lived >= Duration::from_millis(1500), "closed before its time: {lived:?}");
    // The relay itself still serves: a new circuit opens.
    frank.dial_via(&s.relay, erin.id).await.expect("a new circuit");
}
