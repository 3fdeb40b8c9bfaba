//! Pushing messages through the tracker's HTTP API (`POST /v1/messages`),
//! over real TCP, to real `skein` daemons: to a user at once, to a
//! department and a group, to an offline device when it comes back, once
//! per idempotency key, shown under the app's name and icon; every bad post
//! refused with a problem body that says what is wrong; and an app message
//! that the organisation did not sign, or that a peer sends, is not taken.

use serde_json::{Value, json};
use skein_proto::app::{AppMessage, AppMessageBody, AppPost};
use skein_proto::bytes::{MailId, Signature};
use skein_proto::control::{MailboxPut, Request, Response, SealedItem};
use skein_proto::peer::{MessageBody, PeerResponse, SealedPayload};
use skein_tests::http::{Reply, request};
use skein_tests::{Proc, RawDevice, TestTracker, init, login_profile, online, skein};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

/// A small PNG.
fn icon() -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(16, 16, image::Rgba([30, 120, 200, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode PNG");
    out.into_inner()
}

async fn post(api: SocketAddr, token: &str, body: &Value, key: Option<&str>) -> Reply {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    if let Some(k) = key {
        headers.push(("Idempotency-Key", k));
    }
    request(api, "POST", "/v1/messages", &headers, body.to_string().as_bytes()).await
}

/// Asserts `r` is a problem body with `status` whose detail contains `says`.
fn problem(r: &Reply, status: u16, says: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains(says), "{detail:?} does not say {says:?}");
}

/// The message event for message `id` on `daemon`.
async fn message(daemon: &mut Proc, id: &str) -> Value {
    let line =
        daemon.wait_line(T, &format!("message {id}"), |l| l.contains(r#""type":"message""#) && l.contains(id)).await;
    serde_json::from_str(&line).expect("event JSON")
}

/// How many message events for `id` the daemon printed so far.
fn times(daemon: &Proc, id: &str) -> usize {
    daemon.seen.iter().filter(|l| l.contains(r#""type":"message""#) && l.contains(id)).count()
}

async fn history(profile: &Path, conversation: &str) -> Vec<Value> {
    let (ok, out, err) = skein(profile, &["history", conversation, "--json"], None).await;
    assert!(ok, "{err}");
    serde_json::from_str::<Value>(&out).expect("history JSON").as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_pushes_to_users_departments_and_groups_online_at_once_and_offline_later_each_once() {
    init();
    let (t, api) = TestTracker::start_with_api().await;
    for (name, dept) in [("alice", "Engineering/Backend"), ("bob", "Engineering"), ("carol", "Sales")] {
        t.add_user_in(name, PW, dept).await;
    }
    let store = t.store().await;
    let png = icon();
    let app = skein_tracker::apps::create(&store, "Tickets", &["send".into()], Some(&png), 1).await.expect("app");
    store.close().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = login_profile(&t, dir.path(), "alice", "alice", PW).await;
    let bob = login_profile(&t, dir.path(), "bob", "bob", PW).await;
    let carol = login_profile(&t, dir.path(), "carol", "carol", PW).await;
    let (alice, bob, carol) = (alice.as_path(), bob.as_path(), carol.as_path());
    let mut bob_d = online(bob, &[]).await;

    // To one user, online: at once, under the app's name and icon.
    let card = json!({
        "title": "TICKET-42: printer on floor 3",
        "fields": [{"name": "Priority", "value": "high"}, {"name": "Reporter", "value": "carol"}],
        "buttons": [{"label": "Open", "url": "https://tickets.example/42"}]
    });
    let body = json!({"to": "bob", "text": "A ticket was assigned to you", "card": card});
    let started = std::time::Instant::now();
    let r = post(api, &app.token, &body, Some("ticket-42-assigned")).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let accepted = r.json();
    let id = accepted["id"].as_str().expect("an id").to_owned();
    assert_eq!((accepted["recipients"].as_u64(), accepted["devices"].as_u64()), (Some(1), Some(1)), "{accepted}");
    let ev = message(&mut bob_d, &id).await;
    println!("bob's daemon showed the app's message {:?} after the POST", started.elapsed());
    assert_eq!(ev["from"], "app:Tickets");
    assert_eq!(ev["conversation"], "app:Tickets");
    assert_eq!(ev["app"]["name"], "Tickets");
    assert_eq!(ev["text"], "A ticket was assigned to you");
    assert_eq!(ev["card"]["title"], "TICKET-42: printer on floor 3");
    assert_eq!(ev["card"]["fields"][0], json!({"name": "Priority", "value": "high"}));
    assert_eq!(ev["card"]["buttons"][0]["url"], "https://tickets.example/42");
    let icon_path = ev["app"]["icon"].as_str().expect("the icon's path");
    assert_eq!(std::fs::read(icon_path).expect("the icon"), png, "the app's icon is kept beside the history");

    // A retried post with the same key is the same message, shown once.
    let again = post(api, &app.token, &body, Some("ticket-42-assigned")).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["id"], id.as_str(), "the same key names the same message");
    bob_d.collect_for(Duration::from_secs(2)).await;
    assert_eq!(times(&bob_d, &id), 1, "a retried post is shown once");
    let h = history(bob, "app:Tickets").await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["from"], "app:Tickets");

    // To a department and those under it: bob now, alice (offline) later;
    // carol, in Sales, never.
    let body = json!({"to": "dept:/Engineering", "text": "The build farm is down until 14:00"});
    let r = post(api, &app.token, &body, None).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["recipients"], 2, "bob in Engineering and alice in Engineering/Backend");
    let dept_id = r.json()["id"].as_str().expect("id").to_owned();
    let ev = message(&mut bob_d, &dept_id).await;
    let conversation = ev["conversation"].as_str().expect("a conversation").to_owned();
    assert!(conversation.starts_with('#'), "into the department group's conversation: {conversation}");
    let mut alice_d = online(alice, &[]).await;
    let ev = message(&mut alice_d, &dept_id).await;
    assert_eq!(ev["path"], "mailbox", "alice was away: it waited in her mailbox");
    assert_eq!(ev["text"], "The build farm is down until 14:00");
    assert_eq!(ev["conversation"], conversation.as_str());
    let mut carol_d = online(carol, &[]).await;
    carol_d.collect_for(Duration::from_secs(1)).await;
    assert_eq!(times(&carol_d, &dept_id), 0, "carol is not in Engineering");

    // To a group, by its name.
    let (ok, out, err) = skein(alice, &["group", "create", "launch", "--members", "bob", "--json"], None).await;
    assert!(ok, "{err}{out}");
    let r = post(api, &app.token, &json!({"to": "#launch", "text": "Release 4.2 is tagged"}), None).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let group_id = r.json()["id"].as_str().expect("id").to_owned();
    let (a, b) = (message(&mut alice_d, &group_id).await, message(&mut bob_d, &group_id).await);
    assert_eq!(a["conversation"], b["conversation"]);
    let h = history(bob, "#launch").await;
    assert!(h.iter().any(|m| m["text"] == "Release 4.2 is tagged" && m["from"] == "app:Tickets"), "{h:?}");
    for d in [&mut alice_d, &mut bob_d, &mut carol_d] {
        d.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_posts_are_refused_with_problems_and_forged_app_messages_are_not_taken() {
    init();
    let (t, api) = TestTracker::start_with_api().await;
    t.add_user_in("alice", PW, "Engineering").await;
    t.add_user_in("bob", PW, "Engineering").await;
    let store = t.store().await;
    let app = skein_tracker::apps::create(&store, "Alerts", &["send".into()], None, 1).await.expect("app");
    let reader = skein_tracker::apps::create(&store, "Wallboard", &["presence".into()], None, 1).await.expect("app");
    store.close().await;

    let bad = |b: &str| b.to_owned();
    let auth = format!("Bearer {}", app.token);
    let json_headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let raw = |body: String| {
        let headers = json_headers;
        async move { request(api, "POST", "/v1/messages", &headers, body.as_bytes()).await }
    };
    problem(&raw(bad("{\"to\": \"bob\", ")).await, 400, "not a message");
    problem(&raw(bad("{\"to\": \"bob\", \"txet\": \"hi\"}")).await, 400, "txet");
    problem(&post(api, &app.token, &json!({"to": "bob"}), None).await, 400, "needs `text`");
    problem(&post(api, &app.token, &json!({"to": "bob", "text": "  "}), None).await, 400, "`text` is empty");
    let js = json!({"to": "bob", "card": {"title": "x", "buttons": [{"label": "Go", "url": "javascript:alert(1)"}]}});
    problem(&post(api, &app.token, &js, None).await, 400, "https://");
    problem(&post(api, &app.token, &json!({"to": "nobody", "text": "hi"}), None).await, 404, "no enabled user");
    problem(&post(api, &app.token, &json!({"to": "Bob Smith", "text": "hi"}), None).await, 400, "name a user");
    problem(&post(api, &app.token, &json!({"to": "#nothing", "text": "hi"}), None).await, 404, "no open group");
    problem(&post(api, &app.token, &json!({"to": "dept:/Nowhere", "text": "hi"}), None).await, 404, "no department");
    problem(&post(api, &reader.token, &json!({"to": "bob", "text": "hi"}), None).await, 403, "\"send\" scope");
    let img = json!({"to": "bob", "image": {"base64": "not base64!"}});
    problem(&post(api, &app.token, &img, None).await, 400, "not base64");
    let cut = {
        use base64::Engine;
        let png = icon();
        base64::engine::general_purpose::STANDARD.encode(&png[..20])
    };
    problem(&post(api, &app.token, &json!({"to": "bob", "image": {"base64": cut}}), None).await, 400, "damaged");
    problem(&post(api, &app.token, &json!({"to": "bob", "text": "hi"}), Some("ключ")).await, 400, "Idempotency-Key");
    let plain = request(api, "POST", "/v1/messages", &[("Authorization", auth.as_str())], b"{}").await;
    problem(&plain, 415, "Content-Type: application/json");
    let huge = format!("{{\"to\": \"bob\", \"text\": \"{}\"}}", "x".repeat(2 << 20));
    problem(&raw(huge).await, 413, "1 MiB");
    let long = json!({"to": "bob", "text": "x".repeat(skein_proto::app::MAX_APP_TEXT + 1)});
    problem(&post(api, &app.token, &long, None).await, 400, "`text` is");

    // An image that is whole is taken (bob has a device now to take it).
    let dir = tempfile::tempdir().expect("tempdir");
    let bob = login_profile(&t, dir.path(), "bob", "bob", PW).await;
    let whole = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(icon())
    };
    let r = post(api, &app.token, &json!({"to": "bob", "image": {"base64": whole}}), None).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let image_id = r.json()["id"].as_str().expect("id").to_owned();

    // Forgeries: alice puts an "app message" with a made-up signature into
    // bob's mailbox, and sends one to bob's daemon directly. Neither is taken.
    let mut bob_d = online(&bob, &[]).await;
    let ev = message(&mut bob_d, &image_id).await;
    assert_eq!((ev["image"]["format"].as_str(), ev["image"]["width"].as_u64()), (Some("image/png"), Some(16)), "{ev}");
    let alice = RawDevice::login(&t, &dir.path().join("alice"), "alice", PW).await;
    let forged_id = MailId([0x66; 16]);
    let forged = SealedPayload::App(AppMessage {
        body: AppMessageBody {
            id: forged_id,
            to_user: "bob".into(),
            group: None,
            sent_at_ms: skein_node::now_ms(),
            icon_png: None,
            post: AppPost {
                app: "Payroll".into(),
                text: Some("Confirm your bank details".into()),
                card: None,
                image: None,
            },
        },
        signature: Signature([7; 64]),
    });
    let Ok(Response::Peer(peer)) = alice.session.client.request(Request::LookupPeer { user: "bob".into() }).await
    else {
        panic!("bob's devices");
    };
    let items = peer
        .online
        .iter()
        .map(|d| {
            let device = d.cert.body.device_id;
            let sealed = skein_node::seal::seal_payload(
                &d.cert.body.x25519,
                &forged,
                &skein_node::seal::seal_aad(&forged_id, &device),
            )
            .expect("seal");
            SealedItem { id: forged_id, to_device: device, sealed }
        })
        .collect();
    let put = Request::MailboxPut(MailboxPut { to_user: "bob".into(), items });
    assert!(matches!(alice.session.client.request(put).await, Ok(Response::MailboxStored { stored: 1 })));
    let post_body =
        MessageBody::App(Box::new(AppPost { app: "Payroll".into(), text: Some("Hi".into()), card: None, image: None }));
    let (_, answers) = alice.deliver("bob", post_body).await;
    assert!(
        matches!(answers.as_slice(), [PeerResponse::Refused(b)] if b.message.contains("only from the tracker")),
        "{answers:?}"
    );
    bob_d.collect_for(Duration::from_secs(2)).await;
    assert!(!bob_d.seen.iter().any(|l| l.contains("Payroll")), "no forged app message was shown: {:?}", bob_d.seen);
    assert!(history(&bob, "app:Payroll").await.is_empty());
    bob_d.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_posts_slack_style_into_its_one_conversation_and_nothing_else() {
    init();
    let (t, api) = TestTracker::start_with_api().await;
    t.add_user_in("bob", PW, "Operations").await;
    let store = t.store().await;
    let nowhere = skein_tracker::apps::create_hook(&store, None, "#nothing", None, 1).await;
    assert!(nowhere.is_err_and(|e| e.to_string().contains("no open group")), "a hook to nowhere is refused");
    let hook = skein_tracker::apps::create_hook(&store, Some("Deploys"), "bob", None, 1).await.expect("hook");
    let other = skein_tracker::apps::create_hook(&store, None, "dept:/Operations", None, 1).await.expect("hook");
    assert_eq!(other.app.name, "Webhook", "a hook without a name gets one");
    store.close().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bob = login_profile(&t, dir.path(), "bob", "bob", PW).await;
    let mut bob_d = online(&bob, &[]).await;
    let url = format!("/hooks/{}/{}", hook.app.id, hook.token);
    let json_type = [("Content-Type", "application/json")];

    // A Slack sender's payload, with fields Skein has no use for.
    let slack =
        json!({"text": "Deployed 4.2 to production", "username": "ci", "icon_emoji": ":rocket:", "channel": "#x"});
    let r = request(api, "POST", &url, &json_type, slack.to_string().as_bytes()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["ok"], true);
    let ev = message(&mut bob_d, r.json()["id"].as_str().expect("id")).await;
    assert_eq!((ev["from"].as_str(), ev["conversation"].as_str()), (Some("app:Deploys"), Some("app:Deploys")));
    assert_eq!(ev["text"], "Deployed 4.2 to production");
    let card = json!({"card": {"title": "Build 981 failed", "fields": [{"name": "Branch", "value": "main"}]}});
    let r = request(api, "POST", &url, &json_type, card.to_string().as_bytes()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ev = message(&mut bob_d, r.json()["id"].as_str().expect("id")).await;
    assert_eq!(ev["card"]["title"], "Build 981 failed");

    // A wrong secret, an unknown id, another hook's id: nothing to see.
    let wrong = format!("/hooks/{}/{}x", hook.app.id, hook.token);
    let swapped = format!("/hooks/{}/{}", other.app.id, hook.token);
    for path in [wrong.as_str(), "/hooks/999/skn_nothing", "/hooks/abc/def", swapped.as_str()] {
        problem(&request(api, "POST", path, &json_type, slack.to_string().as_bytes()).await, 404, "no such webhook");
    }
    problem(&request(api, "POST", &url, &json_type, b"{\"text\": ").await, 400, "not a message");
    // Its secret opens no /v1 route.
    problem(&post(api, &hook.token, &json!({"to": "bob", "text": "hi"}), None).await, 403, "\"send\" scope");
    // Revoked, it is gone.
    let store = t.store().await;
    store.revoke_app("Deploys", 2).await.expect("revoke");
    store.close().await;
    problem(&request(api, "POST", &url, &json_type, slack.to_string().as_bytes()).await, 404, "no such webhook");
    bob_d.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_to_someone_who_never_logged_in_waits_for_their_first_device() {
    init();
    let (t, api) = TestTracker::start_with_api().await;
    t.add_user("dana", PW).await;
    let store = t.store().await;
    let app = skein_tracker::apps::create(&store, "HR", &["send".into()], None, 1).await.expect("app");
    store.close().await;
    // Provisioned, never logged in: no device to seal to yet.
    let welcome = json!({"to": "dana", "text": "Welcome aboard! Your laptop is on your desk."});
    let r = post(api, &app.token, &welcome, Some("welcome-dana")).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!((r.json()["devices"].as_u64(), r.json()["waiting"].as_u64()), (Some(0), Some(1)));
    // A retried post waits once.
    let again = post(api, &app.token, &welcome, Some("welcome-dana")).await;
    assert_eq!(again.json()["id"], r.json()["id"]);
    // The same key for another message is a mistake, said so.
    let other = json!({"to": "dana", "text": "Something else"});
    problem(&post(api, &app.token, &other, Some("welcome-dana")).await, 409, "already used for a different message");
    let id = r.json()["id"].as_str().expect("id").to_owned();

    // Her first login: the message is in her first device's mailbox.
    let dir = tempfile::tempdir().expect("tempdir");
    let dana = login_profile(&t, dir.path(), "dana", "dana", PW).await;
    let mut dana_d = online(&dana, &[]).await;
    let got = message(&mut dana_d, &id).await;
    assert_eq!((got["from"].as_str(), got["text"].as_str()), (Some("app:HR"), welcome["text"].as_str()));
    let kept = history(&dana, "app:HR").await;
    assert_eq!(kept.len(), 1, "shown once: {kept:?}");
    // Nothing waits any more: the next post goes to her device directly.
    let r = post(api, &app.token, &json!({"to": "dana", "text": "Lunch at noon"}), None).await;
    assert_eq!((r.json()["devices"].as_u64(), r.json()["waiting"].as_u64()), (Some(1), Some(0)));
    dana_d.kill().await;
}
