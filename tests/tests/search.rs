//! `skein search` with the real binary against a real tracker: two users
//! talk directly and in a group, then each finds the messages in their own
//! history, with no daemon running, named by the conversation they are in
//! on that side; user input is never a syntax error.

use serde_json::Value;
use skein_tests::{Proc, daemon, login_profile, skein, tracker_with_users};
use std::path::Path;
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

async fn connected(d: &mut Proc) {
    d.wait_line(T, "the daemon to connect", |l| l.contains(r#""type":"connected""#)).await;
}

/// Waits for the daemon to print a message from `from` with `text`.
async fn received(d: &mut Proc, from: &str, text: &str) {
    d.wait_line(T, &format!("{from}'s {text:?}"), |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == "message" && v["from"] == from && v["text"] == text)
    })
    .await;
}

async fn send(from: &Path, to: &str, text: &str) {
    let (ok, _, err) = skein(from, &["send", to, text], None).await;
    assert!(ok, "send {text:?} to {to}: {err}");
}

/// `skein search QUERY --json` as (conversation, from, text) triples, sorted.
async fn search(profile: &Path, query: &str) -> Vec<(String, String, String)> {
    let (ok, out, err) = skein(profile, &["search", query, "--json"], None).await;
    assert!(ok, "search {query:?}: {err}");
    let mut hits: Vec<(String, String, String)> = json(&out)
        .as_array()
        .expect("an array")
        .iter()
        .map(|h| {
            let field = |k: &str| h[k].as_str().unwrap_or_else(|| panic!("no {k} in {h}")).to_owned();
            assert_eq!(h["id"].as_str().map(str::len), Some(32), "{h}");
            assert!(h["sent_at_ms"].as_u64().is_some_and(|t| t > 0), "{h}");
            assert!(field("snippet").contains('\u{2}'), "the snippet marks the match: {h}");
            (field("conversation"), field("from"), field("text"))
        })
        .collect();
    hits.sort();
    hits
}

/// Hits as [`search`] gives them: sorted.
fn hits<const N: usize>(expected: [(&str, &str, &str); N]) -> Vec<(String, String, String)> {
    let mut hits: Vec<_> = expected.iter().map(|&(c, f, t)| (c.to_owned(), f.to_owned(), t.to_owned())).collect();
    hits.sort();
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_finds_the_messages_in_its_own_conversations() {
    let t = tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = login_profile(&t, dir.path(), "alice", "alice", PW).await;
    let bob = login_profile(&t, dir.path(), "bob", "bob", PW).await;
    let (ok, out, err) = skein(&alice, &["group", "create", "team", "--members", "bob", "--json"], None).await;
    assert!(ok, "{err}");
    let team = format!("#{}", json(&out)["id"].as_str().expect("group id"));

    let mut alice_daemon = daemon(&alice, &[]);
    let mut bob_daemon = daemon(&bob, &[]);
    connected(&mut alice_daemon).await;
    connected(&mut bob_daemon).await;
    let (to_bob, to_alice, to_team) =
        ("Quarterly budget review at 3pm", "Budget approved, 预算已批准", "the offsite budget for the team");
    send(&alice, "bob", to_bob).await;
    received(&mut bob_daemon, "alice", to_bob).await;
    send(&bob, "alice", to_alice).await;
    received(&mut alice_daemon, "bob", to_alice).await;
    send(&alice, "#team", to_team).await;
    received(&mut bob_daemon, "alice", to_team).await;
    // The history is read directly: no daemon is needed.
    alice_daemon.kill().await;
    bob_daemon.kill().await;

    assert_eq!(
        search(&alice, "BUDGET").await,
        hits([("bob", "alice", to_bob), ("bob", "bob", to_alice), (&team, "alice", to_team)])
    );
    assert_eq!(
        search(&bob, "budget").await,
        hits([("alice", "alice", to_bob), ("alice", "bob", to_alice), (&team, "alice", to_team)])
    );
    assert_eq!(search(&bob, "预算").await, hits([("alice", "bob", to_alice)]), "two Chinese characters");
    assert_eq!(search(&alice, "approv").await, hits([("bob", "bob", to_alice)]), "part of a word");
    assert!(search(&alice, "holiday").await.is_empty());

    // For people: one line per hit, newest first among equals, the match in brackets.
    let (ok, out, err) = skein(&alice, &["search", "budget", "team", "--limit", "5"], None).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].ends_with(&format!("  {team}  alice: the offsite [budget] for the [team]")), "{out}");
    let (ok, out, err) = skein(&bob, &["search", "budget", "--limit", "1"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");

    // Whatever is typed is searched for, never a syntax error.
    for query in [r#"""#, "*", "NEAR(", "AND", "budget OR", r#""budget"*"#, "-x", "%", "(budget"] {
        let (ok, out, err) = skein(&alice, &["search", "--json", "--", query], None).await;
        assert!(ok && out.trim_start().starts_with('['), "{query:?}: {err}");
    }
    let (ok, _, err) = skein(&alice, &["search", "  "], None).await;
    assert!(!ok && err.starts_with("error: ") && err.contains("empty"), "{err}");
}
