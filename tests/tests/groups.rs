//! Groups with the real `skein` binary against a real tracker: a user
//! makes a discussion group, members see it (through their daemon or a
//! session of their own), every change is a new signed version pushed to
//! the members' daemons as an event line, only the owner manages it, names
//! that match several groups are refused with their ids, and a department's
//! group follows a user an administrator moves.

use serde_json::Value;
use skein_tests::{daemon, login_profile, online, skein, tracker_with_users, users_with_profiles};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discussion_group_is_made_changed_and_seen_by_its_members() {
    let t = tracker_with_users(&["alice", "bob", "carol", "dave"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let [alice, bob, carol] =
        ["alice", "bob", "carol"].map(|u| dir.path().join(u)).map(|p| p.to_string_lossy().into_owned());
    for u in ["alice", "bob", "carol"] {
        login_profile(&t, dir.path(), u, u, PW).await;
    }
    let (alice, bob, carol) = (std::path::Path::new(&alice), std::path::Path::new(&bob), std::path::Path::new(&carol));
    // Bob runs a daemon; alice and carol use sessions of their own.
    let mut bob_daemon = daemon(bob, &[]);
    bob_daemon.wait_line(T, "bob connected", |l| l.contains(r#""type":"connected""#)).await;

    let (ok, out, err) = skein(alice, &["group", "create", "team", "--members", "bob,carol", "--json"], None).await;
    assert!(ok, "{err}");
    let made = json(&out);
    let id = made["id"].as_str().expect("id").to_owned();
    assert_eq!(made["members"], serde_json::json!(["alice", "bob", "carol"]));
    assert_eq!(
        (made["kind"].as_str(), made["owner"].as_str(), made["version"].as_u64()),
        (Some("discussion"), Some("alice"), Some(1))
    );
    bob_daemon
        .wait_line(T, "bob told of the new group", |l| {
            l.contains("group_changed") && l.contains("alice made the group")
        })
        .await;

    let (ok, out, err) = skein(bob, &["group", "list", "--json"], None).await;
    assert!(ok, "{err}");
    assert!(json(&out).as_array().expect("list").iter().any(|g| g["id"] == id.as_str()), "{out}");

    // Only the owner manages it; a member may leave.
    let (ok, out, err) = skein(alice, &["group", "add", "#team", "dave"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "alice added dave");
    bob_daemon
        .wait_line(T, "bob told dave was added", |l| l.contains("alice added dave") && l.contains(r#""version":2"#))
        .await;
    let (ok, _, err) = skein(bob, &["group", "remove", "#team", "carol"], None).await;
    assert!(!ok && err.contains("only its owner"), "{err}");
    // The changes bob's daemon saw are lines of the conversation.
    let (ok, out, err) = skein(bob, &["history", &id, "--json"], None).await;
    assert!(ok, "{err}");
    let lines: Vec<String> = json(&out)
        .as_array()
        .expect("history")
        .iter()
        .filter(|m| m["type"] == "event")
        .map(|m| m["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(lines, ["alice made the group", "alice added dave"], "{out}");
    let (ok, out, err) = skein(carol, &["group", "leave", "#team"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "carol left");
    let (ok, _, err) = skein(carol, &["group", "members", "#team"], None).await;
    assert!(!ok && err.contains("no group #team"), "carol is out: {err}");
    let (ok, out, _) = skein(bob, &["group", "members", "#team", "--json"], None).await;
    assert!(ok);
    assert_eq!(json(&out), serde_json::json!(["alice", "bob", "dave"]));
    let (ok, _, err) = skein(alice, &["group", "leave", "#team"], None).await;
    assert!(!ok && err.contains("close it instead"), "{err}");

    // Names need not be unique; an ambiguous one is refused with the ids.
    let (ok, _, err) = skein(alice, &["group", "create", "team", "--members", "bob"], None).await;
    assert!(ok, "{err}");
    let (ok, _, err) = skein(bob, &["group", "members", "#team"], None).await;
    assert!(!ok && err.contains("names 2 groups") && err.contains(&id), "{err}");
    let (ok, out, err) = skein(bob, &["group", "members", &id], None).await;
    assert!(ok, "the id always works: {err}");
    assert!(out.contains("dave"), "{out}");

    // Rename, close, and nothing more.
    let (ok, _, err) = skein(alice, &["group", "rename", &id, "crew"], None).await;
    assert!(ok, "{err}");
    let (ok, out, err) = skein(alice, &["group", "close", "#crew"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "alice closed the group");
    let (ok, _, err) = skein(alice, &["group", "add", "#crew", "carol"], None).await;
    assert!(!ok && err.contains("closed"), "{err}");
    // Unknown users and bad names are named.
    let (ok, _, err) = skein(alice, &["group", "create", "x", "--members", "zed"], None).await;
    assert!(!ok && err.contains("no user named zed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_group_follows_a_user_an_administrator_moves() {
    let t = tracker_with_users(&[], PW).await;
    let store = t.store().await;
    for (name, dept) in [("erin", "Engineering/Backend"), ("frank", "Sales")] {
        let new = skein_proto::control::NewUser {
            name: name.into(),
            display_name: name.into(),
            password: PW.into(),
            department: Some(dept.into()),
            title: None,
            email: None,
            phone: None,
            admin: false,
        };
        skein_tracker::admin::add_user(&store, new, &t.passwords()).await.expect("add");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let erin = login_profile(&t, dir.path(), "erin", "erin", PW).await;
    let names = |out: &str| -> Vec<String> {
        json(out).as_array().expect("list").iter().map(|g| g["department"].as_str().unwrap_or("").to_owned()).collect()
    };
    let (ok, out, err) = skein(&erin, &["group", "list", "--json"], None).await;
    assert!(ok, "{err}");
    assert_eq!(names(&out), ["Engineering/Backend", "Engineering"], "her department's group and its parent's");
    let (ok, _, err) = skein(&erin, &["group", "leave", "#Backend"], None).await;
    assert!(!ok && err.contains("follows the department"), "{err}");

    store.close().await;
    let mut erin_daemon = online(&erin, &[]).await;
    // As an administrator would, with the admin CLI on the tracker's data.
    let admin = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(skein_tests::bin("skein-tracker"));
        cmd.args(args).arg("--data").arg(&t.config.data_dir).stdin(std::process::Stdio::null());
        skein_tests::output(cmd, "skein-tracker")
    };
    let (ok, out, err) = admin(&["user", "move", "erin", "--dept", "Sales"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("Moved erin to Sales; 3 department group(s) changed"), "{out}");
    // Running trackers push the changed groups to their members.
    erin_daemon
        .wait_line(T, "erin told she joined Sales", |l| l.contains("group_changed") && l.contains("erin joined"))
        .await;
    erin_daemon
        .wait_line(T, "erin told she left Engineering", |l| l.contains("group_changed") && l.contains("erin left"))
        .await;
    let (ok, out, err) = admin(&["group", "create", "all hands", "--org", "--members", "erin,frank"]).await;
    assert!(ok && out.contains("Made org group all hands"), "{out}{err}");
    erin_daemon.wait_line(T, "erin told of the org group", |l| l.contains("an administrator made the group")).await;
    let (ok, out, err) = admin(&["group", "list", "--json"]).await;
    assert!(ok, "{err}");
    let all = json(&out);
    assert!(all.as_array().expect("list").iter().any(|g| g["name"] == "all hands" && g["kind"] == "org"), "{out}");
    let (ok, out, err) = skein(&erin, &["group", "list", "--json"], None).await;
    assert!(ok, "{err}");
    assert_eq!(names(&out), ["Sales", ""], "her new department's group, and the org group (by name)");
    let (ok, out, _) = skein(&erin, &["group", "members", "#Sales", "--json"], None).await;
    assert!(ok);
    assert_eq!(json(&out), serde_json::json!(["erin", "frank"]));
}

fn history_texts(out: &str) -> Vec<(String, String)> {
    json(out)
        .as_array()
        .expect("history")
        .iter()
        .filter(|m| m["type"] != "event")
        .map(|m| (m["from"].as_str().unwrap_or("").to_owned(), m["text"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_reaches_every_member_once_and_only_members_may_speak() {
    use skein_proto::peer::{ChatMessage, Conversation, MessageBody, PeerRequest, PeerResponse};
    let users = ["alice", "bob", "carol", "dave", "erin", "mallory"];
    let t = tracker_with_users(&users, PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut profiles = std::collections::HashMap::new();
    for u in users {
        profiles.insert(u, login_profile(&t, dir.path(), u, u, PW).await);
    }
    let p = |u: &str| profiles[u].clone();
    let (ok, out, err) =
        skein(&p("alice"), &["group", "create", "team", "--members", "bob,carol,dave,erin", "--json"], None).await;
    assert!(ok, "{err}");
    let id = json(&out)["id"].as_str().expect("id").to_owned();
    let address = format!("#{id}");

    // Alice, bob and carol are online; dave and erin are not.
    let mut online = Vec::new();
    for u in ["alice", "bob", "carol"] {
        let mut d = daemon(&p(u), &[]);
        d.wait_line(T, &format!("{u} connected"), |l| l.contains(r#""type":"connected""#)).await;
        online.push(d);
    }
    let requests = &t.running().state().requests;
    let (puts, many) = (requests.of("MailboxPut"), requests.of("MailboxPutMany"));
    let (ok, out, err) = skein(&p("alice"), &["send", "#team", "hello team"], None).await;
    assert!(ok, "{err}");
    assert!(["direct", "relayed"].contains(&out.trim()), "{out}");
    assert_eq!(
        (requests.of("MailboxPut") - puts, requests.of("MailboxPutMany") - many),
        (0, 1),
        "dave's and erin's copies went to the mailbox in one request"
    );
    for d in &mut online[1..] {
        d.wait_line(T, "the group message", |l| l.contains("hello team") && l.contains(&address)).await;
    }
    let (ok, _, err) = skein(&p("bob"), &["send", "#team", "hi alice"], None).await;
    assert!(ok, "{err}");
    online[0].wait_line(T, "bob's answer at alice", |l| l.contains("hi alice")).await;
    // Two members speak at once: arrival orders differ, the order shown does not.
    let (alice_p, bob_p) = (p("alice"), p("bob"));
    let (a, b) = tokio::join!(
        skein(&alice_p, &["send", "#team", "at once from alice"], None),
        skein(&bob_p, &["send", "#team", "at once from bob"], None)
    );
    assert!(a.0 && b.0, "{} {}", a.2, b.2);

    // The offline members take both from the mailbox when they come.
    for u in ["dave", "erin"] {
        let mut d = daemon(&p(u), &[]);
        d.wait_line(T, &format!("{u} takes the group's mail"), |l| l.contains("at once from bob")).await;
        d.wait_line(T, &format!("{u} takes the group's mail"), |l| l.contains("at once from alice")).await;
        online.push(d);
    }
    for d in &mut online[..3] {
        d.wait_line(T, "both at once", |l| l.contains("at once from alice") || l.contains("at once from bob")).await;
    }
    // Dave was away when the group was made: his device asks the tracker's
    // log for the line it missed.
    let dave_p = p("dave");
    skein_tests::wait_for(T, "dave's line for the group's making", || {
        let dave_p = dave_p.clone();
        async move {
            let (_, out, _) = skein(&dave_p, &["history", "#team", "--json"], None).await;
            out.contains(r#""text":"alice made the group""#).then_some(())
        }
    })
    .await;
    let first = [("alice".to_owned(), "hello team".to_owned()), ("bob".to_owned(), "hi alice".to_owned())];
    let mut shown = Vec::new();
    for u in ["alice", "bob", "carol", "dave", "erin"] {
        let (ok, out, err) = skein(&p(u), &["history", "#team", "--json"], None).await;
        assert!(ok, "{u}: {err}");
        let texts = history_texts(&out);
        assert_eq!(texts.len(), 4, "{u} holds each message once: {texts:?}");
        assert_eq!(texts[..2], first[..], "{u}");
        shown.push(texts);
    }
    assert!(shown.windows(2).all(|w| w[0] == w[1]), "one order on every member's screen: {shown:?}");

    // Alice sees where her first message stands with each member: delivered
    // to all (dave and erin told her once they took it from the mailbox),
    // then read by bob once he reads the group.
    let alice_p = p("alice");
    let states = |wanted: serde_json::Value| {
        let alice_p = alice_p.clone();
        async move {
            let (ok, out, _) = skein(&alice_p, &["history", "#team", "--json"], None).await;
            let v = json(&out);
            let first = v.as_array().and_then(|l| l.iter().find(|m| m["text"] == "hello team")).cloned();
            (ok && first.as_ref().is_some_and(|m| m["members"] == wanted)).then_some(())
        }
    };
    let all_delivered =
        serde_json::json!({"bob": "delivered", "carol": "delivered", "dave": "delivered", "erin": "delivered"});
    skein_tests::wait_for(T, "every member's delivery", || states(all_delivered.clone())).await;
    let (ok, _, err) = skein(&p("bob"), &["read", "#team"], None).await;
    assert!(ok, "{err}");
    let bob_read = serde_json::json!({"bob": "read", "carol": "delivered", "dave": "delivered", "erin": "delivered"});
    skein_tests::wait_for(T, "bob's read receipt", || states(bob_read.clone())).await;

    // A stranger speaking in the group straight over the peer protocol is refused.
    let mallory = skein_tests::RawDevice::login(&t, &dir.path().join("mallory-raw"), "mallory", PW).await;
    let forged = MessageBody::Text("let me in".into());
    let group = skein_proto::bytes::GroupId::from_hex(&id).expect("id");
    // A direct message to bob is fine (and connects mallory to bob); the
    // same device speaking in the group is not.
    let (_, answers) = mallory.deliver("bob", forged).await;
    let msg = ChatMessage {
        id: skein_proto::bytes::MailId(rand::random()),
        from_user: "mallory".into(),
        from_device: mallory.device,
        to_user: address.clone(),
        conversation: Conversation::Group { group, version: 1, hlc: 1 << 40, seq: 1 },
        sent_at_ms: skein_node::now_ms(),
        body: MessageBody::Text("I am one of you".into()),
    };
    let bob_peer = mallory.mesh.peers().await.into_iter().find(|p| p.user == "bob").expect("connected to bob").peer;
    let (answer, _) = mallory.mesh.request(bob_peer, PeerRequest::Deliver(msg)).await.expect("an answer");
    assert!(matches!(answers[..], [PeerResponse::Stored { .. }]), "a direct message is fine: {answers:?}");
    match answer {
        PeerResponse::Refused(b) => assert!(b.message.contains("mallory is not a member"), "{b:?}"),
        other => panic!("a non-member's group message must be refused, got {other:?}"),
    }

    // A removed member gets nothing new, and its own sends are refused.
    let (ok, _, err) = skein(&p("alice"), &["group", "remove", "#team", "carol"], None).await;
    assert!(ok, "{err}");
    online[1].wait_line(T, "bob told carol was removed", |l| l.contains("alice removed carol")).await;
    let (ok, _, err) = skein(&p("carol"), &["send", &id, "still here?"], None).await;
    assert!(!ok, "carol is out of the group: {err}");
    let (ok, _, err) = skein(&p("alice"), &["send", "#team", "after carol"], None).await;
    assert!(ok, "{err}");
    online[1].wait_line(T, "bob gets the next one", |l| l.contains("after carol")).await;
    let (ok, out, _) = skein(&p("carol"), &["history", &id, "--json"], None).await;
    assert!(ok);
    assert!(!out.contains("after carol"), "nothing sent after the removal reaches carol: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_conversation_is_marked_muted_and_a_mention_still_stands_out() {
    let (_t, _dir, [alice, bob]) = users_with_profiles(["alice", "bob"], PW).await;
    let (ok, _, err) = skein(&alice, &["group", "create", "team", "--members", "bob"], None).await;
    assert!(ok, "{err}");
    let mut bob_daemon = online(&bob, &[]).await;
    let _alice_daemon = online(&alice, &[]).await;
    let message = |text: &'static str| move |l: &str| l.contains(r#""type":"message""#) && l.contains(text);

    let (ok, _, err) = skein(&alice, &["send", "#team", "before muting"], None).await;
    assert!(ok, "{err}");
    let line = bob_daemon.wait_line(T, "an ordinary message", message("before muting")).await;
    let v = json(&line);
    assert_eq!((v["muted"].as_bool(), v["group"].as_str()), (Some(false), Some("team")), "{line}");

    let (ok, out, err) = skein(&bob, &["mute", "#team"], None).await;
    assert!(ok && out.contains("Muted #team"), "{out}{err}");
    let (ok, _, err) = skein(&alice, &["send", "#team", "lunch is here"], None).await;
    assert!(ok, "{err}");
    let v = json(&bob_daemon.wait_line(T, "a muted message", message("lunch is here")).await);
    assert_eq!((v["muted"].as_bool(), v["mentions_me"].as_bool()), (Some(true), Some(false)), "{v}");
    let (ok, _, err) = skein(&alice, &["send", "#team", "@bob the build is red"], None).await;
    assert!(ok, "{err}");
    let v = json(&bob_daemon.wait_line(T, "a mention", message("the build is red")).await);
    assert_eq!((v["muted"].as_bool(), v["mentions_me"].as_bool()), (Some(true), Some(true)), "{v}");
    assert_eq!(v["mentions"], serde_json::json!(["bob"]));

    // Muting works for one-to-one chats too, and can be undone.
    let (ok, _, err) = skein(&bob, &["unmute", "#team"], None).await;
    assert!(ok, "{err}");
    let (ok, _, err) = skein(&bob, &["mute", "alice"], None).await;
    assert!(ok, "{err}");
    let (ok, _, err) = skein(&alice, &["send", "bob", "direct and muted"], None).await;
    assert!(ok, "{err}");
    let v = json(&bob_daemon.wait_line(T, "a muted direct message", message("direct and muted")).await);
    assert_eq!(v["muted"].as_bool(), Some(true), "{v}");
    let (ok, _, err) = skein(&alice, &["send", "#team", "unmuted again"], None).await;
    assert!(ok, "{err}");
    let v = json(&bob_daemon.wait_line(T, "the group unmuted", message("unmuted again")).await);
    assert_eq!(v["muted"].as_bool(), Some(false), "{v}");

    // With no daemon running, muting writes the history, and the next
    // daemon goes by it.
    bob_daemon.kill().await;
    let (ok, out, err) = skein(&bob, &["mute", "#team"], None).await;
    assert!(ok && out.contains("Muted #team"), "{out}{err}");
    let mut bob_daemon = online(&bob, &[]).await;
    let (ok, _, err) = skein(&alice, &["send", "#team", "muted while away"], None).await;
    assert!(ok, "{err}");
    let v = json(&bob_daemon.wait_line(T, "muted while away", message("muted while away")).await);
    assert_eq!(v["muted"].as_bool(), Some(true), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_members_are_looked_up_in_one_request() {
    use skein_proto::control::{Request, Response};
    let t = tracker_with_users(&["alice", "bob", "carol"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = skein_tests::login(&t, &dir.path().join("alice"), "alice", PW).await;
    skein_tests::login(&t, &dir.path().join("bob"), "bob", PW).await.client.close();
    let users = vec!["bob".to_owned(), "carol".to_owned(), "nobody".to_owned()];
    let Response::Peers(found) = alice.client.request(Request::LookupPeers { users }).await.expect("lookup") else {
        panic!("expected peers")
    };
    let names: Vec<&str> = found.iter().map(|p| p.user.as_str()).collect();
    assert_eq!(names, ["bob", "carol"], "unknown users are left out");
    assert_eq!(found[0].known.len(), 1, "bob's device, for sealing mail");
    assert!(found[1].known.is_empty(), "carol never logged in");
    let too_many = (0..501).map(|i| format!("user{i}")).collect();
    let e = alice.client.request(Request::LookupPeers { users: too_many }).await.expect_err("too many");
    assert_eq!(e.body().map(|b| b.code), Some(skein_proto::ErrorCode::TooLarge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_users_mail_goes_in_one_request_and_one_bad_user_spoils_no_one_elses() {
    use skein_proto::ErrorCode;
    use skein_proto::bytes::MailId;
    use skein_proto::control::{MailboxPut, Request, Response, SealedItem};
    let t = tracker_with_users(&["alice", "bob", "carol"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = skein_tests::login(&t, &dir.path().join("alice"), "alice", PW).await;
    let bob_device = {
        let bob = skein_tests::login(&t, &dir.path().join("bob"), "bob", PW).await;
        bob.client.close();
        bob.saved.cert().expect("cert").body.device_id
    };
    let item = |n: u8| SealedItem { id: MailId([n; 16]), to_device: bob_device, sealed: vec![n; 8] };
    let put = |user: &str, items| MailboxPut { to_user: user.into(), items };
    let ask = Request::MailboxPutMany(vec![
        put("bob", vec![item(1)]),
        put("nobody", vec![item(2)]),
        put("carol", vec![item(3)]),
        put("bob", vec![item(4)]),
    ]);
    let Response::MailboxStoredEach(answers) = alice.client.request(ask).await.expect("put") else {
        panic!("expected one answer per put")
    };
    let codes: Vec<Result<u32, ErrorCode>> = answers.into_iter().map(|a| a.map_err(|b| b.code)).collect();
    assert_eq!(
        codes,
        [Ok(1), Err(ErrorCode::NotFound), Err(ErrorCode::InvalidInput), Ok(1)],
        "an unknown user, and a device carol does not have, refuse only those items"
    );
    let store = t.store().await;
    let bob = store.user_by_name("bob").await.expect("read").expect("bob");
    assert_eq!(store.mailbox_count(bob.id, bob_device.0).await.expect("count"), 2);
    store.close().await;
    for bad in
        [vec![], vec![put("bob", vec![])], vec![put("bob", (0..=255).chain(0..=255).chain([0]).map(item).collect())]]
    {
        let e = alice.client.request(Request::MailboxPutMany(bad)).await.expect_err("refused");
        assert_eq!(e.body().map(|b| b.code), Some(ErrorCode::InvalidInput), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_missed_a_message_asks_its_sender_for_it() {
    let (t, _dir, [alice, bob]) = users_with_profiles(["alice", "bob"], PW).await;
    let (ok, _, err) = skein(&alice, &["group", "create", "team", "--members", "bob"], None).await;
    assert!(ok, "{err}");
    let _alice_daemon = online(&alice, &[]).await;
    let mut bob_daemon = online(&bob, &[]).await;
    let (ok, _, err) = skein(&alice, &["send", "#team", "one"], None).await;
    assert!(ok, "{err}");
    bob_daemon.wait_line(T, "the first", |l| l.contains(r#""text":"one""#)).await;

    // Bob goes away; the second waits in the mailbox, and is lost there.
    bob_daemon.kill().await;
    let (ok, out, err) = skein(&alice, &["send", "#team", "two"], None).await;
    assert!(ok && out.trim() == "queued", "{out}{err}");
    let store = t.store().await;
    let lost = store.mailbox_purge_older_than(skein_node::now_ms() as i64 + 60_000).await.expect("purge");
    assert_eq!(lost, 1, "the second message was in bob's mailbox");
    store.close().await;

    // Back, bob gets the third straight from alice, sees that alice's second
    // never came, and asks her for it.
    let mut bob_daemon = daemon(&bob, &[]);
    bob_daemon.wait_line(T, "bob back", |l| l.contains(r#""type":"connected""#)).await;
    let (ok, _, err) = skein(&alice, &["send", "#team", "three"], None).await;
    assert!(ok, "{err}");
    bob_daemon.wait_line(T, "the lost one, from alice herself", |l| l.contains(r#""text":"two""#)).await;
    let (ok, out, err) = skein(&bob, &["history", "#team", "--json"], None).await;
    assert!(ok, "{err}");
    let texts: Vec<String> = history_texts(&out).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["one", "two", "three"], "every message once, in order");

    // Away again: the fourth is lost in the mailbox and the fifth waits
    // there. Back, bob learns of the gap from the mailbox, with alice not
    // yet connected to him: he finds her device and asks it.
    bob_daemon.kill().await;
    let (ok, out, err) = skein(&alice, &["send", "#team", "four"], None).await;
    assert!(ok && out.trim() == "queued", "{out}{err}");
    let store = t.store().await;
    let lost = store.mailbox_purge_older_than(skein_node::now_ms() as i64 + 60_000).await.expect("purge");
    assert_eq!(lost, 1, "the fourth message was in bob's mailbox");
    store.close().await;
    let (ok, out, err) = skein(&alice, &["send", "#team", "five"], None).await;
    assert!(ok && out.trim() == "queued", "{out}{err}");
    let mut bob_daemon = daemon(&bob, &[]);
    bob_daemon.wait_line(T, "the fifth, from the mailbox", |l| l.contains(r#""text":"five""#)).await;
    bob_daemon.wait_line(T, "the lost fourth, from alice", |l| l.contains(r#""text":"four""#)).await;
    let (ok, out, err) = skein(&bob, &["history", "#team", "--json"], None).await;
    assert!(ok, "{err}");
    let texts: Vec<String> = history_texts(&out).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["one", "two", "three", "four", "five"], "every message once, in order");
}
