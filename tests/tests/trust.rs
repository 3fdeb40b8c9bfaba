//! Trust that ends when it should, end to end: parallel password guesses
//! cost a bounded number of hashes; a password reset ends the old device's
//! peer connections at once and keeps it out; a password change is
//! throttled and ends the user's other sessions; a user's devices are
//! capped.

use skein_node::profile::Profile;
use skein_node::session::{self, SessionError};
use skein_proto::ErrorCode;
use skein_proto::control::{Event, Request, Response};
use skein_proto::peer::{MessageBody, PeerResponse};
use skein_tests::{RawDevice, TestTracker, daemon, init, login_profile, tracker_with_users, wait_for};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
const DEADLINE: Duration = Duration::from_secs(30);

/// `n` connections to the tracker, each past its hello and ready to log in.
async fn connections(t: &TestTracker, n: usize) -> Vec<skein_node::tracker_client::TrackerClient> {
    use skein_node::tracker_client::{TrackerClient, TrackerTarget};
    let target = TrackerTarget::new(t.address(), t.ca_path());
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, events) = TrackerClient::connect(&target, "test").await.expect("connect");
        drop(events);
        clients.push(client);
    }
    clients
}

/// A login for `user` from a made-up device, proving its PeerId on the
/// connection whose welcome carried `nonce`.
fn login_request(user: &str, password: &str, nonce: &[u8; 32]) -> Request {
    use skein_proto::bytes::{DeviceId, PublicKey};
    use skein_proto::control::{DeviceHello, Login};
    let key = libp2p::identity::Keypair::generate_ed25519();
    let mut device = DeviceHello {
        device_id: DeviceId(rand::random()),
        name: "test".into(),
        peer_id: key.public().to_peer_id().to_bytes(),
        x25519: PublicKey(rand::random()),
        proof: Vec::new(),
    };
    device.proof = key.sign(&device.proof_bytes(nonce)).expect("sign");
    Request::Login(Login { user: user.into(), password: password.into(), device })
}

/// Sends a login at once on every connection, `user(i)` with `password`;
/// returns each answer's code.
async fn all_at_once(
    clients: &[skein_node::tracker_client::TrackerClient],
    user: impl Fn(usize) -> String,
    password: &str,
) -> Vec<ErrorCode> {
    let logins: Vec<Request> =
        clients.iter().enumerate().map(|(i, c)| login_request(&user(i), password, &c.welcome().nonce)).collect();
    let tries = clients.iter().zip(logins).map(|(c, login)| c.request(login));
    futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(r) => panic!("a wrong password logged in: {r:?}"),
            Err(e) => e.body().unwrap_or_else(|| panic!("no answer from the tracker: {e}")).code,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_password_logins_cost_a_bounded_number_of_hashes() {
    init();
    let t = TestTracker::start_with(|mut c| {
        c.max_strangers_per_network = 1000;
        c.login_deadline = Duration::from_secs(120);
        c.idle_timeout(Duration::from_secs(120))
    })
    .await;
    t.add_user("alice", PW).await;
    // The throttle lets one more guess through each time a lockout (1 s,
    // then 2, 4, ...) runs out while the burst is still arriving.
    let allowed = |free: u64, since: Instant| free + 1 + (since.elapsed().as_secs_f64() + 1.0).log2().floor() as u64;
    let state = t.running().state().clone();
    let free = t.config.account_throttle.free_failures as u64;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;

    // 200 connections ready, then 200 wrong passwords for one account at once.
    let clients = connections(&t, 200).await;
    let start = Instant::now();
    let codes = all_at_once(&clients, |_| "alice".into(), "not the password").await;
    let runs = state.passwords.runs();
    let most = allowed(free, start);
    let wrong = codes.iter().filter(|c| **c == ErrorCode::BadCredentials).count() as u64;
    let throttled = codes.iter().filter(|c| **c == ErrorCode::Throttled).count() as u64;
    assert!(runs <= most, "{runs} argon2 runs for 200 parallel guesses; at most {most} allowed");
    assert_eq!(wrong, runs, "every hash checked answered a wrong password");
    assert_eq!(wrong + throttled, 200, "every attempt was refused or slowed: {codes:?}");
    assert!(state.passwords.peak() <= cores, "at most one hash per core at a time, saw {}", state.passwords.peak());

    // Guessing across many accounts from one network is bounded too.
    let clients = connections(&t, 200).await;
    let (before, start) = (state.passwords.runs(), Instant::now());
    let codes = all_at_once(&clients, |i| format!("user{i}"), "guess").await;
    let network_free = t.config.address_throttle.free_failures as u64;
    let runs = state.passwords.runs() - before;
    let most = allowed(network_free, start);
    assert!(runs <= most, "{runs} hashes for 200 guesses from one address; at most {most} allowed");
    assert!(codes.iter().all(|c| matches!(c, ErrorCode::BadCredentials | ErrorCode::Throttled)), "{codes:?}");
    assert!(state.passwords.peak() <= cores);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_password_reset_the_old_device_is_dropped_by_its_peers_and_kept_out() {
    let t = tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bob_dir = login_profile(&t, dir.path(), "bob", "bob", PW).await;
    let mut bob = daemon(&bob_dir, &[]);
    bob.wait_line(DEADLINE, "bob's daemon connected", |l| l.contains(r#""type":"connected""#)).await;
    let alice = RawDevice::login(&t, &dir.path().join("alice"), "alice", PW).await;
    let (_, answers) = alice.deliver("bob", MessageBody::Text("hi".into())).await;
    assert!(matches!(answers[..], [PeerResponse::Stored { .. }]), "{answers:?}");
    let Response::Peer(info) =
        alice.session.client.request(Request::LookupPeer { user: "bob".into() }).await.expect("lookup")
    else {
        panic!("expected bob's devices")
    };
    let device = &info.online[0];
    let bob_peer = libp2p::PeerId::from_bytes(&device.cert.body.peer_id).expect("peer id");
    let bob_addrs: Vec<libp2p::Multiaddr> = device.addresses.listen.iter().filter_map(|a| a.parse().ok()).collect();
    assert!(alice.mesh.peers().await.iter().any(|p| p.peer == bob_peer));

    // An administrator resets alice's password, from outside the tracker.
    let store = t.store().await;
    skein_tracker::admin::set_password(&store, "alice", "a new password".into(), &t.passwords()).await.expect("reset");
    store.close().await;
    let reset = Instant::now();
    bob.wait_line(DEADLINE, "bob told alice's device is revoked", |l| {
        l.contains(r#""type":"peer_revoked""#) && l.contains(r#""user":"alice""#)
    })
    .await;
    let mesh = alice.mesh.clone();
    wait_for(Duration::from_secs(2), "bob to close the connection to alice's old device", || {
        let mesh = mesh.clone();
        async move { (!mesh.peers().await.iter().any(|p| p.peer == bob_peer)).then_some(()) }
    })
    .await;
    println!("the live connection closed {:?} after the reset", reset.elapsed());

    // The old device cannot come back: bob asks the tracker, which says no.
    let again = alice.mesh.connect(bob_peer, bob_addrs).await;
    assert!(again.is_err(), "alice's old device must be refused, got {again:?}");
    let alice_peer = alice.mesh.peer_id().to_string();
    bob.wait_line(DEADLINE, "bob refusing alice's old device", |l| {
        l.contains(r#""type":"peer_refused""#) && l.contains(&alice_peer) && l.contains("revoked")
    })
    .await;
}

fn code(e: &SessionError) -> Option<ErrorCode> {
    e.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_ends_the_other_sessions_and_guesses_are_throttled() {
    let t = tracker_with_users(&["alice"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let here = skein_tests::login(&t, &dir.path().join("laptop"), "alice", PW).await;
    let mut there = skein_tests::login(&t, &dir.path().join("phone"), "alice", PW).await;

    // Wrong current passwords are throttled like logins, even from a
    // network the account has logged in from.
    let mut answers = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let change = Request::ChangePassword { old: "a guess".into(), new: "whatever password".into() };
        match here.client.request(change).await {
            Err(e) => {
                let body = e.body().expect("an answer from the tracker");
                answers.push(body.code);
                retry_after = body.retry_after_ms;
            }
            Ok(r) => panic!("a wrong current password changed it: {r:?}"),
        }
    }
    let free = t.config.account_throttle.free_failures as usize;
    assert!(answers[..=free].iter().all(|c| *c == ErrorCode::BadCredentials), "{answers:?}");
    assert_eq!(answers[free + 1..], [ErrorCode::Throttled, ErrorCode::Throttled], "{answers:?}");
    // After the wait the tracker names, the right password works.
    tokio::time::sleep(Duration::from_millis(u64::from(retry_after.expect("a retry hint")))).await;
    let change = Request::ChangePassword { old: PW.into(), new: "the new password".into() };
    assert_eq!(here.client.request(change).await.expect("change"), Response::Ok);

    let ended = tokio::time::timeout(DEADLINE, async {
        loop {
            match there.events.recv().await {
                Some(Event::SessionEnded(body)) => return body,
                Some(_) => continue,
                None => panic!("the phone's connection closed without a reason"),
            }
        }
    })
    .await
    .expect("the phone's session ends");
    assert_eq!(ended.code, ErrorCode::SessionRevoked, "{ended:?}");
    // The laptop, which changed it, carries on.
    let pong = here.client.request(Request::Ping { nonce: 7 }).await.expect("still connected");
    assert!(matches!(pong, Response::Pong { nonce: 7, .. }), "{pong:?}");
    // The phone's token is dead; its old password too.
    let phone = Profile::new(dir.path().join("phone"));
    assert_eq!(code(&session::resume(&phone).await.expect_err("ended")), Some(ErrorCode::SessionRevoked));
    let old = session::login(&phone, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect_err("old password");
    assert_eq!(code(&old), Some(ErrorCode::BadCredentials));
    session::login(&phone, &t.address(), &t.ca_path(), "alice", "the new password".into())
        .await
        .expect("the new password works")
        .client
        .close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_has_at_most_the_configured_devices_signed_in() {
    init();
    let t = TestTracker::start_with(|mut c| {
        c.max_devices_per_user = 2;
        c
    })
    .await;
    t.add_user("alice", PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = skein_tests::login(&t, &dir.path().join("one"), "alice", PW).await;
    skein_tests::login(&t, &dir.path().join("two"), "alice", PW).await.client.close();
    let third = Profile::new(dir.path().join("three"));
    let e = session::login(&third, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect_err("over the cap");
    assert_eq!(code(&e), Some(ErrorCode::Conflict), "{e}");
    assert!(e.to_string().contains("2 devices") && e.to_string().contains("logout"), "{e}");
    // The same device again is no new device.
    skein_tests::login(&t, &dir.path().join("two"), "alice", PW).await.client.close();
    // Signing out on one makes room.
    assert_eq!(first.client.request(Request::Logout).await.expect("logout"), Response::Ok);
    session::login(&third, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect("room now").client.close();
}

/// The private keys of a tracker's data directory, as the bytes that would
/// give them away: the organisation seed, the relay's secret and the DER of
/// the CA and tracker keys.
fn key_material(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    use base64::Engine;
    let mut keys = Vec::new();
    let org = skein_certs::OrgSigningKey::load(&dir.join("org.key")).expect("org.key beside the CA key");
    keys.push(("the organisation signing key".to_owned(), org.to_bytes().to_vec()));
    let relay = std::fs::read(dir.join("relay.key")).expect("relay.key");
    keys.push(("the relay key".to_owned(), relay[relay.len() - 32..].to_vec()));
    for name in ["ca.key", "tracker.key"] {
        let pem = std::fs::read_to_string(dir.join(name)).expect(name);
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body).expect("PEM body");
        keys.push((name.to_owned(), der));
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_holds_no_key_material() {
    let t = tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Logins, devices, certificates and a resume: everything a tracker writes.
    for user in ["alice", "bob"] {
        let profile = Profile::new(dir.path().join(user));
        session::login(&profile, &t.address(), &t.ca_path(), user, PW.into()).await.expect("login").client.close();
        session::resume(&profile).await.expect("resume").client.close();
    }
    let data = t.config.data_dir.clone();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&data).expect("data directory") {
        let path = entry.expect("entry").path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("tracker.db")) {
            files.push((path.clone(), std::fs::read(&path).expect("database file")));
        }
    }
    assert!(!files.is_empty(), "the SQLite files are in {}", data.display());
    for (what, key) in key_material(&data) {
        assert!(key.len() >= 32, "{what} is too short to search for");
        for (path, bytes) in &files {
            assert!(!bytes.windows(key.len()).any(|w| w == key.as_slice()), "{} holds {what}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_must_prove_the_peer_id_it_logs_in_with() {
    let t = tracker_with_users(&["alice", "mallory"], PW).await;
    let clients = connections(&t, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Alice's real device, whose PeerId mallory would like to register.
    let alice = skein_tests::login(&t, &dir.path().join("alice"), "alice", PW).await;
    let alice_peer = alice.saved.cert().expect("cert").body.peer_id;
    let refused = |r: Result<Response, skein_node::tracker_client::ClientError>| {
        let e = r.expect_err("refused");
        let b = e.body().expect("an answer").clone();
        assert_eq!(b.code, ErrorCode::PermissionDenied, "{b:?}");
        assert!(b.message.contains("prove"), "{b:?}");
    };
    // Her PeerId with a proof by another key.
    let Request::Login(mut login) = login_request("mallory", PW, &clients[0].welcome().nonce) else { unreachable!() };
    login.device.peer_id = alice_peer.clone();
    refused(clients[0].request(Request::Login(login)).await);
    // A proof made for another connection's nonce.
    let stale = login_request("mallory", PW, &clients[1].welcome().nonce);
    refused(clients[2].request(stale).await);
    // No proof at all.
    let Request::Login(mut bare) = login_request("mallory", PW, &clients[2].welcome().nonce) else { unreachable!() };
    bare.device.proof.clear();
    refused(clients[2].request(Request::Login(bare)).await);
    // A proper one logs in.
    let good = login_request("mallory", PW, &clients[1].welcome().nonce);
    assert!(matches!(clients[1].request(good).await, Ok(Response::Session(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_administrators_one_time_password_must_be_changed_first() {
    init();
    let t = TestTracker::start().await;
    // As `skein-tracker run` leaves a new organisation.
    let store = t.store().await;
    let boss = store.user_by_name("admin").await.expect("store").expect("the initial administrator");
    store.set_must_change_password(boss.id, true).await.expect("mark");
    skein_tracker::admin::set_password(&store, "admin", "one-time password".into(), &t.passwords())
        .await
        .expect("a known password");
    store.set_must_change_password(boss.id, true).await.expect("mark again");
    store.close().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = skein_tests::login(&t, &dir.path().join("admin"), "admin", "one-time password").await;
    let Response::Policy(_) = admin.client.request(Request::Policy).await.expect("policy is harmless") else {
        panic!("expected the policy")
    };
    let e = admin.client.request(Request::Departments).await.expect_err("nothing else");
    let b = e.body().expect("an answer");
    assert_eq!(b.code, ErrorCode::PasswordChangeRequired, "{b:?}");
    assert!(b.message.contains("skein passwd"), "{b:?}");
    let change = Request::ChangePassword { old: "one-time password".into(), new: "the admin's own".into() };
    assert_eq!(admin.client.request(change).await.expect("change"), Response::Ok);
    assert!(matches!(admin.client.request(Request::Departments).await, Ok(Response::Departments(_))));
    let store = t.store().await;
    assert!(!store.user_by_name("admin").await.expect("store").expect("admin").must_change_password);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_must_log_in_in_time_and_each_network_holds_only_a_few() {
    use skein_node::tracker_client::{TrackerClient, TrackerTarget};
    init();
    let t = TestTracker::start_with(|mut c| {
        c.max_strangers_per_network = 3;
        c.login_deadline = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(30);
        c
    })
    .await;
    t.add_user("alice", PW).await;
    let target = TrackerTarget::new(t.address(), t.ca_path());
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(TrackerClient::connect(&target, "test").await.expect("a stranger within the share"));
    }
    let refused = TrackerClient::connect(&target, "test").await.map(|_| ()).expect_err("a fourth waits for a place");
    println!("the fourth stranger: {refused}");

    // One that does not log in in time is told so and dropped, which
    // frees its place.
    let (_late, mut events) = waiting.remove(0);
    let told = tokio::time::timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Some(Event::SessionEnded(body)) => return body,
                Some(_) => continue,
                None => panic!("closed without a reason"),
            }
        }
    })
    .await
    .expect("the deadline passes");
    assert_eq!(told.code, ErrorCode::NotAuthenticated, "{told:?}");
    assert!(told.message.contains("log in within 1 s"), "{told:?}");
    wait_for(DEADLINE, "a place for a new connection", || {
        let target = target.clone();
        async move { TrackerClient::connect(&target, "test").await.ok().map(|_| ()) }
    })
    .await;
    // Logged-in connections do not count against the share.
    drop(waiting);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut alive = Vec::new();
    for i in 0..5 {
        alive.push(skein_tests::login(&t, &dir.path().join(format!("d{i}")), "alice", PW).await);
    }
    for c in &alive {
        assert!(matches!(c.client.request(Request::Ping { nonce: 1 }).await, Ok(Response::Pong { .. })));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_flooding_status_changes_is_slowed() {
    use skein_proto::control::{PresenceStatus, SetPresence};
    let t = tracker_with_users(&["alice"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = skein_tests::login(&t, &dir.path().join("alice"), "alice", PW).await;
    let mut answers = Vec::new();
    for i in 0..14 {
        let status = if i % 2 == 0 { PresenceStatus::Away } else { PresenceStatus::Online };
        let set = Request::SetPresence(SetPresence { status, note: None });
        answers.push(alice.client.request(set).await.map_err(|e| e.body().map(|b| (b.code, b.retry_after_ms))));
    }
    assert!(answers[..10].iter().all(Result::is_ok), "a burst of ten is fine: {answers:?}");
    for a in &answers[10..] {
        match a {
            Err(Some((ErrorCode::Throttled, Some(ms)))) => assert!(*ms > 0 && *ms <= 2000, "{a:?}"),
            other => panic!("the eleventh change on is slowed, got {other:?}"),
        }
    }
}
