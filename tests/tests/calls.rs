//! Calls, end to end on loopback: real daemons ring, answer and carry
//! GStreamer's test sources as Opus and H.264 (VP8 with a daemon that takes
//! only VP8) over their peer connection;
//! `skein call` prints the states and statistics; declines, busy lines,
//! missed calls (also to a user who is offline, through the mailbox) and
//! cancelled calls end as they should and leave their line in both users'
//! histories; a group call links every participant with every other and
//! leaves one line in the group's conversation; and a peer that sends
//! garbage on a media stream leaves the node serving.

use futures::AsyncWriteExt;
use serde_json::Value;
use skein_proto::call::{CallSignal, Invite, Media};
use skein_proto::media::{AUDIO_PROTOCOL, MediaPacket, StreamHead, VIDEO_PROTOCOL, VideoCodec};
use skein_tests::{Proc, RawDevice, online, skein, users_with_profiles};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

/// Calls encode and decode video in real time: these tests take turns, so
/// one's frame rate is not another's CPU.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every element a call needs, or a failure naming the package to install.
fn need_gstreamer() {
    skein_media::elements::init().expect("GStreamer");
    if let Err(e) = skein_media::elements::check(skein_media::NEEDED) {
        panic!("calls need GStreamer's plugins: {e} (scripts/test installs them)");
    }
}

/// What two daemons' test holds until it ends: its turn, its tracker and
/// its profiles' folder.
struct Held {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    _tracker: skein_tests::TestTracker,
    _dir: tempfile::TempDir,
}

/// Alice and bob on a tracker of their own, each with a daemon started with
/// the extra arguments given, once it is this test's turn.
async fn two_daemons(alice_args: &[&str], bob_args: &[&str]) -> (Held, [PathBuf; 2], [Proc; 2]) {
    skein_tests::init();
    need_gstreamer();
    let turn = ONE_AT_A_TIME.lock().await;
    let (t, dir, [alice, bob]) = users_with_profiles(["alice", "bob"], PW).await;
    let daemons = [online(&alice, alice_args).await, online(&bob, bob_args).await];
    (Held { _turn: turn, _tracker: t, _dir: dir }, [alice, bob], daemons)
}

/// H.264's encoder and decoder, or a failure naming the package to install.
fn need_h264() {
    if let Err(e) = skein_media::codecs::usable(&[VideoCodec::H264]) {
        panic!("this test calls in H.264: {e} (scripts/test installs it)");
    }
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

async fn history(profile: &Path, with: &str) -> String {
    let (ok, out, err) = skein(profile, &["history", with], None).await;
    assert!(ok, "history: {err}");
    out
}

/// Waits for `profile`'s history with `with` to show a line containing `text`.
async fn wait_history(profile: &Path, with: &str, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let h = history(profile, with).await;
        if h.contains(text) {
            return h;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} never showed {text:?}: {h}", profile.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for `profile`'s history with `with` to show the call's line
/// (containing `text`), and checks it shows only one.
async fn one_call_line(profile: &Path, with: &str, text: &str) {
    let h = wait_history(profile, with, text).await;
    assert_eq!(h.matches("[call]").count(), 1, "one line per call: {h}");
}

fn event(d: &Proc, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    d.seen.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| pred(v))
}

/// The daemon's event of its call reaching `state` (the call's own, not a
/// participant's).
async fn call_event(d: &mut Proc, state: &str) -> Value {
    let is = |l: &str| serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == "call" && v["state"] == state);
    let line = d.wait_line(T, &format!("the call {state}"), is).await;
    serde_json::from_str(&line).expect("event JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_second_video_call_between_two_daemons_is_direct_continuous_and_measured() {
    need_h264();
    let (_held, [alice, bob], [mut alice_d, mut bob_d]) = two_daemons(&[], &["--auto-answer", "--test-source"]).await;

    let (ok, out, err) = skein(&alice, &["call", "bob", "--test-source", "--seconds", "10", "--json"], None).await;
    assert!(ok, "skein call failed: {err}\n{out}");
    let lines = json_lines(&out);
    let states: Vec<&str> = lines.iter().filter(|l| l["type"] == "call").filter_map(|l| l["state"].as_str()).collect();
    assert_eq!(states.first(), Some(&"calling"), "{out}");
    assert!(states.contains(&"connected") && states.last() == Some(&"ended"), "{out}");
    let connected = lines.iter().find(|l| l["state"] == "connected").expect("connected");
    assert_eq!(connected["path"], "direct", "{connected}");

    let stats: Vec<&Value> = lines.iter().filter(|l| l["type"] == "call_stats").collect();
    assert!(stats.len() >= 8, "a statistics line a second: {out}");
    for s in &stats {
        for key in ["path", "rtt_ms", "loss_pct", "audio_kbps", "video_kbps", "fps", "frames_received", "audio_gaps"] {
            assert!(s.get(key).is_some(), "{key} missing from {s}");
        }
        assert_eq!(s["path"], "direct", "{s}");
    }
    let mid = stats[stats.len() / 2];
    assert!(mid["fps"].as_f64().unwrap_or(0.0) >= 20.0, "pictures arrive at about 30 a second: {mid}");
    assert!(mid["audio_kbps"].as_f64().unwrap_or(0.0) > 10.0, "audio flows: {mid}");
    assert!(mid["video_kbps"].as_f64().unwrap_or(0.0) > 50.0, "video flows: {mid}");
    let latency = mid["audio_latency_ms"].as_f64().expect("audio latency measured");
    assert!(latency > 0.0 && latency < 1000.0, "glass-to-glass latency from the capture stamps: {mid}");
    assert!(mid["video_latency_ms"].as_f64().is_some(), "video latency measured: {mid}");

    let alice_last: &Value = stats.last().expect("stats");
    assert_eq!(alice_last["final"], true, "the last line is the call's final figures: {alice_last}");
    let bob_end = call_event(&mut bob_d, "ended").await;
    let bob_last = &bob_end["stats"];
    assert_eq!(bob_end["reason"], "hung up by the other side", "{bob_end}");
    let bob_connected = event(&bob_d, |v| v["type"] == "call" && v["state"] == "connected").expect("bob connected");
    assert_eq!(bob_connected["path"], "direct", "{bob_connected}");
    // Each side decoded at least 90% of the pictures the other sent, and
    // its audio never had a hole over 100 ms.
    for (who, got, from) in [("alice", alice_last, bob_last), ("bob", bob_last, alice_last)] {
        let received = got["frames_received"].as_f64().expect("frames_received");
        let sent = from["frames_sent"].as_f64().expect("frames_sent");
        // 30 a second, less what an encoder short of CPU skips (a busy
        // 2-core machine runs both ends here).
        assert!(sent >= 150.0, "pictures at a real frame rate were sent to {who} in 10 s: {from}");
        assert!(received >= 0.9 * sent, "{who} decoded {received} of {sent} pictures: {got}");
        assert_eq!(got["audio_gaps"], 0, "{who}'s audio was continuous: {got}");
        // Both have H.264, so both send it.
        assert_eq!((&got["video_codec"], &got["send_video_codec"]), (&"h264".into(), &"h264".into()), "{got}");
    }

    // Both histories keep the call's line.
    for (profile, with) in [(&alice, "bob"), (&bob, "alice")] {
        one_call_line(profile, with, "[call] video call, 0:1").await;
    }
    for d in [&mut alice_d, &mut bob_d] {
        d.kill().await;
    }
}

/// A daemon that takes only VP8 is sent VP8 by one that has H.264 too,
/// and both ends decode what they get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_vp8_only_daemon_is_vp8_both_ways() {
    need_h264();
    let (_held, [alice, _], [mut alice_d, mut bob_d]) =
        two_daemons(&["--video-codec", "h264"], &["--auto-answer", "--test-source", "--video-codec", "vp8"]).await;

    let (ok, out, err) = skein(&alice, &["call", "bob", "--test-source", "--seconds", "5"], None).await;
    assert!(ok, "skein call failed: {err}\n{out}");
    assert!(out.contains("video VP8 "), "the statistics name the codec: {out}");
    let bob_end = call_event(&mut bob_d, "ended").await;
    let alice_end = call_event(&mut alice_d, "ended").await;
    for (who, got, from) in
        [("alice", &alice_end["stats"], &bob_end["stats"]), ("bob", &bob_end["stats"], &alice_end["stats"])]
    {
        assert_eq!((&got["video_codec"], &got["send_video_codec"]), (&"vp8".into(), &"vp8".into()), "{who}: {got}");
        let (received, sent) =
            (got["frames_received"].as_f64().unwrap_or(0.0), from["frames_sent"].as_f64().unwrap_or(0.0));
        assert!(sent >= 75.0 && received >= 0.9 * sent, "{who} decoded {received} of {sent} pictures: {got}");
    }

    // A codec asked for by name that does not exist is refused before the daemon starts.
    let (ok, _, err) = skein(&alice, &["daemon", "--video-codec", "av1"], None).await;
    assert!(!ok && err.contains("vp8 or h264"), "{err}");
    for d in [&mut alice_d, &mut bob_d] {
        d.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_call_answered_audio_only_sends_no_video_and_plays_the_audio_both_ways() {
    let (_held, [alice, bob], [mut alice_d, mut bob_d]) = two_daemons(&[], &[]).await;
    let calling = tokio::spawn({
        let alice = alice.clone();
        async move { skein(&alice, &["call", "bob", "--test-source", "--seconds", "4"], None).await }
    });
    bob_d.wait_next(T, "the ring", |l| l.contains(r#""state":"ringing""#)).await;
    assert!(skein(&bob, &["answer", "--audio-only", "--test-source"], None).await.0);
    let (ok, out, err) = calling.await.expect("join");
    assert!(ok, "{out}\n{err}");
    let alice_end = call_event(&mut alice_d, "ended").await;
    let bob_end = call_event(&mut bob_d, "ended").await;
    let (a, b) = (&alice_end["stats"], &bob_end["stats"]);
    // Bob's word that he takes no video reaches alice as her call starts;
    // the pictures of its first moment may leave before it.
    assert!(a["send_video_codec"].is_null() && a["frames_sent"].as_u64().is_some_and(|n| n <= 15), "{a}");
    assert!(b["frames_received"].as_u64().is_some_and(|n| n <= 15), "{b}");
    assert!(a["frames_received"] == 0 && b["frames_sent"] == 0, "bob sends no video: {a}\n{b}");
    // The audio went on, and each side decoded the other's: a playback
    // waiting for pictures that never come would stop at the first frame.
    for (who, st) in [("alice", a), ("bob", b)] {
        let decoded = st["call_latency_ms"]["audio"]["samples"].as_u64().unwrap_or(0);
        assert!(st["audio_sent"].as_u64().is_some_and(|n| n >= 150) && decoded >= 150, "{who}: {st}");
    }
    for d in [&mut alice_d, &mut bob_d] {
        d.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_takes_the_devices_for_its_next_calls_and_says_which_one_is_missing() {
    let (_held, [alice, _], [mut alice_d, mut bob_d]) = two_daemons(&[], &["--auto-answer", "--test-source"]).await;
    // The list is this machine's own, read without the daemon.
    let (ok, out, err) = skein(&alice, &["devices", "--json"], None).await;
    assert!(ok, "{err}");
    let found: Value = serde_json::from_str(&out).expect("devices JSON");
    let cameras: Vec<&str> = found
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["kind"] == "camera")
        .filter_map(|d| d["name"].as_str())
        .collect();

    let (ok, _, err) = skein(&alice, &["devices", "--camera", "No Such Camera"], None).await;
    assert!(!ok && err.contains(r#"no camera named "No Such Camera""#), "{err}");
    let (ok, out, err) = skein(&alice, &["devices", "--microphone", "default", "--json"], None).await;
    assert!(ok, "{err}");
    let chosen: Value = serde_json::from_str(&out).expect("choice JSON");
    assert!(chosen["microphone"].is_null() && chosen["camera"].is_null(), "{chosen}");
    assert_eq!(chosen["cameras"].as_array().map(Vec::len), Some(cameras.len()), "{chosen}");
    // A camera that is there is taken (where this machine has one).
    if let Some(camera) = cameras.first() {
        let (ok, out, err) = skein(&alice, &["devices", "--camera", camera], None).await;
        assert!(ok && out.contains(camera), "{out}{err}");
    } else {
        println!("no camera on this machine: choosing one that is there is not tried");
    }
    // A call from the system's default microphone, on a machine with none,
    // says so, and what to do.
    if found.as_array().into_iter().flatten().any(|d| d["kind"] == "microphone") {
        println!("this machine has a microphone: a call without one is not tried");
    } else {
        let (ok, out, err) = skein(&alice, &["call", "bob", "--audio-only", "--seconds", "3"], None).await;
        assert!(!ok && err.contains("no microphone found") && err.contains("--test-source"), "{out}\n{err}");
    }
    for d in [&mut alice_d, &mut bob_d] {
        d.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_busy_cancelled_and_unanswered_calls_end_so_and_leave_their_line() {
    skein_tests::init();
    need_gstreamer();
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_t, _dir, [alice, bob, carol]) = users_with_profiles(["alice", "bob", "carol"], PW).await;
    let mut alice_d = online(&alice, &[]).await;
    let mut bob_d = online(&bob, &["--test-source"]).await;
    let mut carol_d = online(&carol, &["--test-source"]).await;

    // Bad requests are refused with what to do.
    let (ok, _, err) = skein(&alice, &["call", "alice"], None).await;
    assert!(!ok && err.contains("you cannot call yourself"), "{err}");
    let (ok, _, err) = skein(&alice, &["call", "#team"], None).await;
    assert!(!ok && err.contains("#team"), "no such group: {err}");
    let (ok, _, err) = skein(&alice, &["hangup"], None).await;
    assert!(!ok && err.contains("no call to hang up"), "{err}");
    let (ok, _, err) = skein(&bob, &["answer"], None).await;
    assert!(!ok && err.contains("no call is ringing"), "{err}");

    // Bob declines.
    let calling = tokio::spawn({
        let alice = alice.clone();
        async move { skein(&alice, &["call", "bob", "--test-source"], None).await }
    });
    call_event(&mut bob_d, "ringing").await;
    let (ok, _, err) = skein(&bob, &["hangup"], None).await;
    assert!(ok, "{err}");
    let (ok, out, err) = calling.await.expect("join");
    assert!(!ok && out.contains("ringing") && err.contains("declined"), "{out}\n{err}");
    wait_history(&bob, "alice", "[call] video call declined").await;

    // Alice gives up while it rings: a missed call on bob's side.
    let calling = tokio::spawn({
        let alice = alice.clone();
        async move { skein(&alice, &["call", "bob", "--audio-only"], None).await }
    });
    let ringing = bob_d.wait_next(T, "the second ring", |l| l.contains(r#""state":"ringing""#)).await;
    assert!(ringing.contains(r#""media":"audio""#), "{ringing}");
    assert!(skein(&alice, &["hangup"], None).await.0);
    let (ok, _, err) = calling.await.expect("join");
    assert!(!ok && err.contains("cancelled"), "{err}");
    let missed = bob_d.wait_next(T, "the missed call", |l| l.contains(r#""state":"ended""#)).await;
    assert!(missed.contains(r#""reason":"missed""#), "{missed}");
    wait_history(&bob, "alice", "[call] missed audio call").await;
    wait_history(&alice, "bob", "[call] missed audio call").await;

    // Bob is in a call with carol: alice gets busy.
    let carol_call = tokio::spawn({
        let carol = carol.clone();
        async move { skein(&carol, &["call", "bob", "--audio-only", "--seconds", "4"], None).await }
    });
    bob_d.wait_next(T, "carol's ring", |l| l.contains(r#""state":"ringing""#) && l.contains("carol")).await;
    assert!(skein(&bob, &["answer", "--audio-only"], None).await.0);
    carol_d.wait_line(T, "carol connected", |l| l.contains(r#""state":"connected""#)).await;
    let (ok, _, err) = skein(&alice, &["call", "bob"], None).await;
    assert!(!ok && err.contains("busy"), "{err}");
    let (ok, out, err) = carol_call.await.expect("join");
    assert!(ok, "carol's call ended normally: {out}\n{err}");
    wait_history(&alice, "bob", "[call] video call not answered: busy").await;
    wait_history(&carol, "bob", "[call] audio call, 0:0").await;

    // Bob is offline: the call rings nowhere and the missed call waits in
    // his mailbox.
    bob_d.kill().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, out, err) = skein(&alice, &["call", "bob"], None).await;
    assert!(!ok && err.contains("no answer"), "{out}\n{err}");
    let mut bob_d = online(&bob, &[]).await;
    wait_history(&bob, "alice", "[call] missed video call").await;
    for d in [&mut alice_d, &mut bob_d, &mut carol_d] {
        d.kill().await;
    }
}

/// The `call_stats` events `d` printed for its leg with `with`.
fn leg_stats<'a>(d: &'a Proc, with: &'a str) -> impl Iterator<Item = Value> + 'a {
    d.seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(move |v| v["type"] == "call_stats" && v["with"] == with)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_call_links_every_participant_with_every_other_and_leaves_one_line() {
    skein_tests::init();
    need_gstreamer();
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_t, _dir, [alice, bob, carol, _dave, _erin]) =
        users_with_profiles(["alice", "bob", "carol", "dave", "erin"], PW).await;
    let mut alice_d = online(&alice, &[]).await;
    let mut bob_d = online(&bob, &["--auto-answer", "--test-source"]).await;
    let mut carol_d = online(&carol, &["--auto-answer", "--test-source"]).await;

    // A group over the limit is refused, saying what to do.
    let (ok, _, err) = skein(&alice, &["group", "create", "all", "--members", "bob,carol,dave,erin"], None).await;
    assert!(ok, "{err}");
    let (ok, _, err) = skein(&alice, &["call", "#all"], None).await;
    assert!(!ok && err.contains("at most 4"), "{err}");

    let (ok, out, err) = skein(&alice, &["group", "create", "team", "--members", "bob,carol", "--json"], None).await;
    assert!(ok, "{err}");
    let group: Value = serde_json::from_str(&out).expect("group JSON");
    let id = group["id"].as_str().expect("group id").to_owned();

    let (ok, out, err) =
        skein(&alice, &["call", "#team", "--test-source", "--audio-only", "--seconds", "6", "--json"], None).await;
    assert!(ok, "the group call connected and was hung up: {err}\n{out}");
    let lines = json_lines(&out);
    for user in ["bob", "carol"] {
        let joined = lines.iter().find(|l| l["type"] == "call_participant" && l["user"] == user);
        let joined = lines
            .iter()
            .find(|l| l["type"] == "call_participant" && l["user"] == user && l["state"] == "connected")
            .unwrap_or_else(|| panic!("{user} joined ({joined:?}): {out}"));
        assert_eq!(joined["path"], "direct", "{joined}");
        let stats: Vec<&Value> = lines.iter().filter(|l| l["type"] == "call_stats" && l["with"] == user).collect();
        assert!(stats.len() >= 4, "a statistics line a second from {user}: {out}");
        let mid = stats[stats.len() / 2];
        assert!(mid["audio_kbps"].as_f64().unwrap_or(0.0) > 10.0, "alice hears {user}: {mid}");
        assert_eq!(mid["audio_gaps"], 0, "{user}'s audio is continuous: {mid}");
    }
    let last = lines.last().expect("output");
    assert_eq!((&last["state"], &last["reason"]), (&Value::from("ended"), &Value::from("hung up")), "{last}");

    // Bob and carol linked up with each other, directly, and hear each
    // other; alice leaving does not end their call.
    let hears = |with: &'static str| {
        move |l: &str| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["type"] == "call_stats" && v["with"] == with && v["audio_kbps"].as_f64().unwrap_or(0.0) > 10.0
            })
        }
    };
    bob_d.wait_line(T, "bob hearing carol", hears("carol")).await;
    carol_d.wait_line(T, "carol hearing bob", hears("bob")).await;
    for d in [&mut bob_d, &mut carol_d] {
        d.wait_line(T, "alice leaving the call", |l| {
            l.contains(r#""type":"call""#)
                && l.contains(r#""state":"connected""#)
                && l.contains("hung up by the other side")
        })
        .await;
    }
    for (d, with) in [(&bob_d, "carol"), (&carol_d, "bob"), (&bob_d, "alice"), (&carol_d, "alice")] {
        let stats: Vec<Value> = leg_stats(d, with).collect();
        assert!(!stats.is_empty(), "a leg with {with}");
        assert!(stats.iter().all(|s| s["path"] == "direct"), "{stats:?}");
        assert!(stats.iter().any(|s| s["audio_kbps"].as_f64().unwrap_or(0.0) > 10.0), "audio from {with}: {stats:?}");
    }
    let (ok, _, err) = skein(&bob, &["hangup"], None).await;
    assert!(ok, "{err}");
    let bob_end = call_event(&mut bob_d, "ended").await;
    assert_eq!(bob_end["reason"], "hung up", "{bob_end}");
    let carol_end = call_event(&mut carol_d, "ended").await;
    assert_eq!(carol_end["reason"], "hung up by the others", "{carol_end}");
    assert_eq!(carol_end["group_name"], "team", "{carol_end}");

    // One line in the group's conversation, on every member's device.
    for profile in [&alice, &bob, &carol] {
        one_call_line(profile, &id, "[call] audio call, 0:0").await;
    }
    for d in [&mut alice_d, &mut bob_d, &mut carol_d] {
        d.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_stopped_mid_call_hangs_up_before_it_goes() {
    let (_held, [alice, _], [mut alice_d, mut bob_d]) = two_daemons(&[], &["--auto-answer", "--test-source"]).await;
    let calling = tokio::spawn({
        let alice = alice.clone();
        async move { skein(&alice, &["call", "bob", "--test-source", "--audio-only", "--json"], None).await }
    });
    call_event(&mut bob_d, "connected").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Ctrl-C on bob's daemon: alice hears a hang-up, not a broken call.
    let status = bob_d.interrupt("bob's daemon", T).await;
    assert!(status.success(), "bob's daemon stopped cleanly: {status}");
    let (ok, out, err) = calling.await.expect("join");
    assert!(ok, "alice's call ended with bob's hang-up: {err}\n{out}");
    let last = json_lines(&out).pop().expect("output");
    assert_eq!(last["reason"], "hung up by the other side", "{out}");
    alice_d.kill().await;
}

/// Finds `to`'s online device and connects `raw` to it.
async fn reach(raw: &RawDevice, to: &str) -> libp2p::PeerId {
    use skein_proto::control::{Request, Response};
    for _ in 0..150 {
        if let Ok(Response::Peer(p)) = raw.session.client.request(Request::LookupPeer { user: to.into() }).await
            && let Some(d) = p.online.iter().find(|d| !d.addresses.listen.is_empty())
        {
            let peer = libp2p::PeerId::from_bytes(&d.cert.body.peer_id).expect("peer id");
            let addrs = d.addresses.listen.iter().filter_map(|a| a.parse().ok()).collect();
            raw.mesh.connect(peer, addrs).await.expect("connect");
            return peer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{to} never came online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_media_stream_is_dropped_and_the_node_keeps_serving() {
    skein_tests::init();
    need_gstreamer();
    let _turn = ONE_AT_A_TIME.lock().await;
    let (t, dir, [alice, bob]) = users_with_profiles(["alice", "bob"], PW).await;
    let mut bob_d = online(&bob, &["--auto-answer", "--test-source"]).await;
    let mallory = RawDevice::login(&t, &dir.path().join("raw"), "alice", PW).await;
    let peer = reach(&mallory, "bob").await;
    let call = skein_proto::bytes::CallId([7; 16]);
    let invite = Invite { call, media: Media::Video, group: None, sent_at_ms: skein_node::now_ms() };
    let first = CallSignal::Invite(invite.clone());
    mallory.mesh.request(peer, skein_proto::peer::PeerRequest::Call(first)).await.expect("invite");
    call_event(&mut bob_d, "answering").await;
    mallory.mesh.request(peer, skein_proto::peer::PeerRequest::Call(CallSignal::Confirm(call))).await.expect("confirm");
    call_event(&mut bob_d, "connected").await;

    let frame = |m: &MediaPacket| skein_proto::frame::encode_frame(m, 1 << 20).expect("frame");
    let head = |group| skein_proto::frame::encode_frame(&StreamHead { call, group }, 64).expect("head");
    let mut streams = mallory.mesh.streams();
    // Audio: well-framed packets of noise, then a frame length far over the limit.
    let mut audio = streams.open_stream(peer, libp2p::StreamProtocol::new(AUDIO_PROTOCOL)).await.expect("audio");
    audio.write_all(&head(0)).await.expect("write");
    for seq in 0..50u32 {
        let noise = skein_tests::pseudo_random(120, u64::from(seq));
        let p =
            MediaPacket { seq, capture_us: skein_media::unix_us(), duration_us: 20_000, keyframe: true, data: noise };
        audio.write_all(&frame(&p)).await.expect("write");
    }
    // Numbers and lengths no encoder makes: the last number there is, and
    // a frame that claims to play for most of an hour.
    for (seq, duration_us) in [(u32::MAX, 20_000), (60, u32::MAX), (61, 0)] {
        let p = MediaPacket { seq, capture_us: 1, duration_us, keyframe: false, data: vec![0xfc; 40] };
        audio.write_all(&frame(&p)).await.expect("write");
    }
    audio.write_all(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]).await.expect("write");
    let _ = audio.flush().await;
    // Video: "keyframes" that are not VP8, and postcard that is not a packet.
    let mut video = streams.open_stream(peer, libp2p::StreamProtocol::new(VIDEO_PROTOCOL)).await.expect("video");
    video.write_all(&head(0)).await.expect("write");
    for seq in 0..30u32 {
        let p = MediaPacket {
            seq,
            capture_us: skein_media::unix_us(),
            duration_us: 33_333,
            keyframe: true,
            data: skein_tests::pseudo_random(4000, 100 + u64::from(seq)),
        };
        video.write_all(&frame(&p)).await.expect("write");
    }
    video.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.expect("write");
    let _ = video.flush().await;
    // A stream for a call that does not exist.
    let mut stray = streams.open_stream(peer, libp2p::StreamProtocol::new(VIDEO_PROTOCOL)).await.expect("stray");
    let other =
        skein_proto::frame::encode_frame(&StreamHead { call: skein_proto::bytes::CallId([9; 16]), group: 0 }, 64);
    stray.write_all(&other.expect("head")).await.expect("write");
    let _ = stray.flush().await;

    // Bob's node is still in the call (its own media keeps flowing) or
    // ended it; either way it serves: a status answer and a message.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (ok, status, err) = skein(&bob, &["peers"], None).await;
    assert!(ok, "bob's daemon answers after the garbage: {err}");
    assert!(status.contains("alice"), "{status}");
    let alice_d = online(&alice, &[]).await;
    let (ok, out, err) = skein(&alice, &["send", "bob", "still there?"], None).await;
    assert!(ok, "{out}{err}");
    bob_d.wait_line(T, "the message after the garbage", |l| l.contains("still there?")).await;
    assert!(bob_d.child.try_wait().expect("status").is_none(), "bob's daemon is still running");

    // Once the call is over, the same invite again rings nothing: it is
    // declined, and bob has no call.
    let signal = |s| mallory.mesh.request(peer, skein_proto::peer::PeerRequest::Call(s));
    signal(CallSignal::HangUp(call)).await.expect("hang up");
    call_event(&mut bob_d, "ended").await;
    signal(CallSignal::Invite(invite)).await.expect("the invite again");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, _, err) = skein(&bob, &["hangup"], None).await;
    assert!(!ok && err.contains("no call to hang up"), "the old call rang again: {err}");
    drop(alice_d);
    bob_d.kill().await;
}
