//! One-to-one messaging end to end with real `skein daemon` processes and a
//! real tracker: direct delivery with acknowledgement, the offline mailbox
//! with exactly-once delivery in order, several devices per user reached
//! directly, read receipts, and a conversation between connected peers that
//! goes on while the tracker is down and after it restarts.

use serde_json::Value;
use skein_node::profile::Profile;
use skein_tests::{Proc, TestTracker, skein, tracker_with_users};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

async fn profile(t: &TestTracker, dir: &Path, name: &str, user: &str) -> PathBuf {
    skein_tests::login_profile(t, dir, name, user, PW).await
}

fn daemon(profile: &Path) -> Proc {
    skein_tests::daemon(profile, &[])
}

async fn connected(d: &mut Proc) {
    d.wait_line(T, "the daemon to connect", |l| l.contains("\"type\":\"connected\"")).await;
}

fn is_message(line: &str, from: &str, text: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| v["type"] == "message" && v["from"] == from && v["text"] == text)
}

async fn send(from: &Path, to: &str, text: &str) -> String {
    let (ok, out, err) = skein(from, &["send", to, text], None).await;
    assert!(ok, "send {text:?} failed: {err}");
    out.trim().to_owned()
}

/// Sends until the recipient's addresses are known to the tracker (until
/// then a send is queued), and returns the first path that is not `queued`.
async fn send_when_reachable(from: &Path, to: &str, text: &str) -> String {
    for _ in 0..50 {
        let path = send(from, to, text).await;
        if path != "queued" {
            return path;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    "queued".into()
}

/// `skein peers --json`: the verified peers with their paths.
async fn peers(p: &Path) -> Vec<Value> {
    let (ok, out, err) = skein(p, &["peers", "--json"], None).await;
    assert!(ok, "peers: {err}");
    serde_json::from_str::<Value>(&out).expect("peers JSON").as_array().cloned().unwrap_or_default()
}

async fn history(p: &Path, with: &str) -> Vec<Value> {
    let (ok, out, err) = skein(p, &["history", with, "--json"], None).await;
    assert!(ok, "history: {err}");
    serde_json::from_str::<Value>(&out).expect("history JSON").as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn direct_delivery_offline_mailbox_devices_and_receipts() {
    let t = tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = profile(&t, dir.path(), "alice", "alice").await;
    let pb = profile(&t, dir.path(), "bob", "bob").await;

    let mut alice = daemon(&pa);
    let mut bob = daemon(&pb);
    connected(&mut alice).await;
    connected(&mut bob).await;

    let (ok, _, err) = skein(&pa, &["send", "nobody", "hello?"], None).await;
    assert!(!ok && err.contains("no user named nobody"), "sending to an unknown user fails: {err}");
    assert_eq!(send_when_reachable(&pa, "bob", "hi").await, "direct", "same-host peers talk directly");
    bob.wait_line(T, "bob to print alice's message", |l| is_message(l, "alice", "hi")).await;

    let bob_peer = peers(&pa).await.into_iter().find(|p| p["user"] == "bob").expect("bob is a peer");
    assert_eq!(bob_peer["path"], "direct");

    // Bob answers; both histories agree.
    assert_eq!(send(&pb, "alice", "hello alice").await, "direct");
    alice.wait_line(T, "alice to get bob's answer", |l| is_message(l, "bob", "hello alice")).await;
    let h = history(&pa, "bob").await;
    let texts: Vec<&str> = h.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.ends_with(&["hi", "hello alice"]), "{texts:?}");

    // Bob goes away; three messages wait in the mailbox, sealed.
    bob.kill().await;
    for text in ["one", "two", "three"] {
        assert_eq!(send(&pa, "bob", text).await, "queued", "bob is offline");
    }
    let store = t.store().await;
    let bob_id = store.user_by_name("bob").await.expect("store").expect("bob").id;
    let bob_dev = Profile::new(&pb).device().expect("device").device_id.0;
    let waiting = store.mailbox_fetch(bob_id, bob_dev, 10).await.expect("mailbox");
    assert_eq!(waiting.len(), 3);
    for item in &waiting {
        for plain in [&b"one"[..], b"two", b"three", b"alice"] {
            assert!(!item.sealed.windows(plain.len()).any(|w| w == plain), "the mailbox holds only ciphertext");
        }
    }

    // Bob comes back: all three arrive once, in order.
    let mut bob = daemon(&pb);
    connected(&mut bob).await;
    bob.wait_line(T, "the third queued message", |l| is_message(l, "alice", "three")).await;
    let got: Vec<String> = bob
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "message")
        .filter_map(|v| v["text"].as_str().map(String::from))
        .collect();
    assert_eq!(got, vec!["one", "two", "three"], "in order, once");
    skein_tests::wait_for(T, "the mailbox to empty", || {
        let store = store.clone();
        async move { store.mailbox_count(bob_id, bob_dev).await.ok().filter(|n| *n == 0) }
    })
    .await;
    let h = history(&pb, "alice").await;
    assert_eq!(h.iter().filter(|m| m["text"] == "two").count(), 1, "exactly once in history");

    // Delivered receipts reach alice for the queued messages; then a read receipt.
    skein_tests::wait_for(T, "alice to see the queued messages delivered", || {
        let pa = pa.clone();
        async move {
            let h = history(&pa, "bob").await;
            h.iter().filter(|m| m["text"] == "three").all(|m| m["state"] == "delivered").then_some(())
        }
    })
    .await;
    let (ok, _, err) = skein(&pb, &["read", "alice"], None).await;
    assert!(ok, "{err}");
    skein_tests::wait_for(T, "alice to see bob read them", || {
        let pa = pa.clone();
        async move {
            let h = history(&pa, "bob").await;
            h.iter().filter(|m| m["text"] == "three").all(|m| m["state"] == "read").then_some(())
        }
    })
    .await;

    // A second device for bob: both devices get the next message directly.
    let pb2 = profile(&t, dir.path(), "bob-laptop", "bob").await;
    let mut bob2 = daemon(&pb2);
    connected(&mut bob2).await;
    let bob_devices = [&pb, &pb2].map(|p| Profile::new(p).device().expect("device").device_id.to_hex());
    // Until alice has a direct connection to each of bob's devices: every
    // try sends a ping, which dials each device the tracker lists for bob.
    let mut tries = 0;
    skein_tests::wait_for(T, "alice to reach both of bob's devices directly", || {
        tries += 1;
        let (pa, bob_devices, text) = (pa.clone(), bob_devices.clone(), format!("ping {tries}"));
        async move {
            send(&pa, "bob", &text).await;
            let peers = peers(&pa).await;
            let direct = |d: &String| peers.iter().any(|p| p["device"] == d.as_str() && p["path"] == "direct");
            bob_devices.iter().all(direct).then_some(())
        }
    })
    .await;
    assert_eq!(send(&pa, "bob", "to both").await, "direct");
    for (who, d) in [("bob's first device", &mut bob), ("bob's second device", &mut bob2)] {
        let got = d.wait_line(T, who, |l| is_message(l, "alice", "to both")).await;
        let got: Value = serde_json::from_str(&got).expect("event JSON");
        assert_eq!(got["path"], "direct", "{who} got it over a direct connection: {got}");
    }

    // What bob sends from one device shows in the other's history.
    assert_eq!(send(&pb, "alice", "from my desktop").await, "direct");
    alice.wait_line(T, "alice gets it", |l| is_message(l, "bob", "from my desktop")).await;
    skein_tests::wait_for(T, "bob's laptop to have the copy", || {
        let pb2 = pb2.clone();
        async move { history(&pb2, "alice").await.iter().any(|m| m["text"] == "from my desktop").then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_direct_conversation_goes_on_through_a_tracker_outage_and_after_it() {
    let mut t = tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = profile(&t, dir.path(), "alice", "alice").await;
    let pb = profile(&t, dir.path(), "bob", "bob").await;
    let mut alice = daemon(&pa);
    let mut bob = daemon(&pb);
    connected(&mut alice).await;
    connected(&mut bob).await;
    assert_eq!(send_when_reachable(&pa, "bob", "before").await, "direct");
    bob.wait_line(T, "the first message", |l| is_message(l, "alice", "before")).await;

    t.stop().await;
    alice.wait_line(T, "alice to notice the outage", |l| l.contains("\"type\":\"disconnected\"")).await;
    // Bob is still a connected peer: the message goes straight to him.
    assert_eq!(send(&pa, "bob", "during").await, "direct");
    bob.wait_line(T, "the message sent during the outage", |l| is_message(l, "alice", "during")).await;

    t.restart().await;
    alice.wait_next(T, "alice to reconnect", |l| l.contains("\"type\":\"connected\"")).await;
    bob.wait_next(T, "bob to reconnect", |l| l.contains("\"type\":\"connected\"")).await;
    assert_eq!(send(&pa, "bob", "after").await, "direct");
    bob.wait_line(T, "the message after the restart", |l| is_message(l, "alice", "after")).await;
    let h = history(&pb, "alice").await;
    let texts: Vec<&str> = h.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, vec!["before", "during", "after"], "each exactly once");
}
