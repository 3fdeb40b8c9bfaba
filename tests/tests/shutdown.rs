//! SIGINT (Ctrl-C) ends the real `skein daemon` and `skein-tracker run`
//! cleanly and promptly: each exits with status 0 within seconds, a daemon
//! removes its control socket, the tracker tells a connected client it is
//! going, and, started again on the same data directory, it keeps its CA,
//! accounts, sessions and mailbox: nothing is initialised twice, saved
//! sessions resume, and a message queued before the stop is delivered
//! after it.

use serde_json::Value;
use skein_tests::{Proc, bin, init, skein};
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);
/// What "promptly" means here: the tracker drains its clients for at most
/// two seconds, then its connections for at most two more.
const PROMPT: Duration = Duration::from_secs(8);

async fn tracker_cmd(data: &Path, args: &[&str], password: Option<&str>) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(bin("skein-tracker"));
    cmd.args(args).arg("--data").arg(data);
    match password {
        Some(p) => cmd.env("SKEIN_PASSWORD", p),
        None => cmd.env_remove("SKEIN_PASSWORD"),
    };
    skein_tests::output(cmd, "skein-tracker").await
}

/// `skein-tracker run` on `data`, listening on `listen`; returns it and its address.
async fn run_tracker(data: &Path, listen: &str) -> (Proc, String) {
    let mut t = Proc::spawn(
        &bin("skein-tracker"),
        // Clients are marked offline after a minute of silence: anything
        // sooner is a goodbye.
        &[
            "run",
            "--data",
            data.to_str().expect("utf-8"),
            "--listen",
            listen,
            "--relay-listen",
            "127.0.0.1:0",
            "--idle-timeout-secs",
            "60",
        ],
        &[("RUST_LOG", "warn")],
    );
    let serving = t.wait_line(T, "the serving line", |l| l.starts_with("Tracker serving on UDP")).await;
    let addr = serving.split_whitespace().nth(4).expect("address").to_owned();
    (t, addr)
}

/// Sends SIGINT to `p` and waits for it to exit; returns its status and how long it took.
async fn interrupt(p: &mut Proc, what: &str) -> (ExitStatus, Duration) {
    let sent = Instant::now();
    let status = p.interrupt(what, PROMPT).await;
    (status, sent.elapsed())
}

fn status_of(json: &str, user: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    v.as_array()?.iter().find(|e| e["user"] == user).and_then(|e| e["status"].as_str().map(String::from))
}

async fn wait_status(observer: &Path, user: &str, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (ok, out, err) = skein(observer, &["presence", "--json"], None).await;
        assert!(ok, "presence: {err}");
        if status_of(&out, user).as_deref() == Some(want) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{user} not {want} after {within:?}: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sigint_stops_daemon_and_tracker_cleanly_and_the_data_survives() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("tracker");
    let (mut tracker, addr) = run_tracker(&data, "127.0.0.1:0").await;
    assert!(tracker.seen.iter().any(|l| l.contains("one-time password")), "first run initialises");
    for u in ["alice", "bob"] {
        let (ok, _, err) = tracker_cmd(&data, &["user", "add", u], Some(PW)).await;
        assert!(ok, "user add {u}: {err}");
    }
    let ca = data.join("ca.pem");
    let ca_before = std::fs::read(&ca).expect("CA");
    let (pa, pb) = (dir.path().join("alice"), dir.path().join("bob"));
    for (p, u) in [(&pa, "alice"), (&pb, "bob")] {
        let (ok, _, err) =
            skein(p, &["login", "--tracker", &addr, "--ca", ca.to_str().expect("utf-8"), "--user", u], Some(PW)).await;
        assert!(ok, "login {u}: {err}");
    }

    // A message for bob, whose daemon has not run yet, waits in the
    // tracker's mailbox; alice's daemon then stops on Ctrl-C.
    let mut alice = skein_tests::daemon(&pa, &[]);
    alice.wait_line(T, "alice connected", |l| l.contains("\"type\":\"connected\"")).await;
    let (ok, out, err) = skein(&pa, &["send", "bob", "kept across the restart"], None).await;
    assert!(ok, "send: {err}");
    assert_eq!(out.trim(), "queued");
    let (status, took) = interrupt(&mut alice, "alice's daemon").await;
    eprintln!("alice's daemon exited {status:?} {took:?} after SIGINT");
    assert!(status.success(), "clean exit on SIGINT: {status:?}");
    assert!(!pa.join("control.sock").exists(), "the daemon removes its control socket");

    // The tracker on Ctrl-C, with a client still connected: the client is
    // told, and the tracker stops.
    let mut session = skein_node::session::resume(&skein_node::profile::Profile::new(&pb)).await.expect("a session");
    let (status, took) = interrupt(&mut tracker, "the tracker").await;
    eprintln!("the tracker exited {status:?} {took:?} after SIGINT");
    assert!(status.success(), "clean exit on SIGINT: {status:?}");
    tracker.wait_line(T, "the goodbye line", |l| l == "Tracker stopped.").await;
    let told = tokio::time::timeout(T, async {
        while let Some(ev) = session.events.recv().await {
            if matches!(ev, skein_proto::control::Event::ShuttingDown { .. }) {
                return true;
            }
        }
        false
    })
    .await
    .expect("the connected client hears of the stop or loses the connection");
    assert!(told, "the connected client was not told the tracker is shutting down");
    session.client.close();

    // Started again on the same data and address: nothing is created anew.
    let (mut again, addr2) = run_tracker(&data, &addr).await;
    assert_eq!(addr2, addr);
    assert!(
        !again
            .seen
            .iter()
            .any(|l| l.contains("one-time password") || l.starts_with("Created") || l.starts_with("Issued")),
        "the restarted tracker initialised again: {:#?}",
        again.seen
    );
    assert_eq!(std::fs::read(&ca).expect("CA"), ca_before, "the CA is unchanged");
    let (ok, out, err) = tracker_cmd(&data, &["user", "list", "--json"], None).await;
    assert!(ok, "{err}");
    let users: Value = serde_json::from_str(&out).expect("users JSON");
    let names: Vec<_> = users.as_array().expect("list").iter().filter_map(|u| u["name"].as_str()).collect();
    assert_eq!(names, ["admin", "alice", "bob"]);

    // Saved sessions resume without a password, and the queued message arrives.
    let (ok, _, err) = skein(&pa, &["presence", "--json"], None).await;
    assert!(ok, "alice's session resumes: {err}");
    let mut bob = skein_tests::daemon(&pb, &[]);
    bob.wait_line(T, "the message queued before the stop", |l| {
        serde_json::from_str::<Value>(l)
            .is_ok_and(|v| v["type"] == "message" && v["from"] == "alice" && v["text"] == "kept across the restart")
    })
    .await;
    let (status, took) = interrupt(&mut bob, "bob's daemon").await;
    eprintln!("bob's daemon exited {status:?} {took:?} after SIGINT");
    assert!(status.success(), "clean exit on SIGINT: {status:?}");
    assert!(!pb.join("control.sock").exists(), "the daemon removes its control socket");
    let (status, _) = interrupt(&mut again, "the restarted tracker").await;
    assert!(status.success(), "clean exit on SIGINT: {status:?}");
}

#[tokio::test]
async fn a_daemon_stopped_by_sigint_shows_offline_at_once() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("tracker");
    let (_tracker, addr) = run_tracker(&data, "127.0.0.1:0").await;
    for u in ["alice", "bob"] {
        let (ok, _, err) = tracker_cmd(&data, &["user", "add", u], Some(PW)).await;
        assert!(ok, "user add {u}: {err}");
    }
    let ca = data.join("ca.pem");
    let (pa, pb) = (dir.path().join("alice"), dir.path().join("bob"));
    for (p, u) in [(&pa, "alice"), (&pb, "bob")] {
        let (ok, _, err) =
            skein(p, &["login", "--tracker", &addr, "--ca", ca.to_str().expect("utf-8"), "--user", u], Some(PW)).await;
        assert!(ok, "login {u}: {err}");
    }
    let mut bob = skein_tests::daemon(&pb, &[]);
    bob.wait_line(T, "bob connected", |l| l.contains("\"type\":\"connected\"")).await;
    wait_status(&pa, "bob", "online", T).await;
    let (status, _) = interrupt(&mut bob, "bob's daemon").await;
    assert!(status.success(), "clean exit on SIGINT: {status:?}");
    // The idle timeout is a minute: offline within seconds means the daemon said goodbye.
    let took = wait_status(&pa, "bob", "offline", Duration::from_secs(5)).await;
    eprintln!("bob showed offline {took:?} after his daemon exited");
}
