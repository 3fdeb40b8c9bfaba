//! A message is acknowledged only once it is durable in the receiver's
//! history: the sender's `direct` means stored, and killing the receiving
//! process (SIGKILL, no chance to flush anything) right after the last
//! acknowledgement loses none of them.

use serde_json::Value;
use skein_node::control::{Connection, ControlRequest};
use skein_tests::{daemon, login_profile, skein, tracker_with_users};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_kill_of_the_receiver() {
    let t = tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, bob) = (
        login_profile(&t, dir.path(), "alice", "alice", PW).await,
        login_profile(&t, dir.path(), "bob", "bob", PW).await,
    );
    let mut alice_daemon = daemon(&alice, &[]);
    alice_daemon.wait_line(T, "alice connected", |l| l.contains(r#""type":"connected""#)).await;
    let mut bob_daemon = daemon(&bob, &[]);
    bob_daemon.wait_line(T, "bob connected", |l| l.contains(r#""type":"connected""#)).await;

    let socket = skein_node::profile::Profile::new(&alice).socket_path();
    let mut conn = Connection::open(&socket).await.expect("connect").expect("alice's daemon");
    const N: usize = 200;
    for i in 0..N {
        conn.send(&ControlRequest::Send { to: "bob".into(), text: format!("durable {i}") }).await.expect("send");
    }
    for _ in 0..N {
        let (_, reply) = tokio::time::timeout(T, conn.next_reply()).await.expect("in time").expect("a reply");
        assert!(reply.ok, "{reply:?}");
        assert_eq!(reply.data["path"], "direct", "stored by bob's device: {reply:?}");
    }
    // The last acknowledgement has arrived: bob's process dies at once.
    bob_daemon.kill().await;

    let (ok, out, err) = skein(&bob, &["history", "alice", "--limit", "1000", "--json"], None).await;
    assert!(ok, "{err}");
    let history: Vec<Value> = serde_json::from_str(&out).expect("json");
    let texts: std::collections::HashSet<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    for i in 0..N {
        assert!(texts.contains(format!("durable {i}").as_str()), "message {i} was acknowledged but lost");
    }
}
