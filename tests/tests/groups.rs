//! Groups with the real `skein` binary against a real tracker: a user
//! makes a discussion group, members see it (through their daemon or a
//! session of their own), every change is a new signed version pushed to
//! the members' daemons as an event line, only the owner manages it, names
//! that match several groups are refused with their ids, and a department's
//! group follows a user an administrator moves.

use serde_json::Value;
use skein_tests::{daemon, login_profile, skein, tracker_with_users};
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
    // As an administrator would, with the admin CLI on the tracker's data.
    let admin = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(skein_tests::bin("skein-tracker"));
        cmd.args(args).arg("--data").arg(&t.config.data_dir).stdin(std::process::Stdio::null());
        skein_tests::output(cmd, "skein-tracker")
    };
    let (ok, out, err) = admin(&["user", "move", "erin", "--dept", "Sales"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("Moved erin to Sales; 3 department group(s) changed"), "{out}");
    let (ok, out, err) = admin(&["group", "create", "all hands", "--org", "--members", "erin,frank"]).await;
    assert!(ok && out.contains("Made org group all hands"), "{out}{err}");
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
