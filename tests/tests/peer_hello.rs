//! The hello rule on the mesh: a peer must present a valid device
//! certificate for its own PeerId, signed by the organisation and unexpired,
//! before it gets anything; and a verified peer cannot speak for another user.

use libp2p::{Multiaddr, PeerId, identity::Keypair};
use skein_certs::OrgSigningKey;
use skein_node::mesh::{Mesh, MeshConfig, MeshError, MeshEvent};
use skein_node::profile::Profile;
use skein_node::session;
use skein_proto::ErrorCode;
use skein_proto::bytes::{DeviceId, MailId, PublicKey};
use skein_proto::device::{DeviceCert, DeviceCertBody};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody, PeerRequest, PeerResponse};
use skein_tests::{TestTracker, init, listen_addrs};
use std::time::Duration;
use tokio::sync::mpsc;

const PW: &str = "correct horse battery";

fn config() -> MeshConfig {
    MeshConfig { listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("addr")], ..MeshConfig::default() }
}

async fn refused_event(events: &mut mpsc::Receiver<MeshEvent>, peer: PeerId) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("refusal in time") {
            Some(MeshEvent::PeerRefused { peer: p, reason }) if p == peer => return reason,
            Some(MeshEvent::Request { reply, .. }) => {
                let _ = reply.send(PeerResponse::Ok);
                panic!("an unverified peer's request reached the node");
            }
            Some(_) => continue,
            None => panic!("mesh stopped"),
        }
    }
}

fn body(user: &str, peer: &PeerId, expires_at_ms: u64) -> DeviceCertBody {
    DeviceCertBody {
        version: 1,
        serial: 999,
        org: "Skein".into(),
        user: user.into(),
        device_id: DeviceId([9; 16]),
        peer_id: peer.to_bytes(),
        x25519: PublicKey([5; 32]),
        issued_at_ms: 1,
        expires_at_ms,
    }
}

#[tokio::test]
async fn forged_stolen_and_expired_certificates_are_refused() {
    init();
    let t = TestTracker::start().await;
    t.add_user("alice", PW).await;
    t.add_user("bob", PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = Profile::new(dir.path().join("alice"));
    let alice_login = session::login(&pa, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect("alice");
    let org_key = PublicKey::from_hex(&alice_login.saved.org_signing_key).expect("org key");
    let (alice, mut alice_events) =
        Mesh::start(pa.device().expect("device").keypair, alice_login.saved.cert().expect("cert"), org_key, config())
            .expect("mesh");
    let addrs = listen_addrs(&mut alice_events).await;
    let bob_login = session::login(&Profile::new(dir.path().join("bob")), &t.address(), &t.ca_path(), "bob", PW.into())
        .await
        .expect("bob");
    let bob_cert = bob_login.saved.cert().expect("bob's cert");

    // The real organisation key, read from the tracker's data directory, to mint an expired certificate.
    let real_org = OrgSigningKey::load(&t.config.org_key_path()).expect("org signing key");
    let now = skein_node::now_ms();

    type MakeCert<'a> = Box<dyn Fn(&PeerId) -> DeviceCert + 'a>;
    let cases: Vec<(&str, MakeCert)> = vec![
        (
            "a certificate signed by another organisation",
            Box::new(|p: &PeerId| OrgSigningKey::generate().sign(body("bob", p, now + 3_600_000))),
        ),
        ("bob's real certificate presented by another PeerId", Box::new(|_: &PeerId| bob_cert.clone())),
        ("an expired certificate", Box::new(|p: &PeerId| real_org.sign(body("bob", p, now - 1)))),
        (
            "a tampered certificate",
            Box::new(|p: &PeerId| {
                let mut c = real_org.sign(body("carol", p, now + 3_600_000));
                c.body.user = "bob".into();
                c
            }),
        ),
    ];
    for (what, make) in cases {
        let kp = Keypair::generate_ed25519();
        let mallory_peer = kp.public().to_peer_id();
        let (mallory, _ev) = Mesh::start(kp, make(&mallory_peer), org_key, config()).expect("mallory mesh");
        let r = mallory.connect(alice.peer_id(), addrs.clone()).await;
        assert!(matches!(r, Err(MeshError::Refused(_) | MeshError::Unreachable(_))), "{what}: {r:?}");
        let reason = refused_event(&mut alice_events, mallory_peer).await;
        assert!(!reason.is_empty(), "{what}");
        let msg = ChatMessage {
            id: MailId([1; 16]),
            from_user: "bob".into(),
            from_device: DeviceId([9; 16]),
            to_user: "alice".into(),
            conversation: Conversation::Direct,
            sent_at_ms: now,
            body: MessageBody::Text("let me in".into()),
        };
        let r = mallory.request(alice.peer_id(), PeerRequest::Deliver(msg)).await;
        assert!(r.is_err() || matches!(r, Ok((PeerResponse::Refused(_), _))), "{what}: a refused peer got {r:?}");
    }

    // A valid certificate for carol cannot carry messages claiming to be from bob.
    t.add_user("carol", PW).await;
    let pc = Profile::new(dir.path().join("carol"));
    let carol_login = session::login(&pc, &t.address(), &t.ca_path(), "carol", PW.into()).await.expect("carol");
    let (carol, _ev) =
        Mesh::start(pc.device().expect("device").keypair, carol_login.saved.cert().expect("cert"), org_key, config())
            .expect("mesh");
    let s = carol.connect(alice.peer_id(), addrs.clone()).await.expect("carol is verified");
    assert_eq!(s.user, "alice");
    let spoof = ChatMessage {
        id: MailId([2; 16]),
        from_user: "bob".into(),
        from_device: DeviceId([9; 16]),
        to_user: "alice".into(),
        conversation: Conversation::Direct,
        sent_at_ms: now,
        body: MessageBody::Text("I am bob".into()),
    };
    let send = carol.request(alice.peer_id(), PeerRequest::Deliver(spoof));
    let answer = async {
        loop {
            match alice_events.recv().await {
                Some(MeshEvent::Request { from, req, reply, path, .. }) => {
                    let history = skein_node::history::History::open(&dir.path().join("alice-history.db"))
                        .await
                        .expect("history");
                    let inbox = skein_node::inbox::Inbox {
                        history,
                        me: "alice".into(),
                        transfers: None,
                        groups: None,
                        gaps: None,
                    };
                    let (resp, ev) = inbox.handle_peer(&from, path.as_str(), *req).await;
                    assert!(ev.is_empty(), "a spoofed message must not be shown");
                    let _ = reply.send(resp);
                    return;
                }
                Some(_) => continue,
                None => panic!("mesh stopped"),
            }
        }
    };
    let (r, ()) = tokio::join!(send, answer);
    assert!(matches!(r, Ok((PeerResponse::Refused(ref b), _)) if b.code == ErrorCode::PermissionDenied), "{r:?}");
}

#[tokio::test]
async fn a_revoked_device_is_refused_by_a_running_node() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = skein_tests::login_profile(&t, dir.path(), "alice", "alice", PW).await;
    let mut alice = skein_tests::daemon(&pa, &[]);
    alice.wait_line(Duration::from_secs(30), "alice connected", |l| l.contains("\"type\":\"connected\"")).await;

    let pb = Profile::new(dir.path().join("bob"));
    let bob = session::login(&pb, &t.address(), &t.ca_path(), "bob", PW.into()).await.expect("bob");
    let org_key = PublicKey::from_hex(&bob.saved.org_signing_key).expect("org key");
    let alice_info = skein_tests::wait_for(Duration::from_secs(20), "alice's addresses", || {
        let c = bob.client.clone();
        async move {
            match c.request(skein_proto::control::Request::LookupPeer { user: "alice".into() }).await {
                Ok(skein_proto::control::Response::Peer(p)) if !p.online.is_empty() => Some(p),
                _ => None,
            }
        }
    })
    .await;
    let dev = &alice_info.online[0];
    let alice_peer = PeerId::from_bytes(&dev.cert.body.peer_id).expect("peer id");
    let addrs: Vec<Multiaddr> = dev.addresses.listen.iter().filter_map(|a| a.parse().ok()).collect();

    // Before revocation bob is accepted...
    let (bob_mesh, _ev) =
        Mesh::start(pb.device().expect("device").keypair, bob.saved.cert().expect("cert"), org_key, config())
            .expect("mesh");
    bob_mesh.connect(alice_peer, addrs.clone()).await.expect("bob is accepted while his device is valid");
    drop(bob_mesh);

    // ...after it, the same certificate (still unexpired) gets nothing.
    let store = t.store().await;
    let device = pb.device().expect("device").device_id.0;
    skein_tracker::admin::revoke_device(&store, "bob", device).await.expect("revoke");
    let (bob_mesh, _ev) =
        Mesh::start(pb.device().expect("device").keypair, bob.saved.cert().expect("cert"), org_key, config())
            .expect("mesh");
    let r = bob_mesh.connect(alice_peer, addrs).await;
    assert!(matches!(r, Err(MeshError::Refused(_) | MeshError::Unreachable(_))), "{r:?}");
    alice
        .wait_next(Duration::from_secs(10), "alice to refuse bob", |l| {
            l.contains("peer_refused") && l.contains("revoked")
        })
        .await;
}
