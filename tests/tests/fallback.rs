//! A send to a colleague whose device went away turns to the mailbox at
//! once rather than hanging: a daemon stopped with SIGTERM closes its peer
//! connections and its tracker session on the way out, so the next send to
//! it prints `queued` within a second; one killed with SIGKILL says nothing,
//! and a send waits one short attempt (not the connection's idle timeout)
//! before it is sealed to the mailbox, within 3 s. Every message still
//! arrives once when the device comes back.

use serde_json::Value;
use skein_tests::{Proc, online, skein, users_with_profiles};
use std::path::Path;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

/// `skein send bob TEXT`: what it printed and how long it took.
async fn timed_send(alice: &Path, text: &str) -> (String, Duration) {
    let start = Instant::now();
    let (ok, out, err) = skein(alice, &["send", "bob", text], None).await;
    assert!(ok, "send {text:?}: {err}");
    (out.trim().to_owned(), start.elapsed())
}

/// Sends each of `texts` to bob, whose daemon went away by `how`, and checks
/// each is queued within `limit`.
async fn queued_within(alice: &Path, texts: [&str; 2], limit: Duration, how: &str) {
    for text in texts {
        let (out, took) = timed_send(alice, text).await;
        assert!(out.contains("queued"), "bob's daemon is gone ({how}): {out}");
        assert!(took < limit, "{text:?} took {took:?} to be queued after {how}");
        println!("after {how}: {text:?} queued in {took:?}");
    }
}

/// Sends until bob's daemon has taken one directly, so a connection to it is up.
async fn send_direct(alice: &Path, bob_daemon: &mut Proc, text: &str) {
    let (out, _) = timed_send(alice, text).await;
    assert!(out.contains("direct"), "bob is online and should take {text:?} directly: {out}");
    bob_daemon.wait_line(T, text, |l| l.contains(text)).await;
}

/// Waits for bob's daemon to exit after a signal.
async fn wait_exit(p: &mut Proc) {
    tokio::time::timeout(T, p.child.wait()).await.expect("bob's daemon exits").expect("wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_a_device_that_went_away_is_queued_at_once() {
    let (_t, _dir, [alice, bob]) = users_with_profiles(["alice", "bob"], PW).await;
    let _alice_daemon = online(&alice, &[]).await;

    // Stopped gracefully: the connection closes, and sends stop waiting.
    let mut bob_daemon = online(&bob, &[]).await;
    send_direct(&alice, &mut bob_daemon, "before the stop").await;
    let pid = bob_daemon.child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    wait_exit(&mut bob_daemon).await;
    queued_within(&alice, ["after the stop 1", "after the stop 2"], Duration::from_secs(1), "SIGTERM").await;

    // Killed: nothing tells alice; one short attempt, then the mailbox.
    let mut bob_daemon = online(&bob, &[]).await;
    send_direct(&alice, &mut bob_daemon, "before the kill").await;
    bob_daemon.kill().await;
    wait_exit(&mut bob_daemon).await;
    queued_within(&alice, ["after the kill 1", "after the kill 2"], Duration::from_secs(3), "SIGKILL").await;

    // Back again: everything is there, once.
    let mut bob_daemon = online(&bob, &[]).await;
    bob_daemon.wait_line(T, "the last queued message", |l| l.contains("after the kill 2")).await;
    let (ok, out, err) = skein(&bob, &["history", "alice", "--json"], None).await;
    assert!(ok, "{err}");
    let history: Vec<Value> = serde_json::from_str(&out).expect("json");
    let texts: Vec<&str> = history.iter().filter_map(|m| m["text"].as_str()).collect();
    for want in ["before the stop", "after the stop 1", "after the stop 2", "before the kill", "after the kill 1"] {
        assert_eq!(texts.iter().filter(|t| **t == want).count(), 1, "{want:?} in bob's history: {texts:?}");
    }
}
