//! Brokering over the control plane: peer lookup with reported addresses
//! and device certificates, the sealed mailbox with its limits, and admin
//! requests that only administrators may make.

use skein_node::profile::Profile;
use skein_node::session::{self, Connected};
use skein_proto::ErrorCode;
use skein_proto::bytes::MailId;
use skein_proto::control::{
    Addresses, AdminRequest, AdminResponse, Event, MailboxPut, NewUser, PresenceStatus, Request, Response, SealedItem,
    SetPresence,
};
use skein_tests::{TestTracker, init};
use skein_tracker::config::MailboxLimits;
use std::time::Duration;

const PW: &str = "correct horse battery";

async fn login(t: &TestTracker, dir: &std::path::Path, user: &str) -> Connected {
    skein_tests::login(t, &dir.join(user), user, PW).await
}

fn refused(r: Result<Response, skein_node::tracker_client::ClientError>) -> ErrorCode {
    match r {
        Err(e) => e.body().map(|b| b.code).unwrap_or_else(|| panic!("not a tracker refusal: {e}")),
        Ok(resp) => panic!("expected a refusal, got {resp:?}"),
    }
}

#[tokio::test]
async fn lookup_returns_reported_addresses_and_valid_certificates() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = login(&t, dir.path(), "alice").await;
    let bob = login(&t, dir.path(), "bob").await;

    // Before bob reports addresses he is known but not reachable.
    let Response::Peer(p) = alice.client.request(Request::LookupPeer { user: "bob".into() }).await.expect("lookup")
    else {
        panic!("expected peer info")
    };
    assert!(p.online.is_empty());
    assert_eq!(p.known.len(), 1);

    let addrs = Addresses {
        listen: vec!["/ip4/198.18.1.2/udp/4001/quic-v1".into()],
        observed: vec!["/ip4/198.18.0.9/udp/61000/quic-v1".into()],
        relayed: vec![],
    };
    bob.client.request(Request::ReportAddresses(addrs.clone())).await.expect("report");
    bob.client
        .request(Request::SetPresence(SetPresence { status: PresenceStatus::Online, note: None }))
        .await
        .expect("online");
    let Response::Peer(p) = alice.client.request(Request::LookupPeer { user: "bob".into() }).await.expect("lookup")
    else {
        panic!("expected peer info")
    };
    assert_eq!(p.online.len(), 1);
    let dev = &p.online[0];
    assert_eq!(dev.addresses, addrs);
    assert_eq!(dev.status, PresenceStatus::Online);
    let bob_peer = Profile::new(dir.path().join("bob")).device().expect("device").peer_id().to_bytes();
    let org = skein_proto::bytes::PublicKey::from_hex(&alice.saved.org_signing_key).expect("org key");
    skein_certs::verify_device_cert_for(&org, &dev.cert, skein_node::now_ms(), "bob", &bob_peer)
        .expect("bob's certificate");

    // Hostile reports are refused with the field named.
    let too_many = Addresses { listen: vec!["/ip4/198.18.0.1/udp/1/quic-v1".into(); 100], ..Addresses::default() };
    assert_eq!(refused(bob.client.request(Request::ReportAddresses(too_many)).await), ErrorCode::TooLarge);
    assert_eq!(refused(alice.client.request(Request::LookupPeer { user: "nobody".into() }).await), ErrorCode::NotFound);

    // When bob leaves, he is no longer returned as online.
    bob.client.close();
    skein_tests::wait_for(Duration::from_secs(5), "bob to drop out of lookups", || {
        let c = alice.client.clone();
        async move {
            match c.request(Request::LookupPeer { user: "bob".into() }).await {
                Ok(Response::Peer(p)) if p.online.is_empty() => Some(()),
                _ => None,
            }
        }
    })
    .await;
}

#[tokio::test]
async fn mailbox_holds_sealed_items_until_acked_and_enforces_limits() {
    init();
    let t = TestTracker::start_with(|c| {
        c.mailbox(MailboxLimits {
            max_items_per_device: 3,
            max_bytes_per_user: 1 << 20,
            max_age: Duration::from_secs(3600),
            sender_share_percent: 100,
        })
    })
    .await;
    t.add_user("alice", PW).await;
    t.add_user("bob", PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = login(&t, dir.path(), "alice").await;
    let bob = login(&t, dir.path(), "bob").await;
    let mut bob_events = bob.events;
    let bob_device = bob.saved.cert().expect("cert").body.device_id;

    let item = |n: u8| SealedItem { id: MailId([n; 16]), to_device: bob_device, sealed: vec![n; 100] };
    let put = |items: Vec<SealedItem>| Request::MailboxPut(MailboxPut { to_user: "bob".into(), items });
    let r = alice.client.request(put(vec![item(1), item(2)])).await.expect("put");
    assert_eq!(r, Response::MailboxStored { stored: 2 });
    let ev = tokio::time::timeout(Duration::from_secs(2), bob_events.recv()).await.expect("bob notified");
    assert!(matches!(ev, Some(Event::MailWaiting { count: 2 })), "{ev:?}");

    // A duplicate is ignored; going over the limit stores nothing and says so.
    assert_eq!(alice.client.request(put(vec![item(2)])).await.expect("dup"), Response::MailboxStored { stored: 0 });
    assert_eq!(refused(alice.client.request(put(vec![item(3), item(4)])).await), ErrorCode::MailboxFull);

    // Sealing to a device bob does not have is refused.
    let stray = SealedItem { id: MailId([9; 16]), to_device: skein_proto::bytes::DeviceId([7; 16]), sealed: vec![1] };
    assert_eq!(refused(alice.client.request(put(vec![stray])).await), ErrorCode::InvalidInput);

    let Response::Mail(items) = bob.client.request(Request::MailboxFetch { limit: 10 }).await.expect("fetch") else {
        panic!("expected mail")
    };
    assert_eq!(items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![MailId([1; 16]), MailId([2; 16])]);
    assert!(items.iter().all(|i| i.from_user == "alice"));
    // Not acked yet: still there.
    let Response::Mail(again) = bob.client.request(Request::MailboxFetch { limit: 10 }).await.expect("fetch") else {
        panic!("expected mail")
    };
    assert_eq!(again.len(), 2);
    let r = bob.client.request(Request::MailboxAck { ids: vec![MailId([1; 16])] }).await.expect("ack");
    assert_eq!(r, Response::MailboxAcked { removed: 1 });
    // Alice cannot read or ack bob's mail: her fetch sees her own (empty) box.
    let Response::Mail(hers) = alice.client.request(Request::MailboxFetch { limit: 10 }).await.expect("fetch") else {
        panic!("expected mail")
    };
    assert!(hers.is_empty());
    let r = alice.client.request(Request::MailboxAck { ids: vec![MailId([2; 16])] }).await.expect("ack");
    assert_eq!(r, Response::MailboxAcked { removed: 0 });
    let Response::Mail(left) = bob.client.request(Request::MailboxFetch { limit: 10 }).await.expect("fetch") else {
        panic!("expected mail")
    };
    assert_eq!(left.iter().map(|i| i.id).collect::<Vec<_>>(), vec![MailId([2; 16])]);
}

#[tokio::test]
async fn one_sender_cannot_fill_a_mailbox_for_everyone_else() {
    init();
    let t = TestTracker::start_with(|c| {
        c.mailbox(MailboxLimits {
            max_items_per_device: 8,
            max_bytes_per_user: 1 << 20,
            max_age: Duration::from_secs(3600),
            sender_share_percent: 25,
        })
    })
    .await;
    for u in ["alice", "bob", "carol"] {
        t.add_user(u, PW).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = login(&t, dir.path(), "alice").await;
    let carol = login(&t, dir.path(), "carol").await;
    let bob = login(&t, dir.path(), "bob").await;
    let bob_device = bob.saved.cert().expect("cert").body.device_id;
    let item = |n: u8| SealedItem { id: MailId([n; 16]), to_device: bob_device, sealed: vec![n; 100] };
    let put = |items: Vec<SealedItem>| Request::MailboxPut(MailboxPut { to_user: "bob".into(), items });

    assert_eq!(
        alice.client.request(put(vec![item(1), item(2)])).await.expect("put"),
        Response::MailboxStored { stored: 2 }
    );
    let e = alice.client.request(put(vec![item(3)])).await.expect_err("a quarter of bob's box is alice's most");
    let body = e.body().expect("an answer");
    assert_eq!(body.code, ErrorCode::MailboxFull);
    assert!(body.message.contains("from any one sender"), "{body:?}");
    // Carol still gets through.
    assert_eq!(
        carol.client.request(put(vec![item(4), item(5)])).await.expect("put"),
        Response::MailboxStored { stored: 2 }
    );
    // Once bob takes his mail, alice has room again.
    let r = bob.client.request(Request::MailboxAck { ids: vec![MailId([1; 16]), MailId([2; 16])] }).await.expect("ack");
    assert_eq!(r, Response::MailboxAcked { removed: 2 });
    assert_eq!(alice.client.request(put(vec![item(3)])).await.expect("put"), Response::MailboxStored { stored: 1 });
}

#[tokio::test]
async fn admin_requests_need_an_administrator() {
    init();
    let t = TestTracker::start().await;
    t.add_user("alice", PW).await;
    let store = t.store().await;
    let boss = NewUser {
        name: "boss".into(),
        display_name: "The Boss".into(),
        password: PW.into(),
        department: None,
        title: None,
        email: None,
        phone: None,
        admin: true,
    };
    skein_tracker::admin::add_user(&store, boss, &t.passwords()).await.expect("admin user");
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = login(&t, dir.path(), "alice").await;
    let boss = login(&t, dir.path(), "boss").await;
    assert!(boss.saved.admin);

    let new = |name: &str| NewUser {
        name: name.into(),
        display_name: String::new(),
        password: PW.into(),
        department: Some("Ops".into()),
        title: None,
        email: None,
        phone: None,
        admin: false,
    };
    let r = alice.client.request(Request::Admin(AdminRequest::AddUser(new("mallory")))).await;
    assert_eq!(refused(r), ErrorCode::PermissionDenied);
    let r = boss.client.request(Request::Admin(AdminRequest::AddUser(new("carol")))).await.expect("add");
    assert_eq!(r, Response::Admin(AdminResponse::Done));
    let r = boss.client.request(Request::Admin(AdminRequest::AddUser(new("carol")))).await;
    assert_eq!(refused(r), ErrorCode::Conflict);
    let r = boss.client.request(Request::Admin(AdminRequest::AddUser(new("Bad Name")))).await;
    assert_eq!(refused(r), ErrorCode::InvalidInput);
    let weak = NewUser { password: "short".into(), ..new("dave") };
    assert_eq!(
        refused(boss.client.request(Request::Admin(AdminRequest::AddUser(weak))).await),
        ErrorCode::InvalidInput
    );

    // Disabling over the control plane ends alice's session at once.
    let mut alice_events = alice.events;
    let r =
        boss.client.request(Request::Admin(AdminRequest::SetDisabled { user: "alice".into(), disabled: true })).await;
    assert_eq!(r.expect("disable"), Response::Admin(AdminResponse::SessionsEnded { count: 1 }));
    let ev = tokio::time::timeout(Duration::from_secs(2), alice_events.recv()).await.expect("alice told");
    assert!(matches!(ev, Some(Event::SessionEnded(ref b)) if b.code == ErrorCode::AccountDisabled), "{ev:?}");

    // Revoking a device refuses its next login.
    let carol = login(&t, dir.path(), "carol").await;
    let device = carol.saved.cert().expect("cert").body.device_id;
    let r = boss
        .client
        .request(Request::Admin(AdminRequest::RevokeDevice { user: "carol".into(), device_id: device }))
        .await;
    assert_eq!(r.expect("revoke"), Response::Admin(AdminResponse::SessionsEnded { count: 1 }));
    let e = session::login(&Profile::new(dir.path().join("carol")), &t.address(), &t.ca_path(), "carol", PW.into())
        .await
        .expect_err("revoked device");
    assert_eq!(e.code(), Some(ErrorCode::PermissionDenied), "{e}");
}
