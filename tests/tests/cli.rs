//! The real binaries, driven as a new user would: `skein-tracker run`,
//! `user add`, `skein login`, a `skein daemon` that is killed, and every
//! common mistake answered with a one-line error and a non-zero exit.

use serde_json::Value;
use skein_tests::{Proc, bin, init, skein};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

async fn tracker_cmd(data: &Path, args: &[&str], password: Option<&str>) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(bin("skein-tracker"));
    cmd.args(args).arg("--data").arg(data).stdin(Stdio::null()).kill_on_drop(true);
    match password {
        Some(p) => cmd.env("SKEIN_PASSWORD", p),
        None => cmd.env_remove("SKEIN_PASSWORD"),
    };
    let out = cmd.output().await.expect("run skein-tracker");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn presence_of(json: &str, user: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    v.as_array()?.iter().find(|e| e["user"] == user).and_then(|e| e["status"].as_str().map(String::from))
}

fn one_line_error(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected exactly one error line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0]
}

#[tokio::test]
async fn new_user_walkthrough_with_real_binaries() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("tracker");
    let data_s = data.to_str().expect("utf-8 path");
    let mut tracker = Proc::spawn(
        &bin("skein-tracker"),
        &["run", "--data", data_s, "--listen", "127.0.0.1:0", "--idle-timeout-secs", "3"],
        &[("RUST_LOG", "warn")],
    );
    let admin_line =
        tracker.wait_line(Duration::from_secs(30), "the admin password", |l| l.contains("one-time password")).await;
    assert!(admin_line.split_whitespace().last().is_some_and(|p| p.len() >= 16), "{admin_line}");
    let serving = tracker
        .wait_line(Duration::from_secs(30), "the serving line", |l| l.starts_with("Tracker serving on UDP"))
        .await;
    let addr = serving.split_whitespace().nth(4).expect("address in the serving line").to_owned();
    let ca = data.join("ca.pem");
    let ca_s = ca.to_str().expect("utf-8");

    // Users are added while the tracker runs.
    for u in ["alice", "bob"] {
        let (ok, out, err) = tracker_cmd(&data, &["user", "add", u, "--dept", "Engineering/Backend"], Some(PW)).await;
        assert!(ok, "user add {u}: {err}");
        assert!(out.contains(u), "{out}");
    }
    let (ok, _, err) = tracker_cmd(&data, &["user", "add", "alice"], Some(PW)).await;
    assert!(!ok);
    assert!(one_line_error(&err).contains("already exists"), "{err}");
    let (ok, out, _) = tracker_cmd(&data, &["user", "list", "--json"], None).await;
    assert!(ok);
    let users: Value = serde_json::from_str(&out).expect("user list JSON");
    assert_eq!(users.as_array().map(Vec::len), Some(3), "admin, alice, bob: {out}");
    let (ok, out, _) = tracker_cmd(&data, &["export-ca"], None).await;
    assert!(ok && out.contains("BEGIN CERTIFICATE"));

    let pa = dir.path().join("alice");
    let pb = dir.path().join("bob");
    for (p, u) in [(&pa, "alice"), (&pb, "bob")] {
        let (ok, out, err) = skein(p, &["login", "--tracker", &addr, "--ca", ca_s, "--user", u], Some(PW)).await;
        assert!(ok, "login {u}: {err}");
        assert!(out.contains(&format!("Logged in as {u}")), "{out}");
    }

    // Bob runs his daemon; alice sees him online.
    let mut bob = Proc::spawn(&bin("skein"), &["--profile", pb.to_str().expect("utf-8"), "daemon"], &[]);
    bob.wait_line(Duration::from_secs(20), "bob connected", |l| l.contains("\"type\":\"connected\"")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out, err) = skein(&pa, &["presence", "--json"], None).await;
        assert!(ok, "{err}");
        if presence_of(&out, "bob").as_deref() == Some("online") {
            break;
        }
        assert!(Instant::now() < deadline, "bob never showed online: {out}");
    }
    let (ok, out, _) = skein(&pa, &["directory", "bo", "--json"], None).await;
    assert!(ok);
    let found: Value = serde_json::from_str(&out).expect("directory JSON");
    assert_eq!(found[0]["name"], "bob");
    assert_eq!(found[0]["department"], "Engineering/Backend");

    // Bob's status changes through his daemon's control socket.
    let (ok, _, err) = skein(&pb, &["status", "busy"], None).await;
    assert!(ok, "{err}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while presence_of(&skein(&pa, &["presence", "--json"], None).await.1, "bob").as_deref() != Some("busy") {
        assert!(Instant::now() < deadline, "bob never showed busy");
    }

    // Kill bob's daemon outright: offline within the idle timeout (3 s here).
    bob.kill().await;
    let killed = Instant::now();
    loop {
        let (_, out, _) = skein(&pa, &["presence", "--json"], None).await;
        if presence_of(&out, "bob").as_deref() == Some("offline") {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(8), "bob still not offline: {out}");
    }

    // Mistakes, each a one-line error and a non-zero exit.
    let px = dir.path().join("x");
    let (ok, _, err) =
        skein(&px, &["login", "--tracker", &addr, "--ca", ca_s, "--user", "alice"], Some("wrong password")).await;
    assert!(!ok);
    assert!(one_line_error(&err).contains("wrong user name or password"), "{err}");
    let (ok, _, err) =
        skein(&px, &["login", "--tracker", &addr, "--ca", "/nonexistent/ca.pem", "--user", "alice"], Some(PW)).await;
    assert!(!ok);
    assert!(one_line_error(&err).contains("/nonexistent/ca.pem"), "{err}");
    let (ok, _, err) =
        skein(&px, &["login", "--tracker", "127.0.0.1:9", "--ca", ca_s, "--user", "alice"], Some(PW)).await;
    assert!(!ok);
    assert!(one_line_error(&err).contains("cannot reach the tracker"), "{err}");
    let (ok, _, err) = skein(&px, &["presence"], None).await;
    assert!(!ok);
    assert!(one_line_error(&err).contains("not logged in"), "{err}");
    let (ok, _, err) = skein(&pa, &["status", "sleepy"], None).await;
    assert!(!ok);
    assert!(one_line_error(&err).contains("online, away or busy"), "{err}");

    let (ok, _, err) = tracker_cmd(&data, &["user", "disable", "bob"], None).await;
    assert!(ok, "{err}");
    let (ok, _, err) = skein(&pb, &["presence"], None).await;
    assert!(!ok);
    let line = one_line_error(&err);
    assert!(line.contains("disabled") || line.contains("log in again"), "{line}");

    let (ok, out, err) = skein(&pa, &["logout"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("Logged out alice"), "{out}");
    let (ok, _, err) = skein(&pa, &["presence"], None).await;
    assert!(!ok && err.contains("not logged in"), "{err}");

    // The tracker stops cleanly on SIGTERM.
    let pid = tracker.child.id().expect("pid");
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let status = tokio::time::timeout(Duration::from_secs(10), tracker.child.wait())
        .await
        .expect("stopped in time")
        .expect("status");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}
