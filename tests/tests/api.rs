//! The tracker's HTTP API (`--roles control,relay,api`), called over real
//! TCP as a company system calls it: health, app tokens and their scopes,
//! presence and the directory, problem bodies for every refusal, the rate
//! limit, the audit log, the OpenAPI document, the `app` commands, and
//! HTTPS with the tracker's certificate.

use skein_node::profile::Profile;
use skein_proto::control::{PresenceStatus, Request, SetPresence};
use skein_tests::http::{Reply, request, request_tls};
use skein_tests::{TestTracker, bin, init, output};
use std::net::SocketAddr;
use tokio::process::Command;

const PW: &str = "correct horse battery";

async fn get(api: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(api, "GET", path, &headers, b"").await
}

/// Asserts `r` is a problem body with `status` whose detail contains `says`.
fn problem(r: &Reply, status: u16, says: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let body = r.json();
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string(), "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(says), "{detail:?} does not say {says:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_read_presence_and_the_directory_with_their_scopes_and_every_refusal_is_a_problem() {
    init();
    let (t, api) = TestTracker::start_with_api().await;
    assert_eq!(get(api, "/healthz", None).await.json()["status"], "ok");
    assert_eq!(get(api, "/readyz", None).await.json()["status"], "ready");
    // The OpenAPI document, made from the handlers.
    let doc = get(api, "/openapi.json", None).await.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    for path in ["/v1/presence", "/v1/directory"] {
        let op = &doc["paths"][path]["get"];
        assert!(op["responses"]["200"].is_object() && op["responses"]["429"].is_object(), "{path}: {op}");
        assert_eq!(op["security"][0]["bearer"], serde_json::json!([]), "{path}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["ProblemBody"].is_object());
    t.add_user("alice", PW).await;
    let store = t.store().await;
    let reader = skein_tracker::apps::create(&store, "Wallboard", &["presence".into()], None, 1).await.expect("app");
    let sender = skein_tracker::apps::create(&store, "Alerts", &["send".into()], None, 1).await.expect("app");

    problem(&get(api, "/v1/presence?users=alice", None).await, 401, "Authorization: Bearer");
    problem(&get(api, "/v1/presence?users=alice", Some("skn_forged")).await, 401, "not that of a live app");
    problem(&get(api, "/v1/presence?users=alice", Some(&sender.token)).await, 403, "\"presence\" scope");
    problem(&get(api, "/v1/presence?users=alice,nobody", Some(&reader.token)).await, 404, "no such user: nobody");
    problem(&get(api, "/v1/presence", Some(&reader.token)).await, 400, "?users=");
    problem(&get(api, "/v2/anything", Some(&reader.token)).await, 404, "no such route");
    let post =
        request(api, "POST", "/v1/presence", &[("Authorization", &format!("Bearer {}", reader.token))], b"{}").await;
    problem(&post, 405, "does not take that method");

    // Presence, as it changes.
    let r = get(api, "/v1/presence?users=alice", Some(&reader.token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["status"], "offline");
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = Profile::new(dir.path().join("alice"));
    let alice =
        skein_node::session::login(&profile, &t.address(), &t.ca_path(), "alice", PW.into()).await.expect("login");
    let online = SetPresence { status: PresenceStatus::Online, note: None };
    alice.client.request(Request::SetPresence(online)).await.expect("alice is online");
    let r = get(api, "/v1/presence?users=alice", Some(&reader.token)).await;
    assert_eq!((r.json()[0]["user"].clone(), r.json()[0]["status"].clone()), ("alice".into(), "online".into()));
    let r = get(api, "/v1/directory?q=ali", Some(&reader.token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["users"][0]["name"], "alice");
    assert_eq!(r.json()["users"][0]["status"], "online");
    drop(alice);

    // The rate limit: a burst, then 429 with Retry-After.
    let mut limited = None;
    for _ in 0..120 {
        let r = get(api, "/v1/presence?users=alice", Some(&reader.token)).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("the app's rate limit answers 429");
    problem(&limited, 429, "rate limit");
    assert!(limited.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1));

    // The audit log names the app, the route, the status and the caller.
    let log = store.audit_log(500).await.expect("audit log");
    assert!(log.iter().any(|l| l.app == "Wallboard" && l.route == "/v1/presence" && l.status == 404));
    assert!(log.iter().any(|l| l.app == "Alerts" && l.status == 403 && l.remote.starts_with("127.0.0.1:")));
    assert!(log.iter().any(|l| l.app == "Wallboard" && l.status == 429));

    // A revoked token opens nothing.
    store.revoke_app("Wallboard", 2).await.expect("revoke");
    problem(&get(api, "/v1/directory", Some(&reader.token)).await, 401, "revoked");
    store.close().await;
}

async fn tracker_cmd(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(bin("skein-tracker"));
    cmd.args(args).arg("--data").arg(data).env("RUST_LOG", "warn");
    output(cmd, "skein-tracker").await
}

#[tokio::test]
async fn apps_are_made_listed_and_revoked_from_the_command_line() {
    init();
    // The API serves plain HTTP on loopback only, and says so before it
    // makes anything.
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["run", "--roles", "control,relay,api", "--api-listen", "0.0.0.0:7480"];
    let (ok, _, err) = tracker_cmd(&dir.path().join("never"), &args).await;
    assert!(!ok && err.contains("loopback") && err.contains("proxy"), "{err}");
    assert!(!dir.path().join("never").join("ca.pem").exists(), "nothing was made");
    let mut t = TestTracker::start().await;
    t.stop().await;
    let data = t.config.data_dir.clone();
    let (ok, out, err) =
        tracker_cmd(&data, &["app", "create", "Ticket system", "--scopes", "send,presence", "--json"]).await;
    assert!(ok, "{err}");
    let made: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(made["name"], "Ticket system");
    assert!(made["token"].as_str().is_some_and(|t| t.starts_with("skn_")), "{made}");
    let (ok, _, err) = tracker_cmd(&data, &["app", "create", "Bad", "--scopes", "send,root"]).await;
    assert!(!ok && err.contains("\"root\"") && err.contains("send, presence, admin"), "{err}");
    let (ok, _, err) = tracker_cmd(&data, &["app", "create", "Ticket system", "--scopes", "send"]).await;
    assert!(!ok && err.contains("exists already"), "{err}");
    let (ok, out, err) = tracker_cmd(&data, &["app", "list", "--json"]).await;
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(list[0]["scopes"], serde_json::json!(["send", "presence"]));
    assert!(list[0]["revoked_at_ms"].is_null());
    let (ok, _, err) = tracker_cmd(&data, &["app", "revoke", "Ticket system"]).await;
    assert!(ok, "{err}");
    let (_, out, _) = tracker_cmd(&data, &["app", "list"]).await;
    assert!(out.contains("Ticket system  revoked"), "{out}");
    let (ok, _, err) = tracker_cmd(&data, &["app", "revoke", "Nobody"]).await;
    assert!(!ok && err.contains("no app named"), "{err}");

    // Webhooks: made for a place that exists, listed, revoked.
    let (ok, _, err) = tracker_cmd(&data, &["hook", "create", "--to", "#nowhere"]).await;
    assert!(!ok && err.contains("no open group is named \"nowhere\""), "{err}");
    let (ok, out, err) = tracker_cmd(&data, &["hook", "create", "--to", "admin", "--json"]).await;
    assert!(ok, "{err}");
    let made: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!((made["name"].as_str(), made["to"].as_str()), (Some("Webhook"), Some("admin")), "{made}");
    assert!(made["path"].as_str().is_some_and(|p| p.starts_with("/hooks/") && p.contains("/skn_")), "{made}");
    let (ok, out, err) = tracker_cmd(&data, &["hook", "create", "--to", "admin"]).await;
    assert!(ok && out.contains("Created webhook Webhook 2 posting to admin") && out.contains("/hooks/"), "{out}{err}");
    let (_, out, _) = tracker_cmd(&data, &["hook", "list"]).await;
    assert!(out.contains("Webhook  active  posts to admin") && !out.contains("Ticket system"), "{out}");
    let (ok, _, err) = tracker_cmd(&data, &["hook", "revoke", "Ticket system"]).await;
    assert!(!ok && err.contains("no webhook named"), "{err}");
    let (ok, _, err) = tracker_cmd(&data, &["hook", "revoke", "Webhook"]).await;
    assert!(ok, "{err}");
    let (_, out, _) = tracker_cmd(&data, &["hook", "list", "--json"]).await;
    let list: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(list[0]["revoked_at_ms"].is_number() && list[1]["revoked_at_ms"].is_null(), "{list}");
}

#[tokio::test]
async fn the_api_serves_https_with_the_trackers_certificate_and_plain_http_only_on_loopback() {
    init();
    let (t, api) = TestTracker::start_with_api_tls().await;
    let r = request_tls(api, &t.ca_path(), "localhost", "GET", "/healthz").await.expect("a certificate the CA signed");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    // Another organisation's CA does not vouch for it.
    let dir = tempfile::tempdir().expect("tempdir");
    let (other, key) = (dir.path().join("other.pem"), dir.path().join("other.key"));
    skein_certs::OrgCa::generate("Other Org", 30).expect("a CA").save(&other, &key, false).expect("save");
    let refused = request_tls(api, &other, "localhost", "GET", "/healthz").await.expect_err("an unknown issuer");
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(api).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    // Without HTTPS the API serves loopback only; with it, any address.
    let away: SocketAddr = "198.18.0.1:7480".parse().expect("address");
    let e = skein_tracker::api::check_listen(away, false).expect_err("plain HTTP away from loopback");
    assert!(e.to_string().contains("--api-tls"), "{e}");
    skein_tracker::api::check_listen(away, true).expect("HTTPS anywhere");
}
