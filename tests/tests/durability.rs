//! A message is acknowledged only once it is durable in the receiver's
//! history: the sender's `direct` means stored, and killing the receiving
//! process (SIGKILL, no chance to flush anything) right after the last
//! acknowledgement loses none of the messages acknowledged so.

use serde_json::Value;
use skein_node::control::{Connection, ControlRequest};
use skein_tests::{login_profile, online, skein, tracker_with_users};
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
    let _alice_daemon = online(&alice, &[]).await;
    let mut bob_daemon = online(&bob, &[]).await;

    let socket = skein_node::profile::Profile::new(&alice).socket_path();
    let mut conn = Connection::open(&socket).await.expect("connect").expect("alice's daemon");
    // 64 in flight, as a busy script would keep them.
    const N: usize = 200;
    let text = |i: u64| format!("durable {i}");
    let mut texts_by_id = std::collections::HashMap::new();
    let mut next = 0u64;
    while next < 64 {
        let id = conn.send(&ControlRequest::Send { to: "bob".into(), text: text(next) }).await.expect("send");
        texts_by_id.insert(id, text(next));
        next += 1;
    }
    let mut stored = Vec::new();
    for _ in 0..N {
        let (id, reply) = tokio::time::timeout(T, conn.next_reply()).await.expect("in time").expect("a reply");
        assert!(reply.ok, "{reply:?}");
        // `direct` or `relayed`: bob's device has stored it (anything else
        // waits in the mailbox, and is not bob's to lose).
        if ["direct", "relayed"].contains(&reply.data["path"].as_str().unwrap_or_default()) {
            stored.push(texts_by_id[&id.expect("an id")].clone());
        }
        if next < N as u64 {
            let id = conn.send(&ControlRequest::Send { to: "bob".into(), text: text(next) }).await.expect("send");
            texts_by_id.insert(id, text(next));
            next += 1;
        }
    }
    assert!(!stored.is_empty(), "no message reached bob's device directly");
    // The last acknowledgement has arrived: bob's process dies at once.
    bob_daemon.kill().await;

    let (ok, out, err) = skein(&bob, &["history", "alice", "--limit", "1000", "--json"], None).await;
    assert!(ok, "{err}");
    let history: Vec<Value> = serde_json::from_str(&out).expect("json");
    let texts: std::collections::HashSet<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    for t in &stored {
        assert!(texts.contains(t.as_str()), "{t:?} was acknowledged as stored but lost");
    }
    println!(
        "{} of {N} messages acknowledged as stored by bob's device; all in its history after SIGKILL",
        stored.len()
    );
}
