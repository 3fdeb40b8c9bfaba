//! The tracker's Prometheus metrics at `/metrics`, read after real work
//! (logins, a wrong password, presence, an API call, an item waiting in
//! the mailbox) and parsed by the reference parser, Python's
//! `prometheus_client`, as a Prometheus server would read them.

use serde_json::{Value, json};
use skein_node::profile::Profile;
use skein_tests::http::request;
use skein_tests::{TestTracker, init, login};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

const PW: &str = "correct horse battery";

/// `text` parsed by `prometheus_client`'s parser: one `[name, labels, value]` per sample.
async fn parse(text: &str) -> Vec<(String, Value, f64)> {
    const SCRIPT: &str = "import json, sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
        print(json.dumps(out))\n";
    // Debian's Python, where its python3-prometheus-client package goes
    // (another python3 may come first on PATH).
    let python = ["/usr/bin/python3"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap_or("python3");
    let mut child = tokio::process::Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test installs it, with python3-prometheus-client)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).await.expect("write");
    let out = child.wait_with_output().await.expect("python3");
    assert!(
        out.status.success(),
        "the reference parser refused the metrics (or is missing: install python3-prometheus-client): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).expect("parser JSON");
    samples
}

fn value(samples: &[(String, Value, f64)], name: &str, labels: &Value) -> Option<f64> {
    samples.iter().find(|(n, l, _)| n == name && l == labels).map(|(_, _, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python's prometheus_client (python3-prometheus-client; scripts/test installs it and runs this)"]
async fn metrics_count_what_the_tracker_did_and_parse_as_prometheus_reads_them() {
    init();
    let (t, api) = TestTracker::start_with_api().await;
    t.add_user("alice", PW).await;
    t.add_user("bob", PW).await;
    let store = t.store().await;
    let app = skein_tracker::apps::create(&store, "Alerts", &["send".into()], None, 1).await.expect("app");
    store.close().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = login(&t, &dir.path().join("alice"), "alice", PW).await;
    let bob = login(&t, &dir.path().join("bob"), "bob", PW).await;
    let wrong = skein_node::session::login(
        &Profile::new(dir.path().join("eve")),
        &t.address(),
        &t.ca_path(),
        "alice",
        "not her password".into(),
    )
    .await;
    assert!(wrong.is_err(), "a wrong password is refused");
    // bob goes away; a message from an app waits for his device.
    drop(bob);
    let auth = format!("Bearer {}", app.token);
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let body = json!({"to": "bob", "text": "Disk 90% full"}).to_string();
    let r = request(api, "POST", "/v1/messages", &headers, body.as_bytes()).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let r = request(api, "GET", "/v1/presence?users=alice", &[], b"").await;
    assert_eq!(r.status, 401);

    let r = request(api, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.header("content-type")
    );
    let text = String::from_utf8(r.body.clone()).expect("UTF-8");
    let samples = parse(&text).await;
    let v = |name: &str, labels: Value| value(&samples, name, &labels);
    assert!(v("skein_tracker_connections", json!({})).is_some_and(|n| n >= 1.0), "alice is connected:\n{text}");
    let logins = |outcome: &str| v("skein_tracker_requests_total", json!({"kind": "Login", "outcome": outcome}));
    assert_eq!(logins("ok"), Some(2.0), "alice's and bob's logins:\n{text}");
    assert_eq!(logins("BadCredentials"), Some(1.0), "the wrong password, by its reason:\n{text}");
    assert!(v("skein_tracker_presence_fanout_seconds_count", json!({})).is_some_and(|n| n >= 2.0), "{text}");
    let call =
        |route: &str, status: &str| v("skein_tracker_api_calls_total", json!({"route": route, "status": status}));
    assert_eq!(call("/v1/messages", "202"), Some(1.0), "{text}");
    assert_eq!(call("/v1/presence", "401"), Some(1.0), "{text}");
    assert_eq!(v("skein_tracker_mailbox_items", json!({})), Some(1.0), "bob's waiting message:\n{text}");
    assert!(v("skein_tracker_mailbox_oldest_age_seconds", json!({})).is_some_and(|a| (0.0..60.0).contains(&a)));
    assert!(v("skein_tracker_relay_reservations", json!({})).is_some(), "{text}");
    assert!(v("skein_tracker_relayed_bytes_total", json!({})).is_some(), "{text}");
    drop(alice);
}
