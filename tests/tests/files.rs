//! File transfer end to end with real `skein daemon` processes and a real
//! tracker: an offer accepted automatically or by hand, verified bytes
//! under a safe name, progress events, `transfers --json` on both sides, a
//! declined offer, a receiver killed halfway that resumes, an offer to an
//! offline user made once both are online, and the organisation's size
//! limit.

use serde_json::Value;
use skein_tests::{Proc, TestTracker, skein};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(60);
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

/// A file of `len` pseudo-random bytes.
fn make_file(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, skein_tests::pseudo_random(len, seed)).expect("write test file");
    path
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

async fn transfers(p: &Path) -> Vec<Value> {
    let (ok, out, err) = skein(p, &["transfers", "--json"], None).await;
    assert!(ok, "transfers: {err}");
    serde_json::from_str::<Value>(&out).expect("transfers JSON").as_array().cloned().unwrap_or_default()
}

async fn transfer(p: &Path, id: &str) -> Value {
    let (ok, out, err) = skein(p, &["transfers", id, "--json"], None).await;
    assert!(ok, "transfers {id}: {err}");
    serde_json::from_str(&out).expect("transfer JSON")
}

fn same_bytes(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).expect("read a"), std::fs::read(b).expect("read b"));
    assert!(x.len() == y.len() && x == y, "{} and {} differ", a.display(), b.display());
}

#[tokio::test]
async fn an_auto_accepted_file_arrives_verified_under_a_safe_name() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice").await, profile(&t, dir.path(), "bob").await);
    let downloads = dir.path().join("bob-downloads");
    let dl = downloads.to_str().expect("utf-8");
    let _alice = daemon(&pa, &[]).await;
    let mut bob = daemon(&pb, &["--download-dir", dl, "--auto-accept"]).await;
    reach(&pa, "bob").await;

    // Five chunks and a bit, so the last chunk is short.
    let src = make_file(dir.path(), "report 2026.bin", 5 * 1024 * 1024 + 123, 1);
    let (ok, out, err) = skein(&pa, &["send-file", "bob", src.to_str().expect("utf-8"), "--json"], None).await;
    assert!(ok, "send-file: {err}");
    let done: Value = serde_json::from_str(&out).expect("send-file JSON");
    assert_eq!(done["state"], "completed", "send-file returns once bob has it verified: {done}");
    let id = done["id"].as_str().expect("id").to_owned();
    same_bytes(&src, &downloads.join("report 2026.bin"));

    // The receiver printed the offer and progress with rate, then completion.
    let offer = bob.wait_line(T, "the offer event", |l| event(l, "file_offer").is_some_and(|v| v["id"] == id)).await;
    assert!(offer.contains("report 2026.bin"), "{offer}");
    let last = bob
        .wait_line(T, "the completion event", |l| {
            event(l, "transfer").is_some_and(|v| v["id"] == id && v["state"] == "completed")
        })
        .await;
    let last: Value = serde_json::from_str(&last).expect("event JSON");
    assert_eq!(last["bytes_done"], done["size"]);
    assert!(
        bob.seen
            .iter()
            .filter_map(|l| event(l, "transfer"))
            .any(|v| v["rate_bps"].as_u64().is_some() && v["bytes_done"].as_u64().is_some()),
        "progress events carry bytes and rate: {:#?}",
        bob.seen
    );

    // Both sides list it.
    let theirs = transfer(&pb, &id).await;
    assert_eq!(
        (theirs["direction"].as_str(), theirs["peer"].as_str(), theirs["state"].as_str()),
        (Some("in"), Some("alice"), Some("completed"))
    );
    assert_eq!(theirs["path"], "direct");
    assert_eq!(theirs["bytes_done"], theirs["size"]);
    assert_eq!(theirs["name"], "report 2026.bin");
    let mine = transfers(&pa).await;
    let mine = mine.iter().find(|x| x["id"] == id.as_str()).expect("alice lists it");
    assert_eq!((mine["direction"].as_str(), mine["state"].as_str()), (Some("out"), Some("completed")));
    assert_eq!(mine["devices"][0]["chunks_sent"], 6, "each chunk sent once: {mine}");

    // A hostile name cannot leave the download folder.
    let evil = make_file(dir.path(), "innocent.txt", 1000, 2);
    let (ok, out, err) =
        skein(&pa, &["send-file", "bob", evil.to_str().expect("utf-8"), "--name", "../../etc/passwd", "--json"], None)
            .await;
    assert!(ok, "send-file with a hostile name: {err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let theirs = transfer(&pb, v["id"].as_str().expect("id")).await;
    let saved = PathBuf::from(theirs["saved_path"].as_str().expect("saved path"));
    assert_eq!(saved, std::fs::canonicalize(&downloads).expect("downloads").join("passwd"));
    same_bytes(&evil, &saved);
    assert!(!dir.path().join("etc").exists(), "nothing was written outside the download folder");

    // The history shows the offer as a message.
    let (ok, out, _) = skein(&pb, &["history", "alice", "--json"], None).await;
    assert!(ok);
    let h: Value = serde_json::from_str(&out).expect("history JSON");
    assert!(h.as_array().expect("list").iter().any(|m| m["file"]["name"] == "report 2026.bin"), "{h}");
}

/// Runs `skein ARGS` for `profile` in the background, returning the child.
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

#[tokio::test]
async fn an_offer_waits_for_accept_or_decline() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice").await, profile(&t, dir.path(), "bob").await);
    let _alice = daemon(&pa, &[]).await;
    let mut bob = daemon(&pb, &[]).await;
    reach(&pa, "bob").await;

    // Declined: the waiting sender hears so and fails.
    let src = make_file(dir.path(), "draft.odt", 300_000, 3);
    let sending = spawn_skein(&pa, &["send-file", "bob", src.to_str().expect("utf-8")]);
    let offer = bob.wait_line(T, "the first offer", |l| event(l, "file_offer").is_some()).await;
    let id = event(&offer, "file_offer").expect("offer")["id"].as_str().expect("id").to_owned();
    assert_eq!(transfer(&pb, &id).await["state"], "offered");
    let (ok, _, err) = skein(&pb, &["decline", &id], None).await;
    assert!(ok, "decline: {err}");
    let (ok, _, err) = finished(sending).await;
    assert!(!ok && err.contains("declined"), "send-file fails once declined: {err}");
    let (ok, _, err) = skein(&pb, &["accept", &id], None).await;
    assert!(!ok && err.contains("declined"), "a declined offer cannot be accepted: {err}");

    // Accepted by hand into a folder of bob's choosing.
    let (ok, out, err) = skein(
        &pa,
        &["send-file", "bob", src.to_str().expect("utf-8"), "--name", "final.odt", "--no-wait", "--json"],
        None,
    )
    .await;
    assert!(ok, "send-file --no-wait: {err}");
    let id = serde_json::from_str::<Value>(&out).expect("JSON")["id"].as_str().expect("id").to_owned();
    bob.wait_line(T, "the second offer", |l| event(l, "file_offer").is_some_and(|v| v["id"] == id.as_str())).await;
    let to = dir.path().join("chosen folder");
    let (ok, out, err) = skein(&pb, &["accept", &id, "--to", to.to_str().expect("utf-8")], None).await;
    assert!(ok, "accept: {err}");
    assert!(out.contains("final.odt"), "{out}");
    same_bytes(&src, &to.join("final.odt"));
    let (ok, _, err) = skein(&pb, &["accept", "not-an-id"], None).await;
    assert!(!ok && err.contains("not a transfer"), "{err}");
    let (ok, _, err) = skein(&pa, &["send-file", "bob", "/no/such/file"], None).await;
    assert!(!ok && err.contains("cannot open /no/such/file"), "{err}");
}

#[tokio::test]
async fn a_receiver_killed_halfway_resumes_byte_identical() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice").await, profile(&t, dir.path(), "bob").await);
    let downloads = dir.path().join("dl");
    let dl = downloads.to_str().expect("utf-8").to_owned();
    let _alice = daemon(&pa, &[]).await;
    let mut bob = daemon(&pb, &["--download-dir", &dl, "--auto-accept"]).await;
    reach(&pa, "bob").await;

    // Large enough that the transfer outlasts the first progress events
    // (every 500 ms): at 192 MiB one CI run finished before the receiver
    // reported a quarter.
    let chunks = 512u64;
    let src = make_file(dir.path(), "big.iso", (chunks as usize) << 20, 4);
    let sending = spawn_skein(&pa, &["send-file", "bob", src.to_str().expect("utf-8"), "--json"]);
    let halfway = bob
        .wait_line(T, "progress past a quarter", |l| {
            event(l, "transfer").is_some_and(|v| v["bytes_done"].as_u64().is_some_and(|d| d >= (chunks << 20) / 4))
        })
        .await;
    bob.kill().await;
    let at = event(&halfway, "transfer").expect("event")["bytes_done"].as_u64().expect("bytes");
    assert!(at < chunks << 20, "the receiver was killed before the end ({at} bytes)");
    assert!(!downloads.join("big.iso").exists(), "an incomplete file never appears under its name");

    // Restarted, it resumes on its own and the sender's command completes.
    let mut bob = daemon(&pb, &["--download-dir", &dl, "--auto-accept"]).await;
    let (ok, out, err) = finished(sending).await;
    assert!(ok, "send-file completes after the receiver restarts: {err}");
    let done: Value = serde_json::from_str(&out).expect("JSON");
    same_bytes(&src, &downloads.join("big.iso"));
    // The sender's counts of the last stream are saved as it ends.
    let id = done["id"].as_str().expect("id");
    let mut sent = 0;
    for _ in 0..50 {
        sent = transfer(&pa, id).await["devices"][0]["chunks_sent"].as_u64().expect("chunks sent");
        if sent >= chunks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent >= chunks, "every chunk was sent: {sent}");
    eprintln!("resume: {} of {chunks} chunks were sent twice (window {WINDOW})", sent - chunks);
    assert!(sent - chunks <= WINDOW, "at most one window of chunks was sent twice: {} of {chunks}", sent - chunks);
    bob.wait_line(T, "completion after the restart", |l| {
        event(l, "transfer").is_some_and(|v| v["state"] == "completed")
    })
    .await;
    let left: Vec<_> = std::fs::read_dir(&downloads).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "no temporary files are left: {left:?}");
}

#[tokio::test]
async fn an_offer_to_an_offline_user_is_made_when_both_are_online() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice").await, profile(&t, dir.path(), "bob").await);
    let downloads = dir.path().join("dl");
    let dl = downloads.to_str().expect("utf-8").to_owned();
    let mut alice = daemon(&pa, &[]).await;

    // Bob has logged in but his device is off: the offer waits in his mailbox.
    let src = make_file(dir.path(), "minutes.txt", 70_000, 5);
    let (ok, out, err) =
        skein(&pa, &["send-file", "bob", src.to_str().expect("utf-8"), "--no-wait", "--json"], None).await;
    assert!(ok, "send-file to an offline user: {err}");
    let offer: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(offer["path"], "queued");
    let id = offer["id"].as_str().expect("id").to_owned();

    // Then alice goes offline too, and bob comes online: he sees the offer
    // but cannot fetch it until alice is back.
    alice.kill().await;
    let mut bob = daemon(&pb, &["--download-dir", &dl, "--auto-accept"]).await;
    bob.wait_line(T, "the offer from the mailbox", |l| event(l, "file_offer").is_some_and(|v| v["id"] == id.as_str()))
        .await;
    bob.wait_line(T, "the fetch waiting for alice", |l| {
        event(l, "transfer").is_some_and(|v| v["id"] == id.as_str() && v["state"] == "waiting")
    })
    .await;
    assert!(!downloads.join("minutes.txt").exists());

    let _alice = daemon(&pa, &[]).await;
    bob.wait_line(T, "the transfer once alice is back", |l| {
        event(l, "transfer").is_some_and(|v| v["id"] == id.as_str() && v["state"] == "completed")
    })
    .await;
    same_bytes(&src, &downloads.join("minutes.txt"));
    // Alice learns it arrived.
    for _ in 0..100 {
        if transfer(&pa, &id).await["state"] == "completed" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("alice never learned that bob has the file: {}", transfer(&pa, &id).await);
}

#[tokio::test]
async fn the_organisation_size_limit_holds_on_both_ends() {
    let t = TestTracker::start_with(|mut c| {
        c.max_file_size = 1 << 20;
        c
    })
    .await;
    t.add_user("alice", PW).await;
    t.add_user("bob", PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice").await, profile(&t, dir.path(), "bob").await);
    let downloads = dir.path().join("bob-downloads");
    let _alice = daemon(&pa, &[]).await;
    let mut bob = daemon(&pb, &["--download-dir", downloads.to_str().expect("utf-8"), "--auto-accept"]).await;

    // The sender refuses to offer a file over the limit...
    let big = make_file(dir.path(), "big.bin", (1 << 20) + 1, 6);
    let (ok, _, err) = skein(&pa, &["send-file", "bob", big.to_str().expect("utf-8")], None).await;
    assert!(!ok && err.contains("larger than the 1.0 MiB your organisation allows"), "{err}");
    let small = make_file(dir.path(), "small.bin", 1 << 20, 7);
    let (ok, _, err) = skein(&pa, &["send-file", "bob", small.to_str().expect("utf-8"), "--no-wait"], None).await;
    assert!(ok, "a file at the limit may be sent: {err}");

    // ...and the receiver refuses to fetch one that a sender skipping that
    // check offers anyway: no automatic accept, and no accept by hand.
    let mallory = skein_tests::RawDevice::login(&t, &dir.path().join("alice-script"), "alice", PW).await;
    let offer = skein_proto::file::FileOffer {
        name: "over.bin".into(),
        size: (1 << 20) + 1,
        root: skein_proto::bytes::ContentHash([7; 32]),
    };
    let (id, answers) = mallory.deliver("bob", skein_proto::peer::MessageBody::File(offer)).await;
    assert!(
        answers.iter().all(|a| matches!(a, skein_proto::peer::PeerResponse::Stored { .. })),
        "the offer itself is stored, as any offer under the protocol's own limit: {answers:?}"
    );
    let id = id.to_hex();
    bob.wait_line(T, "the oversized offer", |l| event(l, "file_offer").is_some_and(|v| v["id"] == id.as_str())).await;
    let (ok, _, err) = skein(&pb, &["accept", &id], None).await;
    assert!(!ok && err.contains("larger than the 1.0 MiB your organisation allows"), "bob's accept: {err}");
    // The small file was accepted automatically; the big one never was.
    bob.wait_line(T, "the small file to arrive", |l| {
        event(l, "transfer").is_some_and(|v| v["name"] == "small.bin" && v["state"] == "completed")
    })
    .await;
    let theirs = transfer(&pb, &id).await;
    assert_eq!(theirs["state"], "offered", "bob never fetched the oversized file: {theirs}");
    assert!(!downloads.join("over.bin").exists());
}

#[tokio::test]
#[ignore = "needs root: mounts a small tmpfs (scripts/test runs it when root)"]
async fn accepting_checks_the_disk_has_room() {
    assert!(
        skein_tests::lab::is_root(),
        "this test mounts an 8 MiB tmpfs to fill, which needs root: run it as root (scripts/test does when root)"
    );
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice").await, profile(&t, dir.path(), "bob").await);
    let small = dir.path().join("small-disk");
    std::fs::create_dir_all(&small).expect("mount point");
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&small)
        .status()
        .expect("mount");
    assert!(mount.success(), "mounting a tmpfs failed");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());

    let _alice = daemon(&pa, &[]).await;
    let mut bob = daemon(&pb, &[]).await;
    reach(&pa, "bob").await;
    let src = make_file(dir.path(), "video.mp4", 2 << 20, 8);
    let (ok, out, err) =
        skein(&pa, &["send-file", "bob", src.to_str().expect("utf-8"), "--no-wait", "--json"], None).await;
    assert!(ok, "{err}");
    let id = serde_json::from_str::<Value>(&out).expect("JSON")["id"].as_str().expect("id").to_owned();
    bob.wait_line(T, "the offer", |l| event(l, "file_offer").is_some_and(|v| v["id"] == id.as_str())).await;
    let (ok, _, err) = skein(&pb, &["accept", &id, "--to", small.to_str().expect("utf-8")], None).await;
    assert!(!ok && err.contains("not enough disk space"), "{err}");
    assert_eq!(transfer(&pb, &id).await["state"], "offered", "the offer can still be accepted elsewhere");
    let elsewhere = dir.path().join("roomy");
    let (ok, _, err) = skein(&pb, &["accept", &id, "--to", elsewhere.to_str().expect("utf-8")], None).await;
    assert!(ok, "{err}");
    same_bytes(&src, &elsewhere.join("video.mp4"));
}
