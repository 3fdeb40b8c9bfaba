//! Accounts end to end: login, resume with rotation, wrong passwords,
//! throttling, expiry, disabled users, the wrong CA and an unreachable
//! tracker, each with a clear error, while the tracker keeps serving.

use skein_node::profile::Profile;
use skein_node::session::{self, SessionError};
use skein_node::tracker_client::ClientError;
use skein_proto::ErrorCode;
use skein_proto::control::{Event, Request, Response};
use skein_tests::{TestTracker, init, tracker_with_users, wait_for};
use std::time::Duration;

const PW: &str = "correct horse battery";

fn refused_code(e: &SessionError) -> Option<ErrorCode> {
    e.code()
}

#[tokio::test]
async fn login_then_resume_rotates_the_token() {
    let t = tracker_with_users(&["alice"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Profile::new(dir.path().join("alice"));
    let c = session::login(&p, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect("login");
    assert_eq!(c.saved.user, "alice");
    let cert = c.saved.cert().expect("device certificate saved");
    assert_eq!(cert.body.user, "alice");
    assert_eq!(cert.body.peer_id, p.device().expect("device").peer_id().to_bytes());
    let org_key = skein_proto::bytes::PublicKey::from_hex(&c.saved.org_signing_key).expect("org key");
    skein_certs::device::verify_device_cert(&org_key, &cert, skein_node::now_ms()).expect("certificate verifies");
    c.client.close();

    let first_token = c.saved.token.clone();
    let r = session::resume(&p).await.expect("resume");
    assert_ne!(r.saved.token, first_token, "resume rotates the token");
    r.client.close();

    // The old token no longer works.
    let mut stale = p.session().expect("session");
    stale.token = first_token;
    p.save_session(&stale).expect("save");
    let e = session::resume(&p).await.expect_err("stale token refused");
    assert_eq!(refused_code(&e), Some(ErrorCode::SessionRevoked), "{e}");
    assert!(e.to_string().contains("login"), "error says what to do: {e}");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same_and_throttle() {
    let t = tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Profile::new(dir.path().join("x"));
    let e = session::login(&p, &t.address(), &t.ca_path(), "nobody", PW.into()).await.expect_err("unknown user");
    assert_eq!(refused_code(&e), Some(ErrorCode::BadCredentials));
    assert!(e.to_string().contains("wrong user name or password"), "{e}");
    for _ in 0..5 {
        let e =
            session::login(&p, &t.address(), &t.ca_path(), "alice", "wrong password".into()).await.expect_err("wrong");
        assert_eq!(refused_code(&e), Some(ErrorCode::BadCredentials), "{e}");
    }
    let e = session::login(&p, &t.address(), &t.ca_path(), "alice", "wrong password".into()).await.expect_err("wrong");
    assert_eq!(refused_code(&e), Some(ErrorCode::BadCredentials), "the sixth failure still checks, then locks");
    let e = session::login(&p, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect_err("locked out");
    assert_eq!(refused_code(&e), Some(ErrorCode::Throttled), "{e}");
    assert!(e.to_string().contains("try again"), "{e}");
    // Other accounts are unaffected.
    let pb = Profile::new(dir.path().join("bob"));
    let c = session::login(&pb, &t.address(), &t.ca_path(), "bob", PW.into()).await.expect("bob logs in");
    c.client.close();
}

#[tokio::test]
async fn expired_session_must_log_in_again() {
    init();
    let t = TestTracker::start_with(|c| c.session_ttl(Duration::from_millis(300))).await;
    t.add_user("alice", PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Profile::new(dir.path());
    let c = session::login(&p, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect("login");
    let mut events = c.events;
    // The live connection is told when its session expires.
    let ended = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.expect("an event in time");
    assert!(matches!(ended, Some(Event::SessionEnded(ref b)) if b.code == ErrorCode::SessionExpired), "{ended:?}");
    let e = session::resume(&p).await.expect_err("expired");
    assert_eq!(refused_code(&e), Some(ErrorCode::SessionExpired), "{e}");
    assert!(e.to_string().contains("log in again"), "{e}");
}

#[tokio::test]
async fn disabling_a_user_ends_live_sessions_within_seconds() {
    let t = tracker_with_users(&["alice", "bob", "carol"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = Profile::new(dir.path().join("alice"));
    let pb = Profile::new(dir.path().join("bob"));
    let a = session::login(&pa, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect("alice");
    let b = session::login(&pb, &t.address(), &t.ca_path(), "bob", PW.into()).await.expect("bob");
    let mut bob_events = b.events;

    // As the admin CLI does: a separate store handle, as from another process.
    let store = t.store().await;
    skein_tracker::admin::set_disabled(&store, "bob", true).await.expect("disable");
    let ev = tokio::time::timeout(Duration::from_secs(5), bob_events.recv()).await.expect("bob told in time");
    assert!(matches!(ev, Some(Event::SessionEnded(ref b)) if b.code == ErrorCode::AccountDisabled), "{ev:?}");
    wait_for(Duration::from_secs(5), "bob's connection to close", || async {
        b.client.request(Request::Ping { nonce: 1 }).await.is_err().then_some(())
    })
    .await;

    let e = session::resume(&pb).await.expect_err("disabled");
    assert!(matches!(refused_code(&e), Some(ErrorCode::AccountDisabled | ErrorCode::SessionRevoked)), "{e}");
    let e = session::login(&pb, &t.address(), &t.ca_path(), "bob", PW.into()).await.expect_err("disabled");
    assert_eq!(refused_code(&e), Some(ErrorCode::AccountDisabled), "{e}");
    assert!(e.to_string().contains("disabled"), "{e}");

    // Alice never noticed.
    assert!(matches!(a.client.request(Request::Ping { nonce: 7 }).await, Ok(Response::Pong { nonce: 7, .. })));

    // Re-enabled, bob logs in again, and the old event does not end the new
    // session. Proof that the tracker has looked at its events since: a
    // later event (carol disabled) has taken effect, and bob is still on.
    skein_tracker::admin::set_disabled(&store, "bob", false).await.expect("enable");
    let b = session::login(&pb, &t.address(), &t.ca_path(), "bob", PW.into()).await.expect("bob again");
    let pc = Profile::new(dir.path().join("carol"));
    let c = session::login(&pc, &t.address(), &t.ca_path(), "carol", PW.into()).await.expect("carol");
    let mut carol_events = c.events;
    skein_tracker::admin::set_disabled(&store, "carol", true).await.expect("disable carol");
    let ev = tokio::time::timeout(Duration::from_secs(5), carol_events.recv()).await.expect("carol told in time");
    assert!(matches!(ev, Some(Event::SessionEnded(ref b)) if b.code == ErrorCode::AccountDisabled), "{ev:?}");
    let mut bob_events = b.events;
    while let Ok(ev) = bob_events.try_recv() {
        assert!(!matches!(ev, Event::SessionEnded(_)), "bob's new session was ended: {ev:?}");
    }
    assert!(matches!(b.client.request(Request::Ping { nonce: 2 }).await, Ok(Response::Pong { nonce: 2, .. })));
}

#[tokio::test]
async fn wrong_ca_and_unreachable_tracker_are_named() {
    let t = tracker_with_users(&["alice"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Profile::new(dir.path().join("p"));

    let other = skein_certs::ca::OrgCa::generate("Other Org", 30).expect("other CA");
    let other_ca = dir.path().join("other-ca.pem");
    other.save(&other_ca, &dir.path().join("other-ca.key"), false).expect("save");
    let e = session::login(&p, &t.address(), &other_ca, "alice", PW.into()).await.expect_err("wrong CA");
    assert!(matches!(e, SessionError::Client(ClientError::UntrustedTracker { .. })), "{e}");
    assert!(e.to_string().contains("other-ca.pem"), "{e}");

    let missing = dir.path().join("missing.pem");
    let e = session::login(&p, &t.address(), &missing, "alice", PW.into()).await.expect_err("missing CA");
    assert!(e.to_string().contains("missing.pem"), "{e}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let e = session::login(&p, &t.address(), &garbage, "alice", PW.into()).await.expect_err("corrupt CA");
    assert!(e.to_string().contains("garbage.pem"), "{e}");

    // Nothing listens on this port.
    let free = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let e = session::login(&p, &format!("127.0.0.1:{port}"), &t.ca_path(), "alice", PW.into())
        .await
        .expect_err("unreachable");
    assert!(matches!(e, SessionError::Client(ClientError::Unreachable { .. })), "{e}");
    assert!(e.to_string().contains(&port.to_string()), "{e}");

    let e = session::login(&p, "no-port-here", &t.ca_path(), "alice", PW.into()).await.expect_err("bad address");
    assert!(e.to_string().contains("HOST:PORT"), "{e}");

    // And the tracker still serves.
    let c = session::login(&p, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect("login");
    c.client.close();
}
