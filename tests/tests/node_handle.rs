//! The node handle that `skein daemon` and the desktop app share, end to
//! end with a real tracker, real peers and the real `skein` binary:
//! - a node started through the handle (as the desktop app starts one)
//!   sends and receives, reports events, and serves the profile's control
//!   socket, so `skein` commands work against it;
//! - one node per profile: a daemon started beside it is told who holds
//!   the profile and stops, and the reverse; nothing is lost either way.

use serde_json::Value;
use skein_node::daemon::DaemonOptions;
use skein_node::handle;
use skein_node::profile::Profile;
use skein_tests::{daemon, login_profile, online, skein, tracker_with_users};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

/// Waits for an event `matches` accepts, panicking with `what` after `T`.
async fn next_event(events: &mut UnboundedReceiver<Value>, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let wait = async {
        while let Some(v) = events.recv().await {
            if matches(&v) {
                return v;
            }
        }
        panic!("the node stopped before {what}");
    };
    tokio::time::timeout(T, wait).await.unwrap_or_else(|_| panic!("no event for {what} within {T:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_through_the_handle_chats_and_serves_the_cli_and_holds_its_profile() {
    let t = tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = login_profile(&t, dir.path(), "alice", "alice", PW).await;
    let bob = login_profile(&t, dir.path(), "bob", "bob", PW).await;

    let (node, task) =
        handle::start(Profile::new(&alice), DaemonOptions::default(), "skein-desk").await.expect("start");
    assert_eq!(node.user(), "alice");
    let mut events = node.events();
    next_event(&mut events, "alice connected", |v| v["type"] == "connected").await;

    // A daemon on the same profile is refused, and told who has it.
    let (ok, _, err) = tokio::time::timeout(T, skein(&alice, &["daemon"], None)).await.expect("the second node exits");
    assert!(!ok && err.contains("in use by skein-desk, pid"), "{err}");

    // Bob's daemon, and a message each way.
    let mut bob_daemon = online(&bob, &[]).await;
    // Until bob's daemon has told the tracker where it listens, a send waits
    // in the mailbox (and arrives all the same); then it goes direct.
    let mut sent = Value::Null;
    for _ in 0..50 {
        sent = node.send("bob", "hello from the app 👋").await.expect("send");
        if sent["path"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(["direct", "relayed"].contains(&sent["path"].as_str().unwrap_or_default()), "{sent}");
    bob_daemon.wait_line(T, "alice's message", |l| l.contains("hello from the app 👋")).await;
    let (ok, _, err) = skein(&bob, &["send", "alice", "hi app"], None).await;
    assert!(ok, "{err}");
    let v = next_event(&mut events, "bob's answer", |v| v["type"] == "message" && v["text"] == "hi app").await;
    assert_eq!(v["from"], "bob");

    // The CLI works against the running node, over its control socket.
    let (ok, out, err) = skein(&alice, &["history", "bob", "--json"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("hello from the app") && out.contains("hi app"), "{out}");
    let (ok, out, err) = skein(&alice, &["send", "bob", "from the cli"], None).await;
    assert!(ok && ["direct", "relayed"].contains(&out.trim()), "{out}{err}");
    bob_daemon.wait_line(T, "the cli's message", |l| l.contains("from the cli")).await;
    let (ok, out, err) = skein(&alice, &["presence", "--json"], None).await;
    assert!(ok && out.contains(r#""user":"bob""#), "{out}{err}");

    // Stopped, the node lets go of the profile: a daemon takes it.
    node.stop();
    tokio::time::timeout(T, task).await.expect("stops").expect("joins").expect("stops cleanly");
    let mut daemon_after = daemon(&alice, &[]);
    daemon_after.wait_line(T, "a daemon on the freed profile", |l| l.contains(r#""type":"connected""#)).await;
    // And the reverse: the app cannot start beside the daemon.
    let refused = handle::start(Profile::new(&alice), DaemonOptions::default(), "skein-desk").await;
    let e = refused.expect_err("refused").to_string();
    assert!(e.contains("in use by skein daemon, pid"), "{e}");
    let (ok, out, err) = skein(&alice, &["history", "bob", "--json"], None).await;
    assert!(ok && out.contains("from the cli"), "nothing was lost: {out}{err}");
}
