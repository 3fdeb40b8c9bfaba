//! Relay fallback on loopback: with direct dialing disabled (`--relay-only`)
//! two daemons still exchange messages, through the tracker's relay, and
//! `skein peers` says so.

use serde_json::Value;
use skein_tests::{Proc, TestTracker, skein};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

async fn profile(t: &TestTracker, dir: &Path, user: &str) -> PathBuf {
    skein_tests::login_profile(t, dir, user, user, PW).await
}

fn relay_only_daemon(p: &Path) -> Proc {
    skein_tests::daemon(p, &["--relay-only"])
}

#[tokio::test]
async fn relay_only_daemons_talk_through_the_tracker_relay() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = profile(&t, dir.path(), "alice").await;
    let pb = profile(&t, dir.path(), "bob").await;
    let mut alice = relay_only_daemon(&pa);
    let mut bob = relay_only_daemon(&pb);
    alice.wait_line(T, "alice connected", |l| l.contains("\"type\":\"connected\"")).await;
    bob.wait_line(T, "bob connected", |l| l.contains("\"type\":\"connected\"")).await;

    // Until bob's relayed address is known to the tracker, sends are queued.
    let mut path = String::new();
    for _ in 0..100 {
        let (ok, out, err) = skein(&pa, &["send", "bob", "via the relay"], None).await;
        assert!(ok, "{err}");
        path = out.trim().to_owned();
        if path != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(path, "relayed");
    bob.wait_line(T, "bob gets the relayed message", |l| {
        serde_json::from_str::<Value>(l)
            .is_ok_and(|v| v["type"] == "message" && v["text"] == "via the relay" && v["path"] == "relayed")
    })
    .await;
    let (ok, out, err) = skein(&pa, &["peers", "--json"], None).await;
    assert!(ok, "{err}");
    let peers: Value = serde_json::from_str(&out).expect("peers JSON");
    let bob_entry = peers.as_array().and_then(|a| a.iter().find(|p| p["user"] == "bob")).cloned().expect("bob listed");
    assert_eq!(bob_entry["path"], "relayed");
    assert!(bob_entry["remote"].as_str().is_some_and(|r| r.contains("p2p-circuit")), "{bob_entry}");

    let stats = t.running().relay().stats().await;
    assert!(stats.total_relayed_bytes > 0, "the tracker counted the relayed bytes: {stats:?}");

    // Administrators read the same counts from outside the tracker process.
    let (ok, _, err) = skein(&pa, &["relay-stats", "--json"], None).await;
    assert!(!ok && err.contains("administrator"), "members may not: {err}");
    t.add_admin("boss", PW).await;
    let pboss = profile(&t, dir.path(), "boss").await;
    let (ok, out, err) = skein(&pboss, &["relay-stats", "--json"], None).await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("stats JSON");
    assert!(v["total_relayed_bytes"].as_u64().is_some_and(|n| n >= stats.total_relayed_bytes), "{v}");
    assert!(v["peers"].as_array().is_some_and(|p| !p.is_empty()), "{v}");
}
