//! The tracker's relay (libp2p circuit relay v2 over QUIC): logged-in
//! devices reserve and relay, strangers are refused, the relayed bytes are
//! counted per peer and in total, and revoked or disabled devices lose
//! access at once.
//!
//! Nodes here are minimal libp2p swarms ([`skein_tests::relay_peer`])
//! keyed with the device keys of real logged-in profiles, so the tests
//! exercise the tracker's relay alone.

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use skein_node::profile::Profile;
use skein_node::session::{self, Connected};
use skein_proto::control::{Request, Response};
use skein_tests::relay_peer::{DEADLINE, Peer};
use skein_tests::{TestTracker, init, wait_for};
use std::path::Path;

const PW: &str = "correct horse battery";
const MIB: u64 = 1024 * 1024;

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
    // The refusal closes the connection; the stranger may see it a moment later.
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while stranger.with(move |s| s.is_connected(&relay_peer)).await {
        assert!(std::time::Instant::now() < gone, "the relay keeps no connection to a stranger");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
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
