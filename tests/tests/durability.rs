//! A message is acknowledged only once it is durable in the receiver's
//! history: the sender's `direct` means stored, and killing the receiving
//! process (SIGKILL, no chance to flush anything) in the middle of a stream
//! of 10,000 messages, 64 in flight, loses none of the messages
//! acknowledged so.

use serde_json::Value;
use skein_node::control::{Connection, ControlRequest};
use skein_tests::{online, skein, users_with_profiles};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);
/// The stream's length.
const N: u64 = 10_000;
/// When bob's process dies: after this many answers.
const KILL_AFTER: u64 = 4_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_kill_of_the_receiver() {
    let (_t, _dir, [alice, bob]) = users_with_profiles(["alice", "bob"], PW).await;
    let _alice_daemon = online(&alice, &[]).await;
    let mut bob_daemon = online(&bob, &[]).await;

    let socket = skein_node::profile::Profile::new(&alice).socket_path();
    let mut conn = Connection::open(&socket).await.expect("connect").expect("alice's daemon");
    let text = |i: u64| format!("durable {i}");
    let mut texts_by_id = HashMap::new();
    let (mut sent, mut answered) = (0u64, 0u64);
    let mut stored = Vec::new();
    let mut killed = false;
    // 64 in flight, as a busy script would keep them, until bob dies; then
    // the ones in flight are answered (stored, or sealed to the mailbox).
    while answered < sent || (!killed && sent < N) {
        while !killed && sent < N && sent - answered < 64 {
            let id = conn.send(&ControlRequest::Send { to: "bob".into(), text: text(sent) }).await.expect("send");
            texts_by_id.insert(id, text(sent));
            sent += 1;
        }
        let (id, reply) = tokio::time::timeout(T, conn.next_reply()).await.expect("in time").expect("a reply");
        answered += 1;
        assert!(reply.ok, "{reply:?}");
        // `direct` or `relayed`: bob's device has stored it (anything else
        // waits in the mailbox, and is not bob's to lose).
        if ["direct", "relayed"].contains(&reply.data["path"].as_str().unwrap_or_default()) {
            stored.push(texts_by_id[&id.expect("an id")].clone());
        }
        if !killed && answered == KILL_AFTER {
            // Mid-stream: 64 more are on their way to bob as his process dies.
            bob_daemon.kill().await;
            killed = true;
        }
    }
    assert!(killed, "bob was killed mid-stream");
    assert!(stored.len() as u64 >= KILL_AFTER / 2, "only {} reached bob's device directly", stored.len());

    let (ok, out, err) = skein(&bob, &["history", "alice", "--limit", "100000", "--json"], None).await;
    assert!(ok, "{err}");
    let history: Vec<Value> = serde_json::from_str(&out).expect("json");
    let texts: HashSet<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    for t in &stored {
        assert!(texts.contains(t.as_str()), "{t:?} was acknowledged as stored but lost");
    }
    println!(
        "{} of {sent} messages sent were acknowledged as stored by bob's device before and as it was killed \
         mid-stream; all are in its history",
        stored.len()
    );
}
