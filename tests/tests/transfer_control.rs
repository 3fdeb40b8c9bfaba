//! Controlling file transfers end to end, with real `skein daemon`
//! processes and a real tracker: a transfer resumes after the SENDER's
//! daemon is killed and started again, `decline` stops a transfer that is
//! under way, and `--auto-accept-max-mib` accepts offers up to its limit
//! only.

use serde_json::Value;
use skein_node::history::History;
use skein_proto::bytes::MailId;
use skein_tests::{Proc, TestTracker, skein};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;
/// Chunks the receiver keeps asked for but not yet recorded (`receive::WINDOW`).
const WINDOW: u64 = 16;

async fn profile(t: &TestTracker, dir: &Path, user: &str) -> PathBuf {
    skein_tests::login_profile(t, dir, user, user, PW).await
}

async fn daemon(p: &Path, extra: &[&str]) -> Proc {
    let mut d = skein_tests::daemon(p, extra);
    d.wait_line(T, "the daemon to connect", |l| l.contains("\"type\":\"connected\"")).await;
    d
}

fn event(line: &str, kind: &str) -> Option<Value> {
    serde_json::from_str::<Value>(line).ok().filter(|v| v["type"] == kind)
}

/// A `transfer` event of transfer `id`.
fn transfer_event(line: &str, id: &str) -> Option<Value> {
    event(line, "transfer").filter(|v| v["id"] == id)
}

fn make_file(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, skein_tests::pseudo_random(len, seed)).expect("write test file");
    path
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Sends texts until `to` is reachable directly, so later offers go straight to it.
async fn reach(from: &Path, to: &str) {
    for i in 0..50 {
        let (ok, out, err) = skein(from, &["send", to, &format!("ping {i}")], None).await;
        assert!(ok, "send: {err}");
        if out.trim() == "direct" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{to} never became reachable");
}

async fn transfer(p: &Path, id: &str) -> Value {
    let (ok, out, err) = skein(p, &["transfers", id, "--json"], None).await;
    assert!(ok, "transfers {id}: {err}");
    serde_json::from_str(&out).expect("transfer JSON")
}

/// Offers `file` to `to` without waiting; returns the transfer id.
async fn offer(from: &Path, to: &str, file: &Path) -> String {
    let (ok, out, err) = skein(from, &["send-file", to, utf8(file), "--no-wait", "--json"], None).await;
    assert!(ok, "send-file: {err}");
    serde_json::from_str::<Value>(&out).expect("JSON")["id"].as_str().expect("id").to_owned()
}

fn same_bytes(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).expect("read a"), std::fs::read(b).expect("read b"));
    assert!(x.len() == y.len() && x == y, "{} and {} differ", a.display(), b.display());
}

fn spawn_skein(profile: &Path, args: &[&str]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(skein_tests::bin("skein"));
    cmd.arg("--profile").arg(profile).args(args).stdin(std::process::Stdio::null());
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    cmd.spawn().expect("spawn skein")
}

async fn finished(child: tokio::process::Child) -> (bool, String, String) {
    let out =
        tokio::time::timeout(T * 3, child.wait_with_output()).await.expect("skein finished in time").expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Chunks the sender's history records as sent for `id`, read from its
/// database while its daemon is stopped.
async fn chunks_recorded(p: &Path, id: &str) -> u64 {
    let history = History::open(&p.join("history.db")).await.expect("open the sender's history");
    let targets = history.targets(MailId::from_hex(id).expect("id")).await.expect("targets");
    history.close().await;
    targets.iter().map(|t| t.chunks_sent).sum()
}

#[tokio::test]
async fn a_sender_killed_halfway_resumes_when_it_restarts() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice").await, profile(&t, dir.path(), "bob").await);
    let downloads = dir.path().join("dl");
    let mut alice = daemon(&pa, &[]).await;
    let mut bob = daemon(&pb, &["--download-dir", utf8(&downloads), "--auto-accept"]).await;
    reach(&pa, "bob").await;

    // Progress is reported twice a second: on a fast machine a file can
    // arrive whole before its first report past a quarter. Then a larger
    // one is sent, until the sender can be killed with the file under way.
    let mut attempt = 0;
    let (chunks, src, name, id, at) = loop {
        attempt += 1;
        let chunks = 192u64 << (2 * (attempt - 1));
        let name = format!("archive-{attempt}.tar");
        let src = make_file(dir.path(), &name, (chunks * MIB) as usize, 11);
        let id = offer(&pa, "bob", &src).await;
        let halfway = bob
            .wait_line(T, "progress past a quarter", |l| {
                transfer_event(l, &id).is_some_and(|v| v["bytes_done"].as_u64().is_some_and(|d| d >= chunks * MIB / 4))
            })
            .await;
        let at = event(&halfway, "transfer").expect("event")["bytes_done"].as_u64().expect("bytes");
        if at < chunks * MIB {
            alice.kill().await;
            break (chunks, src, name, id, at);
        }
        assert!(attempt < 3, "even {chunks} MiB arrived whole before its first report past a quarter");
        eprintln!("{chunks} MiB arrived before the sender could be killed; sending a larger file");
        std::fs::remove_file(&src).expect("remove the sent file");
    };
    let seen_before_kill = bob.seen.len();
    assert!(!downloads.join(&name).exists(), "an incomplete file never appears under its name");
    let recorded_before = chunks_recorded(&pa, &id).await;

    // The sender's daemon starts again at once and the transfer completes.
    let _alice = daemon(&pa, &[]).await;
    bob.wait_line(T, "completion after the sender restarted", |l| {
        transfer_event(l, &id).is_some_and(|v| v["state"] == "completed")
    })
    .await;
    same_bytes(&src, &downloads.join(&name));
    assert_eq!(transfer(&pb, &id).await["state"], "completed");

    // It resumed, not restarted: the receiver's progress never went back
    // below what it had before the kill ...
    for v in bob.seen[seen_before_kill..].iter().filter_map(|l| transfer_event(l, &id)) {
        if let Some(done) = v["bytes_done"].as_u64() {
            assert!(done >= at, "progress went back from {at} to {done} after the sender restarted: {v}");
        }
    }
    // ... and the restarted sender sent only what was missing, give or
    // take one window of chunks in flight at the kill.
    let after = skein_tests::wait_for(T, "the sender to learn the file arrived", || {
        let pa = pa.clone();
        let id = id.clone();
        async move {
            let v = transfer(&pa, &id).await;
            (v["state"] == "completed" && v["rate_bps"].is_null()).then(|| {
                v["devices"].as_array().map_or(0, |d| d.iter().filter_map(|x| x["chunks_sent"].as_u64()).sum())
            })
        }
    })
    .await;
    let resent = after - recorded_before;
    let missing = chunks - at / MIB;
    eprintln!("after the restart the sender sent {resent} chunks; {missing} were missing (window {WINDOW})");
    assert!(resent >= 1, "the restarted sender served the rest");
    assert!(resent <= missing + WINDOW, "the restarted sender sent {resent} chunks, more than the {missing} missing");
}

#[tokio::test]
async fn decline_stops_a_transfer_in_progress() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice").await, profile(&t, dir.path(), "bob").await);
    let downloads = dir.path().join("dl");
    let _alice = daemon(&pa, &[]).await;
    let mut bob = daemon(&pb, &["--download-dir", utf8(&downloads), "--auto-accept"]).await;
    reach(&pa, "bob").await;

    // Large enough that the decline lands while the transfer is under way:
    // a debug build on a quiet machine sent all of 192 MiB before it did.
    let chunks = 512u64;
    let src = make_file(dir.path(), "video.mkv", (chunks * MIB) as usize, 12);
    let sending = spawn_skein(&pa, &["send-file", "bob", utf8(&src), "--json"]);
    let offer = bob.wait_line(T, "the offer", |l| event(l, "file_offer").is_some()).await;
    let id = event(&offer, "file_offer").expect("offer")["id"].as_str().expect("id").to_owned();
    bob.wait_line(T, "the transfer under way", |l| {
        transfer_event(l, &id).is_some_and(|v| v["state"] == "receiving" && v["bytes_done"].as_u64() > Some(0))
    })
    .await;
    let (ok, _, err) = skein(&pb, &["decline", &id], None).await;
    assert!(ok, "decline of a transfer under way: {err}");

    // The waiting sender hears so and fails ...
    let (ok, _, err) = finished(sending).await;
    assert!(!ok && err.contains("declined"), "send-file fails once declined: {err}");
    // ... and stops serving: its stream for the transfer ends.
    let stopped = skein_tests::wait_for(T, "the sender's stream to end", || {
        let pa = pa.clone();
        let id = id.clone();
        async move {
            let v = transfer(&pa, &id).await;
            v["rate_bps"].is_null().then_some(v)
        }
    })
    .await;
    assert_eq!(stopped["state"], "declined", "{stopped}");
    let sent: u64 = stopped["devices"][0]["chunks_sent"].as_u64().expect("chunks sent");
    assert!(sent < chunks, "the transfer was stopped before the end ({sent} of {chunks} chunks)");
    let mine = transfer(&pb, &id).await;
    assert_eq!(mine["state"], "declined", "{mine}");

    // A later file goes through on the same connection while nothing more
    // of the declined one moves.
    let later = make_file(dir.path(), "notes.txt", (3 * MIB) as usize, 13);
    let (ok, out, err) = skein(&pa, &["send-file", "bob", utf8(&later), "--json"], None).await;
    assert!(ok, "a later file: {err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("JSON")["state"], "completed");
    same_bytes(&later, &downloads.join("notes.txt"));
    let theirs = transfer(&pb, &id).await;
    assert_eq!(
        (theirs["state"].as_str(), theirs["bytes_done"].as_u64()),
        (Some("declined"), mine["bytes_done"].as_u64())
    );
    let again = transfer(&pa, &id).await;
    assert!(again["rate_bps"].is_null(), "the sender serves the declined file again: {again}");
    assert_eq!(again["devices"][0]["chunks_sent"].as_u64(), Some(sent), "chunks kept going out after the decline");
    assert!(!downloads.join("video.mkv").exists(), "a declined file never appears under its name");
    let left: Vec<_> = std::fs::read_dir(&downloads).expect("dir").flatten().map(|e| e.file_name()).collect();
    eprintln!("left in the download folder after the decline: {left:?}");
}

#[tokio::test]
async fn auto_accept_takes_offers_up_to_its_limit_only() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice").await, profile(&t, dir.path(), "bob").await);
    let downloads = dir.path().join("dl");
    let _alice = daemon(&pa, &[]).await;
    let mut bob =
        daemon(&pb, &["--download-dir", utf8(&downloads), "--auto-accept", "--auto-accept-max-mib", "1"]).await;
    reach(&pa, "bob").await;

    // Over the limit: offered first, and left waiting for bob.
    let big = make_file(dir.path(), "big.bin", (MIB + 1) as usize, 14);
    let big_id = offer(&pa, "bob", &big).await;
    bob.wait_line(T, "the big offer", |l| event(l, "file_offer").is_some_and(|v| v["id"] == big_id.as_str())).await;

    // At the limit: accepted and received with nobody asking, while the
    // earlier, bigger offer still waits.
    let small = make_file(dir.path(), "small.bin", MIB as usize, 15);
    let (ok, out, err) = skein(&pa, &["send-file", "bob", utf8(&small), "--json"], None).await;
    assert!(ok, "a file at the limit is auto-accepted: {err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("JSON")["state"], "completed");
    same_bytes(&small, &downloads.join("small.bin"));

    assert_eq!(transfer(&pb, &big_id).await["state"], "offered", "a file over the limit is offered, not accepted");
    assert_eq!(transfer(&pa, &big_id).await["state"], "offered", "the sender hears of no acceptance");
    assert!(!downloads.join("big.bin").exists());
    assert!(
        !bob.seen.iter().any(|l| transfer_event(l, &big_id).is_some()),
        "no transfer of the big file started: {:#?}",
        bob.seen
    );

    // Bob can still take it by hand.
    let (ok, _, err) = skein(&pb, &["accept", &big_id], None).await;
    assert!(ok, "accept by hand: {err}");
    same_bytes(&big, &downloads.join("big.bin"));
}
