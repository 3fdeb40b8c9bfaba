//! Two README claims about sessions, end to end with the real `skein`
//! binary and a real tracker:
//! - commands run while no daemon runs open a short session of their own
//!   (or none), and never make the user appear online to others;
//! - session tokens are stored only as keyed BLAKE3 hashes: the tracker's
//!   SQLite files, read byte by byte after logins and resumes, hold no
//!   profile's token in any encoding, but do hold its hash.

use base64::Engine;
use serde_json::Value;
use skein_node::profile::Profile;
use skein_proto::bytes::SessionToken;
use skein_proto::control::{Event, PresenceStatus, Request, Response, Subscription};
use skein_tests::{TestTracker, skein};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

/// `skein login` for `user` into `dir/user`, as a user would.
async fn cli_login(t: &TestTracker, dir: &Path, user: &str) -> PathBuf {
    let p = dir.join(user);
    let ca = t.ca_path();
    let (ok, out, err) =
        skein(&p, &["login", "--tracker", &t.address(), "--ca", ca.to_str().expect("utf-8"), "--user", user], Some(PW))
            .await;
    assert!(ok, "login {user}: {err}");
    assert!(out.contains(&format!("Logged in as {user}")), "{out}");
    p
}

/// Every presence push about `user` received so far.
fn drain(events: &mut mpsc::Receiver<Event>, user: &str, into: &mut Vec<PresenceStatus>) {
    while let Ok(ev) = events.try_recv() {
        if let Event::Presence(e) = ev
            && e.user == user
        {
            into.push(e.status);
        }
    }
}

#[tokio::test]
async fn commands_without_a_daemon_never_show_the_user_online() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Alice watches everyone's presence from before bob's first login.
    let alice = skein_tests::login(&t, &dir.path().join("alice"), "alice", PW).await;
    let mut events = alice.events;
    let snap = alice.client.request(Request::SubscribePresence(Subscription::All)).await.expect("subscribe");
    let Response::PresenceSnapshot(snap) = snap else { panic!("expected a snapshot, got {snap:?}") };
    assert!(snap.iter().any(|e| e.user == "bob" && e.status == PresenceStatus::Offline), "{snap:?}");

    let pb = cli_login(&t, dir.path(), "bob").await;
    let mut pushes = Vec::new();
    // Commands that open a session of their own, and ones that need none.
    for args in [
        &["presence", "--json"][..],
        &["directory", "--json"],
        &["departments", "--json"],
        &["history", "alice", "--json"],
        &["status", "busy"],
        &["presence", "--json"],
    ] {
        let (ok, out, err) = skein(&pb, args, None).await;
        assert!(ok, "skein {args:?}: {err}");
        if args[0] == "presence" {
            let list: Value = serde_json::from_str(&out).expect("presence JSON");
            let me = list.as_array().and_then(|l| l.iter().find(|e| e["user"] == "bob")).expect("bob listed");
            assert_eq!(me["status"], "offline", "bob sees himself offline: {me}");
        }
        drain(&mut events, "bob", &mut pushes);
    }
    // Commands that need the daemon refuse; they must not count either.
    for args in [&["send", "alice", "hello"][..], &["peers", "--json"], &["transfers", "--json"]] {
        let (ok, _, err) = skein(&pb, args, None).await;
        assert!(!ok && err.contains("no daemon is running"), "skein {args:?}: {err}");
        drain(&mut events, "bob", &mut pushes);
    }
    let Response::PresenceSnapshot(now) =
        alice.client.request(Request::SubscribePresence(Subscription::All)).await.expect("snapshot")
    else {
        panic!("expected a snapshot")
    };
    let bob_now = now.iter().find(|e| e.user == "bob").expect("bob listed");
    assert_eq!(bob_now.status, PresenceStatus::Offline, "{bob_now:?}");

    // Control: bob's daemon does make him present (busy, as he chose), and
    // alice is told, so she would have been told of any earlier change.
    let mut daemon = skein_tests::daemon(&pb, &[]);
    daemon.wait_line(T, "bob's daemon to connect", |l| l.contains("\"type\":\"connected\"")).await;
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Presence(e))) if e.user == "bob" => {
                pushes.push(e.status);
                if e.status == PresenceStatus::Busy {
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("alice's event stream ended"),
            Err(_) => panic!("bob's daemon never showed him busy; pushes about bob: {pushes:?}"),
        }
    }
    let before_daemon = &pushes[..pushes.len() - 1];
    assert!(
        before_daemon.iter().all(|s| *s == PresenceStatus::Offline),
        "bob appeared present before his daemon ran: {pushes:?}"
    );
}

/// Every encoding of `bytes` a database might hold.
fn encodings(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    vec![
        ("raw", bytes.to_vec()),
        ("hex", hex::encode(bytes).into_bytes()),
        ("HEX", hex::encode_upper(bytes).into_bytes()),
        ("base64", STANDARD.encode(bytes).into_bytes()),
        ("base64 without padding", STANDARD_NO_PAD.encode(bytes).into_bytes()),
        ("base64url", URL_SAFE.encode(bytes).into_bytes()),
        ("base64url without padding", URL_SAFE_NO_PAD.encode(bytes).into_bytes()),
    ]
}

/// The tracker's SQLite files (database, WAL, shared memory) and their bytes.
fn database_files(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(data)
        .expect("data dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("tracker.db")))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read database file");
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(files.iter().any(|(p, _)| p.ends_with("tracker.db")), "no tracker.db in {}", data.display());
    files
}

fn find(files: &[(PathBuf, Vec<u8>)], needle: &[u8]) -> Option<PathBuf> {
    files.iter().find(|(_, hay)| hay.windows(needle.len()).any(|w| w == needle)).map(|(p, _)| p.clone())
}

fn token_of(profile: &Path) -> SessionToken {
    Profile::new(profile).session().expect("saved session").token().expect("token")
}

/// Checks the database files hold none of `tokens` but the hash of `current`.
fn check_tokens(data: &Path, tokens: &[SessionToken], current: &SessionToken) {
    let files = database_files(data);
    for token in tokens {
        for (how, needle) in encodings(&token.0) {
            assert!(
                find(&files, &needle).is_none(),
                "a session token ({how}) is stored in {:?}",
                find(&files, &needle)
            );
        }
    }
    // The scan does see the sessions table: the current token's hash is there.
    let hash = skein_tracker::auth::token_hash(current);
    assert!(
        encodings(&hash).iter().any(|(_, n)| find(&files, n).is_some()),
        "the current session's token hash is not in the database files, so the scan proves nothing"
    );
}

#[tokio::test]
async fn session_tokens_are_stored_only_as_hashes() {
    let mut t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = t.dir.path().to_path_buf();

    let pa = cli_login(&t, dir.path(), "alice").await;
    let pb = cli_login(&t, dir.path(), "bob").await;
    let mut tokens = vec![token_of(&pa), token_of(&pb)];
    // A resume rotates the token; the new one is no more stored than the old.
    let (ok, _, err) = skein(&pa, &["presence"], None).await;
    assert!(ok, "{err}");
    let rotated = token_of(&pa);
    assert!(!tokens.contains(&rotated), "a resume rotates the token");
    tokens.push(rotated);
    // A daemon's session too, while it runs.
    let mut daemon = skein_tests::daemon(&pb, &[]);
    daemon.wait_line(T, "bob's daemon to connect", |l| l.contains("\"type\":\"connected\"")).await;
    tokens.push(token_of(&pb));

    // While the tracker runs (recent writes may be in the WAL) ...
    check_tokens(&data, &tokens, &rotated);
    daemon.kill().await;
    // ... and once it has stopped and its files are settled.
    t.stop().await;
    check_tokens(&data, &tokens, &rotated);
}
