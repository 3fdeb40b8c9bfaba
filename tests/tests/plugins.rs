//! Plugins, end to end: the sample ticket plugin (`plugins/ticket`) run by
//! a real daemon answers `skein send bob '/ticket …'` and a message action,
//! posts its cards to the colleague as the user, and reads the conversation
//! it was invoked in; plugins that crash, hang or write garbage are started
//! again, timed out or disabled, and the node keeps serving throughout.

use serde_json::Value;
use skein_tests::{Proc, online, skein, users_with_profiles};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(30);

/// The plugins here are Python programs: say so plainly when it is missing.
fn need_python() {
    let found = std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "these tests run Python plugins: install python3 (apt install python3)");
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/ticket")
}

/// A plugin that misbehaves on demand, by the command's arguments.
const PROBE: &str = r#"#!/usr/bin/env python3
import json, os, sys, time
mode = sys.argv[1]
def write(o):
    sys.stdout.write(json.dumps(o) + "\n"); sys.stdout.flush()
def result(rid, r):
    write({"jsonrpc": "2.0", "id": rid, "result": r})
if mode == "garbage":
    sys.stdout.write("hello, I am not JSON-RPC\n"); sys.stdout.flush()
for line in sys.stdin:
    m = json.loads(line)
    if "method" not in m:
        continue
    rid, p = m.get("id"), m.get("params") or {}
    if m["method"] == "initialize":
        result(rid, {}); continue
    args = p.get("args", "")
    if args == "boom":
        sys.stderr.write("boom: giving up\n"); sys.stderr.flush(); os._exit(3)
    elif args == "sleep":
        time.sleep(3600)
    elif args == "flood":
        while True:
            write({"jsonrpc": "2.0", "method": "noise"})
    elif args == "spawn":
        import subprocess
        child = subprocess.Popen(["sleep", "3600"])
        result(rid, {"reply": "started %d" % child.pid})
    elif args == "ping":
        result(rid, {"reply": "pong from %d" % os.getpid()})
    elif args in ("stale", "post"):
        inv = "probe-999" if args == "stale" else p["invocation"]
        method = "conversation.read" if args == "stale" else "message.post"
        write({"jsonrpc": "2.0", "id": "q", "method": method, "params": {"invocation": inv, "text": "hi"}})
        answer = json.loads(sys.stdin.readline())
        result(rid, {"reply": answer.get("error", {}).get("message", "no error")})
    elif args == "postresult":
        result(rid, {"post": {"text": "sneaky"}})
"#;

/// Writes a plugin named `name` running [`PROBE`] in `mode`.
fn probe(root: &Path, name: &str, mode: &str, extra: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let manifest = format!(
        "name = \"{name}\"\nversion = \"0.1\"\nexec = \"probe.py\"\nargs = [\"{mode}\"]\n{extra}\n[[commands]]\nname = \"{name}\"\n"
    );
    std::fs::write(dir.join("plugin.toml"), manifest).expect("write");
    std::fs::write(dir.join("probe.py"), PROBE).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("probe.py"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

async fn ok(profile: &Path, args: &[&str]) -> String {
    let (ok, out, err) = skein(profile, args, None).await;
    assert!(ok, "skein {args:?} failed: {err}{out}");
    out
}

async fn fails(profile: &Path, args: &[&str]) -> String {
    let (ok, out, err) = skein(profile, args, None).await;
    assert!(!ok, "skein {args:?} should fail: {out}");
    err
}

async fn card_from(bob: &mut Proc, title: &str) -> Value {
    let line = bob.wait_line(T, title, |l| l.contains(r#""type":"message""#) && l.contains(title)).await;
    serde_json::from_str(&line).expect("event JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_plugin_answers_commands_and_actions_and_posts_cards() {
    skein_tests::init();
    need_python();
    let (_t, _dir, [alice, bob]) = users_with_profiles(["alice", "bob"], PW).await;
    let sample = sample();
    let s = sample.to_str().expect("utf-8");
    // Without a terminal to ask on, the permissions must be granted on the command line.
    let err = fails(&alice, &["plugin", "install", s]).await;
    assert!(err.contains("post, read") && err.contains("--yes"), "{err}");
    let out = ok(&alice, &["plugin", "install", s, "--yes"]).await;
    assert!(out.contains("Installed ticket 1.0.0") && out.contains("/ticket open TEXT"), "{out}");
    let list: Value = serde_json::from_str(&ok(&alice, &["plugin", "list", "--json"]).await).expect("JSON");
    assert_eq!(list[0]["state"], "installed");

    let mut alice_d = online(&alice, &[]).await;
    let mut bob_d = online(&bob, &[]).await;
    alice_d.wait_line(T, "the plugin running", |l| l.contains(r#""plugin":"ticket""#) && l.contains("running")).await;

    let out = ok(&alice, &["send", "bob", "/ticket open printer on floor 3 is broken"]).await;
    assert!(out.contains("Opened ticket #1: printer on floor 3 is broken"), "{out}");
    let card = card_from(&mut bob_d, "Ticket #1 opened").await;
    assert_eq!(card["from"], "alice");
    assert_eq!(card["card"]["fields"][0], serde_json::json!({"name": "Status", "value": "open"}));

    // A message action on bob's message opens a ticket from it.
    ok(&bob, &["send", "alice", "the projector in room 4 flickers"]).await;
    let said = alice_d.wait_line(T, "bob's message", |l| l.contains("projector in room 4")).await;
    let id = serde_json::from_str::<Value>(&said).expect("JSON")["id"].as_str().expect("id").to_owned();
    let out = ok(&alice, &["plugin", "action", "ticket", "create-ticket", &id]).await;
    assert!(out.contains("Opened ticket #2: the projector in room 4 flickers"), "{out}");
    card_from(&mut bob_d, "Ticket #2 opened").await;

    // `/ticket open` alone reads the conversation for bob's last message.
    ok(&bob, &["send", "alice", "and the kettle is leaking"]).await;
    alice_d.wait_line(T, "bob's second message", |l| l.contains("kettle is leaking")).await;
    let out = ok(&alice, &["send", "bob", "/ticket open"]).await;
    assert!(out.contains("Opened ticket #3: and the kettle is leaking"), "{out}");

    let out = ok(&alice, &["send", "bob", "/ticket close 2"]).await;
    assert!(out.contains("Closed ticket #2."), "{out}");
    card_from(&mut bob_d, "Ticket #2 closed").await;
    let out = ok(&alice, &["send", "bob", "/ticket list"]).await;
    assert!(out.contains("#1 printer") && out.contains("#3 and the kettle") && !out.contains("#2"), "{out}");
    let err = fails(&alice, &["send", "bob", "/ticket close 99"]).await;
    assert!(err.contains("ticket: there is no ticket #99"), "{err}");
    // The tickets are the plugin's, in its data folder.
    let saved = std::fs::read_to_string(alice.join("plugin-data/ticket/tickets.json")).expect("tickets");
    assert_eq!(serde_json::from_str::<Value>(&saved).expect("JSON")["tickets"].as_array().map(Vec::len), Some(3));

    // A mistyped command is not sent; `//` sends a leading slash.
    let err = fails(&alice, &["send", "bob", "/tikcet list"]).await;
    assert!(err.contains("no plugin provides /tikcet (there are /ticket)"), "{err}");
    ok(&alice, &["send", "bob", "//ticket is the command to use"]).await;
    bob_d.wait_line(T, "the escaped text", |l| l.contains(r#""text":"/ticket is the command to use""#)).await;
    let history = ok(&bob, &["history", "alice", "--json"]).await;
    assert!(!history.contains("tikcet"), "the mistyped command was not sent");

    ok(&alice, &["plugin", "remove", "ticket"]).await;
    let err = fails(&alice, &["send", "bob", "/ticket list"]).await;
    assert!(err.contains("none is installed"), "{err}");
    assert!(alice.join("plugin-data/ticket/tickets.json").is_file(), "removal keeps the plugin's files");
    for d in [&mut alice_d, &mut bob_d] {
        d.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_plugins_are_restarted_timed_out_or_disabled_and_the_node_keeps_serving() {
    skein_tests::init();
    need_python();
    let (_t, dir, [alice, bob]) = users_with_profiles(["alice", "bob"], PW).await;
    let mut alice_d = online(&alice, &[]).await;
    let mut bob_d = online(&bob, &[]).await;
    let root = dir.path().join("plugin-sources");
    let install = |name: &str, mode: &str, extra: &str| {
        let d = probe(&root, name, mode, extra);
        d.to_str().expect("utf-8").to_owned()
    };
    let (crashy, hangy) = (install("crashy", "crash", ""), install("hangy", "hang", "timeout_ms = 700"));
    let probe_dir = install("probe", "probe", "permissions = [\"read\", \"post\"]");
    ok(&alice, &["plugin", "install", &crashy]).await;
    ok(&alice, &["plugin", "install", &hangy]).await;
    // Granting less than it asks for: read, not post.
    ok(&alice, &["plugin", "install", &probe_dir, "--grant", "read"]).await;

    let pid = |s: &str| s.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    let first = ok(&alice, &["send", "bob", "/crashy ping"]).await;
    let err = fails(&alice, &["send", "bob", "/crashy boom"]).await;
    assert!(err.contains("the plugin crashy failed: exited") && err.contains("boom: giving up"), "{err}");
    let again = ok(&alice, &["send", "bob", "/crashy ping"]).await;
    assert!(again.contains("pong from") && pid(&again) != pid(&first), "restarted: {first} then {again}");

    let err = fails(&alice, &["send", "bob", "/hangy sleep"]).await;
    assert!(err.contains("did not answer `command` within 0.7 s"), "{err}");
    assert!(ok(&alice, &["send", "bob", "/hangy ping"]).await.contains("pong from"));
    // A flood of output instead of an answer is timed out all the same.
    let err = fails(&alice, &["send", "bob", "/hangy flood"]).await;
    assert!(err.contains("did not answer `command` within 0.7 s"), "{err}");
    // What a plugin starts goes with it.
    let out = ok(&alice, &["send", "bob", "/hangy spawn"]).await;
    let orphan = pid(&out);
    assert!(Path::new(&format!("/proc/{orphan}")).exists(), "{out}");
    ok(&alice, &["plugin", "remove", "hangy"]).await;
    let gone = std::time::Instant::now() + T;
    while std::fs::read_to_string(format!("/proc/{orphan}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(std::time::Instant::now() < gone, "the plugin's child {orphan} outlived it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // It reaches only the conversation it is invoked in, only with what was granted.
    let out = ok(&alice, &["send", "bob", "/probe stale"]).await;
    assert!(out.contains("no command or action is under way"), "{out}");
    let out = ok(&alice, &["send", "bob", "/probe post"]).await;
    assert!(out.contains("needs the permission \"post\""), "{out}");
    let err = fails(&alice, &["send", "bob", "/probe postresult"]).await;
    assert!(err.contains("was not granted the permission \"post\""), "{err}");

    // Garbage on its output: restarted twice with a backoff, then disabled.
    ok(&alice, &["plugin", "install", &install("garbage", "garbage", "")]).await;
    let line = alice_d
        .wait_line(T, "the garbage plugin disabled", |l| l.contains(r#""plugin":"garbage""#) && l.contains("disabled"))
        .await;
    assert!(line.contains("not JSON-RPC 2.0") && line.contains("hello, I am not JSON-RPC"), "{line}");
    let list: Value = serde_json::from_str(&ok(&alice, &["plugin", "list", "--json"]).await).expect("JSON");
    let garbage = list.as_array().expect("list").iter().find(|p| p["name"] == "garbage").expect("listed").clone();
    assert_eq!((garbage["state"].as_str(), garbage["restarts"].as_u64()), (Some("disabled"), Some(2)));
    let err = fails(&alice, &["send", "bob", "/garbage hello"]).await;
    assert!(err.contains("is disabled after repeated failures"), "{err}");

    // A program whose interpreter is missing: said so, not "no such file".
    let nopython = probe(&root, "nopython", "x", "");
    let script = std::fs::read_to_string(nopython.join("probe.py")).expect("read");
    std::fs::write(nopython.join("probe.py"), script.replace("#!/usr/bin/env python3", "#!/opt/none/python9"))
        .expect("write");
    ok(&alice, &["plugin", "install", nopython.to_str().expect("utf-8")]).await;
    let line = alice_d
        .wait_line(T, "the plugin without its interpreter", |l| {
            l.contains(r#""plugin":"nopython""#) && l.contains("disabled")
        })
        .await;
    assert!(line.contains("the program its first line names (#!/opt/none/python9) is not installed"), "{line}");

    // The node kept serving all the while.
    ok(&alice, &["send", "bob", "still here"]).await;
    bob_d.wait_line(T, "the message", |l| l.contains("still here")).await;
    for d in [&mut alice_d, &mut bob_d] {
        d.kill().await;
    }
}

#[tokio::test]
async fn a_plugin_that_cannot_be_installed_whole_is_refused_with_the_reason() {
    skein_tests::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("p");
    let src = probe(dir.path(), "escape", "x", "");
    let text = std::fs::read_to_string(src.join("plugin.toml")).expect("read");
    std::fs::write(src.join("plugin.toml"), text.replace("probe.py", "../../../bin/sh")).expect("write");
    let err = fails(&profile, &["plugin", "install", src.to_str().expect("utf-8")]).await;
    assert!(err.contains("inside the plugin's folder"), "{err}");
    let err = fails(&profile, &["plugin", "remove", "nothing"]).await;
    assert!(err.contains("no plugin named \"nothing\" is installed"), "{err}");
}
