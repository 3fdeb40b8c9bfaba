//! The desktop app in a real window: `skein-desk` under Xvfb, driven with
//! the keyboard as a user would, against a real tracker and a real peer.
//!
//! Alice signs in through the sign-in screen, sees bob online, and gets a
//! message, an emoji, an image and a file offer from him; she opens the
//! conversation and answers from the composer (bob's node gets the
//! answer), and finds a message with the search. A message that comes
//! while her window has no focus raises a desktop notification on the
//! session bus. She calls bob (his test pattern fills the call pane),
//! declines his call back, calls a group with bob and carol, whose nodes
//! link up with each other while her pane shows each one's pictures, and
//! declines bob's call to the group, which goes on without her.
//! Screenshots of the sign-in screen, the main window, the conversation
//! and the calls are saved under `target/screenshots/` and
//! checked to be real pictures.
//!
//! It needs Xvfb, xdotool, ImageMagick and D-Bus, so it is `#[ignore]`d
//! (reported as ignored, with the reason) unless asked for with
//! `--ignored`: `scripts/test` installs them and asks. Asked for where
//! they are missing, it fails and names the packages.

use serde_json::Value;
use skein_tests::x11::{Desktop, check_picture, missing_tools};
use skein_tests::{Proc, bin, daemon, login_profile, skein};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

/// Where screenshots go: `target/screenshots/`.
fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/debug/deps/<test> -> target/screenshots
    exe.ancestors().nth(3).expect("target directory").join("screenshots")
}

/// The app's state file, read until `check` accepts it.
async fn state(dir: &Path, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let path = dir.join("state.json");
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + T;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
            if check(&v) {
                return v;
            }
            last = v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the app never showed {what}; it shows: {last:#}");
}

fn texts(v: &Value) -> Vec<String> {
    v["chat"]["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Xvfb, xdotool, ImageMagick and D-Bus: run with --ignored (scripts/test installs them and does)"]
async fn alice_signs_in_chats_with_bob_and_is_notified_in_a_real_window() {
    let missing = missing_tools();
    assert!(missing.is_empty(), "install the Debian packages {missing:?} for the desktop test");
    skein_tests::init();
    let (t, api) = skein_tracker::test_utils::TestTracker::start_with_api().await;
    for u in ["alice", "bob", "carol"] {
        t.add_user(u, PW).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bob = login_profile(&t, dir.path(), "bob", "bob", PW).await;
    let mut bob_daemon = daemon(&bob, &["--auto-accept", "--auto-answer", "--test-source"]);
    bob_daemon.wait_line(T, "bob connected", |l| l.contains(r#""type":"connected""#)).await;
    let carol = login_profile(&t, dir.path(), "carol", "carol", PW).await;
    let mut carol_daemon = daemon(&carol, &["--auto-answer", "--test-source"]);
    carol_daemon.wait_line(T, "carol connected", |l| l.contains(r#""type":"connected""#)).await;

    let mut desk = Desktop::start().await;
    let snapshots = dir.path().join("snapshots");
    let alice = dir.path().join("alice");
    let mut env: Vec<(&str, String)> = desk.env();
    env.push(("SKEIN_DESK_SNAPSHOTS", snapshots.display().to_string()));
    env.push(("SKEIN_DESK_THEME", "light".into()));
    // Calls send GStreamer's test tone and colour bars (no camera here).
    env.push(("SKEIN_DESK_TEST_SOURCE", "1".into()));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _app = Proc::spawn(&bin("skein-desk"), &["--profile", alice.to_str().expect("utf-8")], &env_refs);
    let window = desk.window("Skein").await;
    desk.focus(&window).await;
    let shots = screenshots();

    // Signing in through the sign-in screen, with the keyboard.
    state(&snapshots, "the sign-in screen", |v| v["screen"] == "login").await;
    // The address field is filled in with a default: back to it, replace it.
    desk.key("shift+Tab").await;
    desk.key("ctrl+a").await;
    desk.type_text(&t.address()).await;
    desk.key("Tab").await;
    desk.type_text(t.ca_path().to_str().expect("utf-8")).await;
    desk.key("Tab").await;
    desk.type_text("alice").await;
    desk.key("Tab").await;
    desk.type_text("not the password").await;
    desk.key("Return").await;
    let v = state(&snapshots, "the wrong password refused", |v| !v["failure"].is_null()).await;
    assert_eq!(v["failure"], "Wrong user name or password.");
    desk.key("ctrl+a").await;
    desk.type_text(PW).await;
    desk.capture(&window, &shots.join("login.png")).await;
    desk.key("Return").await;

    // The main window: connected, bob online.
    state(&snapshots, "bob online", |v| {
        v["screen"] == "main"
            && v["connection"].as_str().is_some_and(|c| c.starts_with("Connected"))
            && v["online"].as_array().is_some_and(|o| o.iter().any(|u| u == "bob"))
    })
    .await;

    // Bob writes: text, emoji, an image and a file.
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("files");
    let photo = files.join("photo.png");
    image::RgbImage::from_fn(480, 320, |x, y| image::Rgb([(x * 255 / 480) as u8, (y * 255 / 320) as u8, 160]))
        .save(&photo)
        .expect("photo");
    let report = files.join("report.pdf");
    std::fs::write(&report, skein_tests::pseudo_random(300_000, 7)).expect("report");
    for args in [
        vec!["send", "alice", "Hi Alice! The build is green 日本語 ✅"],
        vec!["send", "alice", "🎉🚀"],
        vec!["send-image", "alice", photo.to_str().expect("utf-8")],
        vec!["send-file", "alice", report.to_str().expect("utf-8"), "--no-wait"],
    ] {
        let (ok, _, err) = skein(&bob, &args, None).await;
        assert!(ok, "bob {args:?}: {err}");
    }
    let v = state(&snapshots, "bob's four messages as unread", |v| v["conversations"][0]["unread"] == 4).await;
    assert_eq!(v["conversations"][0]["id"], "bob");
    desk.capture(&window, &shots.join("main.png")).await;

    // The conversation: open it, answer from the composer.
    desk.key("ctrl+1").await;
    let v = state(&snapshots, "the conversation with bob's messages", |v| texts(v).len() == 4).await;
    assert_eq!(texts(&v), ["Hi Alice! The build is green 日本語 ✅", "🎉🚀", "photo.png", "report.pdf"]);
    let v = state(&snapshots, "the conversation read", |v| v["conversations"][0]["unread"] == 0).await;
    assert_eq!(v["chat"]["messages"][3]["kind"], "file");
    desk.type_text("Thanks Bob! Looks great :tada:").await;
    desk.key("shift+Return").await;
    desk.type_text("Second line").await;
    desk.key("Return").await;
    let answer = "Thanks Bob! Looks great 🎉\nSecond line";
    let line = bob_daemon
        .wait_line(T, "alice's answer", |l| l.contains(r#""type":"message""#) && l.contains("Looks great"))
        .await;
    let got: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(got["text"], answer, "Shift+Enter made a new line and Enter sent");
    let v =
        state(&snapshots, "alice's answer in her conversation", |v| texts(v).last().is_some_and(|t| t == answer)).await;
    assert_eq!(v["composer"], "", "the composer is empty after sending");
    desk.capture(&window, &shots.join("conversation.png")).await;

    // An image from alice, sent with `skein send-image` against the running
    // app (which is alice's node): it shows in her conversation, and bob's
    // node gets it.
    let (ok, out, err) = skein(&alice, &["send-image", "bob", photo.to_str().expect("utf-8")], None).await;
    assert!(ok, "{out}{err}");
    let v = state(&snapshots, "the image alice sent", |v| {
        v["chat"]["messages"]
            .as_array()
            .and_then(|m| m.last())
            .is_some_and(|m| m["kind"] == "image" && m["from"] == "alice")
    })
    .await;
    assert_eq!(texts(&v).last().map(String::as_str), Some("photo.png"));
    bob_daemon.wait_line(T, "alice's image", |l| l.contains(r#""type":"message""#) && l.contains(r#""image""#)).await;

    // A 50 MiB file from alice, offered with `skein send-file` against the
    // running app (which is alice's node): the conversation shows it, with
    // its progress, and bob's node takes it whole.
    let big = files.join("big.bin");
    std::fs::write(&big, skein_tests::pseudo_random(50 << 20, 11)).expect("big file");
    let (ok, out, err) = skein(&alice, &["send-file", "bob", big.to_str().expect("utf-8"), "--no-wait"], None).await;
    assert!(ok, "{out}{err}");
    let v = state(&snapshots, "the file alice offers", |v| texts(v).last().is_some_and(|t| t == "big.bin")).await;
    if v["chat"]["messages"].as_array().and_then(|m| m.last()).is_some_and(|m| m["transfer"]["state"] == "sending") {
        desk.capture(&window, &shots.join("sending.png")).await;
    }
    bob_daemon
        .wait_line(T, "bob has the file", |l| {
            l.contains(r#""type":"transfer""#) && l.contains(r#""state":"completed""#) && l.contains("big.bin")
        })
        .await;
    state(&snapshots, "the file shown as sent", |v| {
        v["chat"]["messages"].as_array().and_then(|m| m.last()).is_some_and(|m| m["transfer"]["state"] == "completed")
    })
    .await;

    // Search finds bob's first message; Enter opens it, marked.
    desk.key("ctrl+k").await;
    desk.type_text("green").await;
    // Results come as each letter is typed ("gre" also finds "great"): the
    // ones for the whole word count.
    let v = state(&snapshots, "a search result", |v| {
        v["results_for"] == "green" && v["results"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert_eq!(v["results"][0]["conversation"], "bob");
    let found = v["results"][0]["id"].as_str().expect("an id").to_owned();
    desk.key("Return").await;
    state(&snapshots, "the found message marked", |v| v["marked"] == found.as_str() && v["chat"]["id"] == "bob").await;
    desk.key("Escape").await;
    state(&snapshots, "the search cleared", |v| v["query"] == "").await;

    // Away from the window, a message raises a desktop notification.
    desk.unfocus().await;
    state(&snapshots, "the window unfocused", |v| v["focused"] == false).await;
    let (ok, _, err) = skein(&bob, &["send", "alice", "Are you still there?"], None).await;
    assert!(ok, "{err}");
    assert!(
        desk.notification("Are you still there?", T).await,
        "no notification came for a message while unfocused; the bus saw: {:#?}",
        desk.seen
    );
    assert!(desk.seen.iter().any(|l| l.contains("\"Bob\"")), "the notification names the sender: {:#?}", desk.seen);

    // The smallest window the app allows still shows the whole conversation.
    desk.focus(&window).await;
    desk.xdotool(&["windowsize", "--sync", &window, "800", "600"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    desk.capture(&window, &shots.join("conversation-800x600.png")).await;
    let dims = image::image_dimensions(shots.join("conversation-800x600.png")).expect("a picture");
    assert_eq!(dims, (800, 600), "the window took its smallest size");
    let v = state(&snapshots, "the conversation at 800×600", |v| v["chat"]["id"] == "bob").await;
    assert!(texts(&v).iter().any(|t| t == "Are you still there?"), "{v:#}");

    // A plugin: the sample ticket plugin, installed while the app runs.
    // The composer completes its command; its answer shows to alice alone
    // and its card goes to bob.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/ticket");
    let (ok, out, err) = skein(&alice, &["plugin", "install", sample.to_str().expect("utf-8"), "--yes"], None).await;
    assert!(ok && out.contains("The running node has started it"), "{out}{err}");
    state(&snapshots, "the plugin's command", |v| {
        v["commands"].as_array().is_some_and(|c| c.iter().any(|c| c == "ticket"))
    })
    .await;
    desk.key("ctrl+1").await;
    state(&snapshots, "bob's conversation open", |v| v["chat"]["id"] == "bob").await;
    desk.type_text("/ti").await;
    state(&snapshots, "the command completed", |v| v["completions"] == serde_json::json!(["ticket"])).await;
    desk.capture(&window, &shots.join("plugin-command.png")).await;
    desk.key("Tab").await;
    state(&snapshots, "the command in the composer", |v| v["composer"] == "/ticket ").await;
    desk.type_text("open printer on floor 3 is broken").await;
    desk.key("Return").await;
    let v = state(&snapshots, "the plugin's answer", |v| v["plugin_reply"].is_object()).await;
    assert_eq!(v["plugin_reply"]["text"], "Opened ticket #1: printer on floor 3 is broken");
    bob_daemon
        .wait_line(T, "the ticket's card", |l| l.contains(r#""type":"message""#) && l.contains("Ticket #1 opened"))
        .await;
    state(&snapshots, "the card in alice's conversation", |v| {
        texts(v).last().is_some_and(|t| t.starts_with("[card] Ticket #1 opened"))
    })
    .await;
    desk.capture(&window, &shots.join("plugin-reply.png")).await;

    // A company system's message (POST /v1/messages): a conversation of
    // its own, from app:Alerts, its card on the line after the text.
    let store = t.store().await;
    let mut icon = std::io::Cursor::new(Vec::new());
    image::RgbaImage::from_fn(64, 64, |x, y| {
        let ring = ((x as i32 - 32).pow(2) + (y as i32 - 32).pow(2)) < 26 * 26;
        if ring { image::Rgba([0xe0, 0x4f, 0x3a, 255]) } else { image::Rgba([255, 255, 255, 255]) }
    })
    .write_to(&mut icon, image::ImageFormat::Png)
    .expect("icon");
    let icon = icon.into_inner();
    let app = skein_tracker::apps::create(&store, "Alerts", &["send".into()], Some(&icon), 1).await.expect("app");
    store.close().await;
    let body = serde_json::json!({"to": "alice", "text": "Disk 90% full on build-3", "card": {
        "title": "build-3", "fields": [{"name": "Disk", "value": "90%"}],
        "buttons": [{"label": "Open", "url": "https://monitor.example/build-3"}]}});
    let auth = format!("Bearer {}", app.token);
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let r = skein_tests::http::request(api, "POST", "/v1/messages", &headers, body.to_string().as_bytes()).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    state(&snapshots, "the app's conversation", |v| v["conversations"][0]["id"] == "app:Alerts").await;
    desk.key("ctrl+1").await;
    let v = state(&snapshots, "the app's message", |v| v["chat"]["id"] == "app:Alerts" && texts(v).len() == 1).await;
    assert!(texts(&v)[0].starts_with("Disk 90% full on build-3 [card] build-3 (Disk: 90%)"), "{v:#}");
    assert_eq!(v["chat"]["messages"][0]["kind"], "card");
    assert_eq!(v["chat"]["title"], "Alerts", "an app's conversation is called by the app's name");
    desk.capture(&window, &shots.join("app-message.png")).await;

    // A video call to bob's headless node, which answers: the call pane
    // shows bob's test pattern and alice's own in the corner.
    desk.xdotool(&["windowsize", "--sync", &window, "1100", "760"]).await;
    // The call devices panel (Ctrl+comma) lists what the node found: on
    // this screenless machine, the system's default alone, and says the
    // test sources are on. Escape closes it.
    desk.key("ctrl+comma").await;
    let v = state(&snapshots, "the call devices panel", |v| v["devices"]["loaded"] == true).await;
    assert_eq!(v["devices"]["microphone"], "System default", "{v:#}");
    assert_eq!(v["devices"]["camera"], "System default", "{v:#}");
    assert_eq!(v["devices"]["test_source"], true, "{v:#}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    desk.capture(&window, &shots.join("devices.png")).await;
    desk.key("Escape").await;
    state(&snapshots, "the call devices panel closed", |v| v["devices"].is_null()).await;
    let v = state(&snapshots, "the conversation list", |v| v["conversations"].as_array().is_some_and(|c| c.len() >= 2))
        .await;
    let at = v["conversations"].as_array().and_then(|c| c.iter().position(|r| r["id"] == "bob")).expect("bob's row");
    desk.key(&format!("ctrl+{}", at + 1)).await;
    state(&snapshots, "bob's conversation open", |v| v["chat"]["id"] == "bob").await;
    desk.key("ctrl+shift+u").await;
    let v = state(&snapshots, "the call connected with bob's pictures", |v| {
        v["call"]["state"] == "connected" && v["call"]["remote_frames"].as_u64().is_some_and(|n| n >= 60)
    })
    .await;
    assert_eq!(v["call"]["path"], "direct", "{v:#}");
    state(&snapshots, "the self-view", |v| v["call"]["self_view"] == true).await;
    bob_daemon
        .wait_line(T, "bob's side connected", |l| l.contains(r#""type":"call""#) && l.contains("connected"))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    desk.capture(&window, &shots.join("call.png")).await;
    desk.key("ctrl+shift+h").await;
    state(&snapshots, "the call over, its line in the conversation", |v| {
        v["call"].is_null() && texts(v).last().is_some_and(|t| t.starts_with("[call] video call, 0:0"))
    })
    .await;
    bob_daemon.wait_line(T, "bob's side ended", |l| l.contains(r#""state":"ended""#)).await;
    // Bob calls back: alice's window rings; she declines with the keyboard.
    let calling = tokio::spawn({
        let bob = bob.clone();
        async move { skein(&bob, &["call", "alice", "--test-source"], None).await }
    });
    state(&snapshots, "the incoming call", |v| v["call"]["incoming"] == true && v["call"]["state"] == "ringing").await;
    desk.capture(&window, &shots.join("incoming-call.png")).await;
    desk.key("ctrl+shift+h").await;
    let (ok, out, err) = calling.await.expect("join");
    assert!(!ok && err.contains("declined"), "bob's call was declined: {out}\n{err}");
    state(&snapshots, "the declined call's line", |v| {
        v["call"].is_null() && texts(v).last().is_some_and(|t| t == "[call] video call declined")
    })
    .await;

    // A group video call from a group's conversation: bob's and carol's
    // nodes answer and link up with each other, and the pane shows each
    // one's pictures under their name.
    let (ok, out, err) = skein(&alice, &["group", "create", "crew", "--members", "bob,carol", "--json"], None).await;
    assert!(ok, "{err}");
    let crew: Value = serde_json::from_str(&out).expect("group JSON");
    let crew = format!("#{}", crew["id"].as_str().expect("group id"));
    let (ok, _, err) = skein(&bob, &["send", &crew, "Shall we talk it through?"], None).await;
    assert!(ok, "{err}");
    let v = state(&snapshots, "the group's conversation", |v| {
        v["conversations"].as_array().is_some_and(|c| c.iter().any(|r| r["id"] == crew.as_str()))
    })
    .await;
    let at = v["conversations"].as_array().and_then(|c| c.iter().position(|r| r["id"] == crew.as_str())).expect("row");
    desk.key(&format!("ctrl+{}", at + 1)).await;
    state(&snapshots, "the group's conversation open", |v| v["chat"]["id"] == crew.as_str()).await;
    desk.key("ctrl+shift+u").await;
    let v = state(&snapshots, "pictures from bob and carol", |v| {
        let everyone = v["call"]["participants"].as_array().filter(|p| p.len() == 2);
        v["call"]["state"] == "connected"
            && everyone.is_some_and(|p| p.iter().all(|p| p["frames"].as_u64().is_some_and(|n| n >= 20)))
    })
    .await;
    assert_eq!(v["call"]["group"], true, "{v:#}");
    let linked = |l: &str| l.contains(r#""type":"call_stats""#) && l.contains(r#""with":"bob""#);
    carol_daemon.wait_line(T, "carol linked up with bob", linked).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    desk.capture(&window, &shots.join("group-call.png")).await;
    desk.key("ctrl+shift+h").await;
    state(&snapshots, "the group call's line", |v| {
        v["call"].is_null() && texts(v).last().is_some_and(|t| t.starts_with("[call] video call, 0:"))
    })
    .await;
    // Bob and carol talked on without her; bob hangs up, then calls the
    // group back: alice's window says who calls which group, she declines,
    // and bob and carol talk on without her again.
    assert!(skein(&bob, &["hangup"], None).await.0, "bob was still in the call with carol");
    let ended = |l: &str| serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == "call" && v["state"] == "ended");
    carol_daemon.wait_line(T, "carol's part of the first group call over", ended).await;
    let calling = tokio::spawn({
        let (bob, crew) = (bob.clone(), crew.clone());
        async move { skein(&bob, &["call", &crew, "--test-source", "--audio-only", "--seconds", "3"], None).await }
    });
    let v = state(&snapshots, "the group call ringing", |v| {
        v["call"]["incoming"] == true && v["call"]["state"] == "ringing" && v["call"]["group"] == true
    })
    .await;
    assert_eq!(v["call"]["with"], crew.as_str(), "{v:#}");
    desk.capture(&window, &shots.join("incoming-group-call.png")).await;
    desk.key("ctrl+shift+h").await;
    let (ok, out, err) = calling.await.expect("join");
    assert!(ok, "bob's group call went on with carol: {out}\n{err}");
    assert!(out.contains("alice: ended: declined") && out.contains("carol: connected"), "{out}");

    for name in [
        "login",
        "main",
        "conversation",
        "conversation-800x600",
        "plugin-command",
        "plugin-reply",
        "app-message",
        "devices",
        "call",
        "incoming-call",
        "group-call",
        "incoming-group-call",
    ] {
        let colours = check_picture(&shots.join(format!("{name}.png")));
        println!("{name}.png: {colours} colours, in {}", shots.display());
    }
}
