//! Presence and the directory end to end over real QUIC: pushes on change,
//! offline within the idle timeout when a client vanishes, and directory
//! search with departments.

use skein_node::profile::Profile;
use skein_node::session;
use skein_node::tracker_client::{TrackerClient, TrackerTarget};
use skein_proto::control::{
    DirectoryQuery, Event, Login, NewUser, PresenceStatus, Request, Response, SetPresence, Subscription,
};
use skein_tests::{TestTracker, UdpProxy, init};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const PW: &str = "correct horse battery";

async fn next_presence(events: &mut mpsc::Receiver<Event>, user: &str, status: PresenceStatus, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Presence(e))) if e.user == user && e.status == status => return,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream ended while waiting for {user} {status:?}"),
            Err(_) => panic!("no {user} {status:?} push within {within:?}"),
        }
    }
}

#[tokio::test]
async fn presence_changes_are_pushed_and_a_vanished_client_goes_offline() {
    init();
    let t = TestTracker::start().await;
    t.add_user("alice", PW).await;
    t.add_user("bob", PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = session::login(&Profile::new(dir.path().join("a")), &t.address(), &t.ca_path(), "alice", PW.into())
        .await
        .expect("alice");
    let mut events = alice.events;
    let snap = alice.client.request(Request::SubscribePresence(Subscription::All)).await.expect("subscribe");
    let Response::PresenceSnapshot(snap) = snap else { panic!("expected a snapshot, got {snap:?}") };
    let names: Vec<_> = snap.iter().map(|e| (e.user.as_str(), e.status)).collect();
    // Alice is connected but has set no status, so she is not shown online.
    let expected =
        [("admin", PresenceStatus::Offline), ("alice", PresenceStatus::Offline), ("bob", PresenceStatus::Offline)];
    assert_eq!(names, expected);

    // Bob connects through a proxy that can go silent, like a killed process.
    let proxy = UdpProxy::start(t.socket_addr()).await;
    let bob_profile = Profile::new(dir.path().join("b"));
    let bob_device = bob_profile.device().expect("device");
    let target = TrackerTarget::new(proxy.addr.to_string(), t.ca_path());
    let (bob, _bob_events) = TrackerClient::connect(&target, "test").await.expect("bob connects");
    bob.request(Request::Login(Login {
        user: "bob".into(),
        password: PW.into(),
        device: bob_device.hello(&bob.welcome().nonce),
    }))
    .await
    .expect("bob logs in");
    bob.request(Request::SetPresence(SetPresence { status: PresenceStatus::Online, note: None }))
        .await
        .expect("online");
    next_presence(&mut events, "bob", PresenceStatus::Online, Duration::from_secs(1)).await;

    bob.request(Request::SetPresence(SetPresence { status: PresenceStatus::Busy, note: Some("call".into()) }))
        .await
        .expect("busy");
    next_presence(&mut events, "bob", PresenceStatus::Busy, Duration::from_secs(1)).await;

    // Keep-alives keep bob online past the idle timeout while the path works.
    tokio::time::sleep(t.config.idle_timeout + Duration::from_millis(500)).await;
    let Response::PresenceSnapshot(s) = alice
        .client
        .request(Request::SubscribePresence(Subscription::Users(vec!["bob".into()])))
        .await
        .expect("snapshot")
    else {
        panic!("expected a snapshot")
    };
    assert_eq!(s[0].status, PresenceStatus::Busy);

    let vanished = Instant::now();
    proxy.go_silent();
    next_presence(&mut events, "bob", PresenceStatus::Offline, t.config.idle_timeout + Duration::from_secs(2)).await;
    let took = vanished.elapsed();
    assert!(took <= t.config.idle_timeout + Duration::from_secs(2), "offline after {took:?}");

    let Response::Directory(page) = alice
        .client
        .request(Request::Directory(DirectoryQuery {
            text: Some("bob".into()),
            department: None,
            offset: 0,
            limit: 10,
        }))
        .await
        .expect("directory")
    else {
        panic!("expected a directory page")
    };
    assert_eq!(page.users.len(), 1);
    assert_eq!(page.users[0].status, PresenceStatus::Offline);
    assert!(page.users[0].last_seen_ms > 0, "last seen is recorded");
}

#[tokio::test]
async fn directory_search_and_department_tree() {
    init();
    let t = TestTracker::start().await;
    let store = t.store().await;
    for (name, display, dept, title) in [
        ("carol", "Carol Jones", "Engineering/Backend", "Storage lead"),
        ("dave", "Dave Smith", "Engineering/Frontend", "Designer"),
        ("erin", "Erin Smith", "Sales", "Account manager"),
    ] {
        let new = NewUser {
            name: name.into(),
            display_name: display.into(),
            password: PW.into(),
            department: Some(dept.into()),
            title: Some(title.into()),
            email: Some(format!("{name}@example.org")),
            phone: None,
            admin: false,
        };
        skein_tracker::admin::add_user(&store, new, &t.passwords()).await.expect("add");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let c =
        session::login(&Profile::new(dir.path()), &t.address(), &t.ca_path(), "carol", PW.into()).await.expect("login");
    let search = |text: Option<&str>, dept: Option<&str>| {
        let q = DirectoryQuery { text: text.map(Into::into), department: dept.map(Into::into), offset: 0, limit: 50 };
        let client = c.client.clone();
        async move {
            match client.request(Request::Directory(q)).await.expect("directory") {
                Response::Directory(p) => p.users.into_iter().map(|u| u.name).collect::<Vec<_>>(),
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    assert_eq!(search(Some("SMITH"), None).await, vec!["dave", "erin"]);
    assert_eq!(search(None, Some("Engineering")).await, vec!["carol", "dave"]);
    assert_eq!(search(Some("smith"), Some("Engineering")).await, vec!["dave"]);
    assert_eq!(search(Some("storage"), None).await, vec!["carol"]);
    assert!(search(Some("%"), None).await.is_empty(), "wildcards are literal");

    let Response::Departments(d) = c.client.request(Request::Departments).await.expect("departments") else {
        panic!("expected departments")
    };
    let tree: Vec<_> = d.iter().map(|d| (d.path.as_str(), d.parent.as_deref(), d.members)).collect();
    assert_eq!(
        tree,
        vec![
            ("Engineering", None, 0),
            ("Engineering/Backend", Some("Engineering"), 1),
            ("Engineering/Frontend", Some("Engineering"), 1),
            ("Sales", None, 1),
        ]
    );
}
