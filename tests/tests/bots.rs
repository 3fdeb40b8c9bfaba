//! Bots (`skein daemon --forward-to URL`): every message the bot's user
//! receives is POSTed, signed, to a company system (here an HTTP server in
//! the test that checks the signature itself); failed posts are tried
//! again from a queue on disk that outlives a SIGKILL of the daemon; and a
//! `text` in the system's answer comes back into the conversation.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use skein_tests::{Proc, bin, online, skein, users_with_profiles};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";
const SECRET: &str = "a-shared-secret-of-32-characters";
const T: Duration = Duration::from_secs(30);

/// What the company system saw, and whether it is answering yet.
#[derive(Default)]
struct System {
    up: AtomicBool,
    /// Posts whose signature held: (body, time they were signed).
    taken: Mutex<Vec<Value>>,
    /// Posts refused: while down, or with a bad signature.
    refused: Mutex<Vec<String>>,
}

/// Checks the signature as a receiver would, without Skein's code.
fn signed(headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let ts = headers.get("x-skein-timestamp").and_then(|v| v.to_str().ok()).ok_or("no timestamp")?;
    let sig = headers.get("x-skein-signature").and_then(|v| v.to_str().ok()).ok_or("no signature")?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let want = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    let age = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs()
        as i64
        - ts.parse::<i64>().map_err(|e| e.to_string())?;
    if sig != want || !(-60..=300).contains(&age) {
        return Err(format!("bad signature {sig} (want {want}, age {age} s)"));
    }
    Ok(())
}

async fn hook(State(sys): State<Arc<System>>, headers: HeaderMap, body: axum::body::Bytes) -> (StatusCode, String) {
    if let Err(why) = signed(&headers, &body) {
        sys.refused.lock().expect("lock").push(why);
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    if !sys.up.load(Ordering::SeqCst) {
        sys.refused.lock().expect("lock").push("down".into());
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    }
    let v: Value = serde_json::from_slice(&body).expect("the post is JSON");
    let text = v["message"]["text"].as_str().unwrap_or_default().to_owned();
    sys.taken.lock().expect("lock").push(v);
    let answer = if text.contains("printer") { json!({"text": "Ticket T-7 opened for you"}) } else { json!({}) };
    (StatusCode::OK, answer.to_string())
}

async fn serve_system(sys: Arc<System>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route("/skein", axum::routing::post(hook)).with_state(sys);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/skein")
}

/// The system over HTTPS, with a certificate from a CA of its own (as a
/// company's internal service has): its URL and that CA's file.
async fn serve_system_tls(sys: Arc<System>, dir: &Path) -> (String, std::path::PathBuf) {
    let ca = skein_certs::OrgCa::generate("Helpdesk Inc", 30).expect("a CA");
    let (ca_pem, ca_key) = (dir.join("helpdesk-ca.pem"), dir.join("helpdesk-ca.key"));
    ca.save(&ca_pem, &ca_key, false).expect("save the CA");
    let (cert, key) = (dir.join("helpdesk.pem"), dir.join("helpdesk.key"));
    ca.issue_tracker_cert(&["127.0.0.1".into()], 30).expect("a certificate").save(&cert, &key, false).expect("save");
    let chain = skein_certs::rustls_io::load_certs(&cert).expect("certificate");
    let key = skein_certs::rustls_io::load_private_key(&key).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("TLS settings");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = tokio_util::sync::CancellationToken::new();
    let tls = skein_tracker::api::https::TlsListener::new(listener, Arc::new(tls), stop).expect("listen");
    let app = axum::Router::new().route("/skein", axum::routing::post(hook)).with_state(sys);
    tokio::spawn(async move { axum::serve(tls, app).await });
    (format!("https://{addr}/skein"), ca_pem)
}

fn bot(profile: &Path, url: &str) -> Proc {
    bot_with(profile, url, &[])
}

fn bot_with(profile: &Path, url: &str, extra: &[&str]) -> Proc {
    let p = profile.to_str().expect("utf-8");
    let mut args = vec!["--profile", p, "daemon", "--listen", "127.0.0.1:0", "--forward-to", url];
    args.extend_from_slice(extra);
    Proc::spawn(&bin("skein"), &args, &[("SKEIN_FORWARD_SECRET", SECRET)])
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_forwards_signed_retries_from_disk_after_a_kill_and_answers_back() {
    skein_tests::init();
    let (_t, _dir, [alice, helpdesk]) = users_with_profiles(["alice", "helpdesk"], PW).await;
    let sys = Arc::new(System::default());
    let url = serve_system(sys.clone()).await;
    let mut alice_d = online(&alice, &[]).await;
    let mut bot_d = bot(&helpdesk, &url);
    bot_d.wait_line(T, "the bot connected", |l| l.contains(r#""type":"connected""#)).await;

    // The system is down at first: the bot keeps trying.
    let (ok, out, err) = skein(&alice, &["send", "helpdesk", "the printer on floor 3 is broken"], None).await;
    assert!(ok, "{out}{err}");
    until("the bot to try while the system is down", || sys.refused.lock().expect("lock").len() >= 2).await;
    assert!(sys.refused.lock().expect("lock").iter().all(|r| r == "down"), "every post was signed right");
    sys.up.store(true, Ordering::SeqCst);
    until("the forwarded message", || !sys.taken.lock().expect("lock").is_empty()).await;
    let post = sys.taken.lock().expect("lock")[0].clone();
    assert_eq!(post["message"]["from"], "alice");
    assert_eq!(post["message"]["text"], "the printer on floor 3 is broken");
    assert_eq!(post["message"]["conversation"], "alice");
    // The system's answer comes back into the conversation, from the bot.
    let line = alice_d
        .wait_line(T, "the bot's reply", |l| l.contains(r#""type":"message""#) && l.contains("Ticket T-7"))
        .await;
    let reply: Value = serde_json::from_str(&line).expect("event JSON");
    assert_eq!((reply["from"].as_str(), reply["text"].as_str()), (Some("helpdesk"), Some("Ticket T-7 opened for you")));

    // The system goes down again, a message is queued, and the bot's
    // process is killed: the message waits on disk and goes out after a restart.
    sys.up.store(false, Ordering::SeqCst);
    let refused_before = sys.refused.lock().expect("lock").len();
    let (ok, _, err) = skein(&alice, &["send", "helpdesk", "also: the coffee machine"], None).await;
    assert!(ok, "{err}");
    until("a try while down", || sys.refused.lock().expect("lock").len() > refused_before).await;
    bot_d.kill().await;
    let queue = skein_node::forward::queue_dir(&helpdesk);
    let waiting = std::fs::read_dir(&queue).expect("the queue").filter_map(Result::ok).count();
    assert_eq!(waiting, 1, "the unsent message is on disk");
    sys.up.store(true, Ordering::SeqCst);
    let mut bot_d = bot(&helpdesk, &url);
    until("the queued message after the restart", || {
        sys.taken.lock().expect("lock").iter().any(|p| p["message"]["text"] == "also: the coffee machine")
    })
    .await;
    until("the queue to empty", || std::fs::read_dir(&queue).map(|d| d.count() == 0).unwrap_or(false)).await;
    let taken = sys.taken.lock().expect("lock").len();
    assert_eq!(taken, 2, "each message was taken once");
    for d in [&mut alice_d, &mut bot_d] {
        d.kill().await;
    }
}

#[tokio::test]
async fn a_bot_without_its_secret_or_with_a_bad_url_does_not_start() {
    skein_tests::init();
    let (_t, _dir, [helpdesk]) = users_with_profiles(["helpdesk"], PW).await;
    let (ok, _, err) = skein(&helpdesk, &["daemon", "--forward-to", "http://127.0.0.1:9/x"], None).await;
    assert!(!ok && err.contains("SKEIN_FORWARD_SECRET"), "{err}");
    let secret = helpdesk.join("secret");
    std::fs::write(&secret, SECRET).expect("write");
    let s = secret.to_str().expect("utf-8");
    let (ok, _, err) =
        skein(&helpdesk, &["daemon", "--forward-to", "ftp://bots.example/x", "--forward-secret-file", s], None).await;
    assert!(!ok && err.contains("https://"), "{err}");
    let args = ["daemon", "--forward-to", "https://bots.example/x", "--forward-secret-file", s, "--forward-ca", s];
    let (ok, _, err) = skein(&helpdesk, &args, None).await;
    assert!(!ok && err.contains("--forward-ca") && err.contains("no PEM certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_forwards_over_https_to_a_system_its_company_ca_vouches_for() {
    skein_tests::init();
    let (_t, dir, [alice, helpdesk]) = users_with_profiles(["alice", "helpdesk"], PW).await;
    let sys = Arc::new(System::default());
    sys.up.store(true, Ordering::SeqCst);
    let (url, ca) = serve_system_tls(sys.clone(), dir.path()).await;
    let mut bot_d = bot_with(&helpdesk, &url, &["--forward-ca", ca.to_str().expect("utf-8")]);
    bot_d.wait_line(T, "the bot connected", |l| l.contains(r#""type":"connected""#)).await;
    let mut alice_d = skein_tests::online(&alice, &[]).await;
    let (ok, _, err) = skein(&alice, &["send", "helpdesk", "the printer needs toner"], None).await;
    assert!(ok, "{err}");
    until("the message over HTTPS", || !sys.taken.lock().expect("lock").is_empty()).await;
    assert_eq!(sys.taken.lock().expect("lock")[0]["message"]["text"], "the printer needs toner");
    assert!(sys.refused.lock().expect("lock").is_empty(), "the signature held");
    for d in [&mut alice_d, &mut bot_d] {
        d.kill().await;
    }
}
