//! The branch-office NAT lab scenarios, with the real `skein-tracker` and
//! `skein` binaries in network namespaces behind NAT routers.
//!
//! 1. same branch: a direct LAN connection, nothing relayed;
//! 2. cone ↔ cone: the first message at once (relayed), then direct within
//!    10 s, with 600 messages pipelined (64 in flight) from the first
//!    moment, through the connection's set-up and its upgrade, each
//!    arriving exactly once, and 5,000 messages and a 20 MiB file
//!    afterwards with almost nothing relayed;
//! 3. symmetric ↔ cone and symmetric ↔ symmetric: messages and an 8 MiB
//!    file delivered over the relay;
//! 4. cone ↔ cone with 5 % loss per WAN leg (plus 40 ms delay where the
//!    kernel has netem): delivered, and still direct;
//! 5. a tracker crash and restart mid-conversation: everyone reconnects and
//!    re-reserves, and messages sent during the outage arrive exactly once;
//! 6. two trackers on one PostgreSQL database (`t1` and `t2`): branch A on
//!    the first, branch B on the second, cone ↔ cone still direct; the first
//!    is killed, branch A resumes on the second, re-reserves, and messages
//!    keep flowing, each arriving once;
//! 7. cone ↔ cone with branch A cut off from branch B (the trackers still
//!    reachable) for the first second and a half: a pipelined burst runs
//!    from the first send until well after the path turned direct, so it
//!    straddles the upgrade, part relayed and part direct, each message
//!    arriving exactly once;
//! 8. calls with GStreamer's test sources, 8 s each: cone ↔ cone goes
//!    direct; symmetric ↔ cone completes through the relay, whose byte
//!    count shows it; cone ↔ cone with 5 % loss per WAN leg keeps the
//!    audio continuous (forward error correction and concealment).
//!
//! Each scenario builds its own lab and tears it down, also on failure or
//! timeout. The run ends with a table of what each scenario reached.
//!
//! The scenarios need root, iproute2 and nftables, so, like an `#[ignore]`d
//! test, they are reported as ignored (with the reason) unless asked for
//! with `--ignored` or `--include-ignored`; asked for where they cannot
//! run, they fail and say why. `scripts/natlab`, and `scripts/test` as
//! root, ask for them. The arguments follow libtest's: names select
//! scenarios by substring (`--exact` for whole names), `--skip NAME` leaves
//! them out, `--list` lists them.

mod office;

use futures::StreamExt;
use office::{Desk, Office, STEP, TRACKER, TRACKER2, event};
use skein_node::control::{Connection, ControlRequest, call};
use skein_tests::lab::Nat;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What a scenario reached, for the table.
#[derive(Debug, Default)]
struct Row {
    path: String,
    first_delivery: Option<Duration>,
    to_direct: Option<Duration>,
    relayed_bytes: u64,
    note: String,
}

type Scenario = fn() -> Pin<Box<dyn Future<Output = Row> + Send>>;

const SCENARIOS: &[(&str, &str, Scenario)] = &[
    ("same_branch_lan_direct", "1. same branch a1 → a2", || Box::pin(same_branch())),
    ("cone_to_cone_goes_direct", "2. cone ↔ cone a1 → b1", || Box::pin(cone_to_cone())),
    ("symmetric_to_cone_relayed", "3a. symmetric ↔ cone", || Box::pin(symmetric(false))),
    ("symmetric_to_symmetric_relayed", "3b. symmetric ↔ symmetric", || Box::pin(symmetric(true))),
    ("lossy_cone_to_cone_goes_direct", "4. cone ↔ cone, 5 % loss", || Box::pin(lossy())),
    ("tracker_restart_exactly_once", "5. tracker restart", || Box::pin(tracker_restart())),
    ("two_trackers_failover", "6. two trackers, the first killed", || Box::pin(two_trackers())),
    ("upgrade_under_load_exactly_once", "7. cone ↔ cone, burst across the upgrade", || Box::pin(upgrade_under_load())),
    ("call_cone_to_cone_direct", "8a. call, cone ↔ cone", || Box::pin(call_scenario(Lab::Cone))),
    ("call_symmetric_to_cone_relayed", "8b. call, symmetric ↔ cone", || Box::pin(call_scenario(Lab::Symmetric))),
    ("call_lossy_audio_continuous", "8c. call, cone ↔ cone, 5 % loss", || Box::pin(call_scenario(Lab::Lossy))),
];

/// Longest a scenario may run, lab set-up included.
const SCENARIO_LIMIT: Duration = Duration::from_secs(240);

/// Why the scenarios are ignored unless asked for.
const IGNORED: &str =
    "needs root, iproute2 and nftables: run with --ignored as root (scripts/natlab, or scripts/test as root)";

/// What the command line asks for, in libtest's terms.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    /// `--list`: name the selected scenarios, run nothing.
    list: bool,
    /// `--exact`: filters and skips match whole names.
    exact: bool,
    /// `--ignored` or `--include-ignored`: run the scenarios.
    run: bool,
    /// Names (or parts of names) to run; none selects every scenario.
    filters: Vec<String>,
    /// `--skip` values: scenarios to leave out.
    skips: Vec<String>,
}

impl Args {
    /// Reads libtest's arguments. Options this harness has no use for are
    /// accepted and ignored, taking their value along when they have one.
    fn parse(args: impl IntoIterator<Item = String>) -> Args {
        let mut out = Args::default();
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (a.clone(), None),
            };
            match flag.as_str() {
                "--list" => out.list = true,
                "--exact" => out.exact = true,
                "--ignored" | "--include-ignored" => out.run = true,
                "--skip" => out.skips.extend(inline.or_else(|| args.next())),
                "--test-threads" | "--format" | "--color" | "--logfile" | "--shuffle-seed" | "-Z"
                    if inline.is_none() =>
                {
                    args.next();
                }
                _ if !a.starts_with('-') => out.filters.push(a),
                _ => {}
            }
        }
        out
    }

    fn matches(&self, name: &str, pattern: &str) -> bool {
        if self.exact { name == pattern } else { name.contains(pattern) }
    }

    /// Whether the scenario `name` is selected.
    fn selects(&self, name: &str) -> bool {
        (self.filters.is_empty() || self.filters.iter().any(|f| self.matches(name, f)))
            && !self.skips.iter().any(|s| self.matches(name, s))
    }
}

fn main() -> ExitCode {
    let args = Args::parse(std::env::args().skip(1));
    let selected: Vec<_> = SCENARIOS.iter().filter(|(name, _, _)| args.selects(name)).collect();
    let filtered_out = SCENARIOS.len() - selected.len();
    if args.list {
        for (name, _, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    println!();
    println!("running {} tests", selected.len());
    if !args.run {
        for (name, _, _) in &selected {
            println!("test {name} ... ignored, {IGNORED}");
        }
        if !selected.is_empty() {
            println!("natlab: {} scenarios ignored, not run: {IGNORED}", selected.len());
        }
        println!();
        println!(
            "test result: ok. 0 passed; 0 failed; {} ignored; 0 measured; {filtered_out} filtered out",
            selected.len()
        );
        return ExitCode::SUCCESS;
    }
    if selected.is_empty() {
        println!();
        println!("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; {filtered_out} filtered out");
        return ExitCode::SUCCESS;
    }
    if let Some(why) = skein_tests::lab::unavailable() {
        for (name, _, _) in &selected {
            println!("test {name} ... FAILED");
        }
        println!();
        println!("natlab: the scenarios were asked for (--ignored) but cannot run here: {why}");
        println!();
        let n = selected.len();
        println!("test result: FAILED. 0 passed; {n} failed; 0 ignored; 0 measured; {filtered_out} filtered out");
        return ExitCode::FAILURE;
    }
    skein_tests::init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let mut results = Vec::new();
    for (name, title, run) in selected {
        println!("natlab: {name} ...");
        let started = Instant::now();
        let outcome = rt.block_on(async {
            let task = tokio::spawn(run());
            let abort = task.abort_handle();
            match tokio::time::timeout(SCENARIO_LIMIT, task).await {
                Ok(Ok(row)) => Ok(row),
                Ok(Err(e)) if e.is_panic() => Err("failed (see the panic above)".to_owned()),
                Ok(Err(e)) => Err(format!("did not finish: {e}")),
                Err(_) => {
                    abort.abort();
                    Err(format!("timed out after {SCENARIO_LIMIT:?}"))
                }
            }
        });
        match &outcome {
            Ok(_) => println!("test {name} ... ok ({:.1} s)", started.elapsed().as_secs_f64()),
            Err(e) => println!("test {name} ... FAILED: {e}"),
        }
        results.push((*title, outcome));
    }
    // Let aborted scenarios drop their labs before the table.
    rt.shutdown_timeout(Duration::from_secs(10));
    print_table(&results);
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    println!(
        "test result: {}. {} passed; {failed} failed; 0 ignored; 0 measured; {filtered_out} filtered out",
        if failed == 0 { "ok" } else { "FAILED" },
        results.len() - failed
    );
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn print_table(results: &[(&str, Result<Row, String>)]) {
    let ms = |d: Option<Duration>| d.map_or("–".to_owned(), |d| format!("{} ms", d.as_millis()));
    println!();
    println!("| scenario | path reached | first delivery | time to direct | bytes relayed | notes |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (title, r) in results {
        match r {
            Ok(row) => println!(
                "| {title} | {} | {} | {} | {} | {} |",
                row.path,
                ms(row.first_delivery),
                ms(row.to_direct),
                row.relayed_bytes,
                row.note
            ),
            Err(e) => println!("| {title} | FAILED | – | – | – | {e} |"),
        }
    }
    println!();
}

/// Sends the first message from `from` to `to`, checks it arrived, and
/// returns the printed path and how long the send took.
async fn first_message(office: &Office, from: &Desk, to: &mut Desk, text: &str) -> (String, Duration) {
    let t0 = Instant::now();
    let path = office.send(from, to, text).await;
    let took = t0.elapsed();
    assert_ne!(path, "queued", "the first message must be delivered at once, not queued");
    let what = format!("{} receives {text:?}, whose send printed {path:?} after {took:?}", to.user);
    let line = to.daemon.wait_line(STEP, &what, |l| event(l, "message").is_some_and(|v| v["text"] == text)).await;
    let ev: serde_json::Value = serde_json::from_str(&line).expect("event JSON");
    // The two may differ when a relayed connection gives way to a direct
    // one while the message is in flight.
    assert!(ev["path"] == "direct" || ev["path"] == "relayed", "{ev}");
    (path, took)
}

/// Sends `n` messages each way and checks they all arrived over `path`.
async fn chat(office: &Office, a: &mut Desk, b: &mut Desk, n: usize, path: &str) {
    for i in 0..n {
        let (ab, ba) = (format!("{} to {} #{i}", a.user, b.user), format!("{} to {} #{i}", b.user, a.user));
        assert_eq!(office.send(a, b, &ab).await, path);
        assert_eq!(office.send(b, a, &ba).await, path);
        assert_eq!(b.receive(&ab, STEP).await["path"], path);
        assert_eq!(a.receive(&ba, STEP).await["path"], path);
    }
}

async fn same_branch() -> Row {
    let office = Office::open(&["alice", "amy"]).await;
    let mut alice = office.desk("a1", "alice").await;
    let mut amy = office.desk("a2", "amy").await;
    let before = office.relayed_bytes().await;
    let t0 = Instant::now();
    let (path, first) = first_message(&office, &alice, &mut amy, "hello across the desk").await;
    assert_eq!(path, "direct", "hosts on one LAN talk directly from the first message");
    let direct_at = office.wait_path(&alice, &amy, "direct", STEP).await.expect("alice sees amy on a direct path");
    let (p, remote) = office.path(&alice, &amy).await.expect("amy is a peer");
    assert_eq!(p, "direct");
    assert!(remote.starts_with("/ip4/198.19.1.3/"), "the LAN address is used: {remote}");
    chat(&office, &mut alice, &mut amy, 10, "direct").await;
    let relayed = office.relayed_bytes().await - before;
    assert_eq!(relayed, 0, "the tracker relays nothing for a conversation inside a branch");
    Row {
        path,
        first_delivery: Some(first),
        to_direct: Some(direct_at - t0),
        relayed_bytes: relayed,
        note: String::new(),
    }
}

async fn cone_to_cone() -> Row {
    let office = Office::open(&["alice", "bob"]).await;
    let alice = office.desk("a1", "alice").await;
    let mut bob = office.desk("b1", "bob").await;
    let before = office.relayed_bytes().await;
    let t0 = Instant::now();
    // A pipelined burst from the first moment, so that it goes while the
    // relayed connection gives way to a direct one: 64 in flight on one
    // control connection.
    let socket = skein_node::profile::Profile::new(&alice.profile).socket_path();
    let burst = tokio::spawn(pipelined(socket.clone(), "upgrade", UPGRADE_BURST));
    let (_, first) = first_message(&office, &alice, &mut bob, "hello from branch A").await;
    let direct_at = office
        .wait_path(&alice, &bob, "direct", Duration::from_secs(10).saturating_sub(t0.elapsed()))
        .await
        .expect("the path becomes direct within 10 s of the first message");
    let to_direct = direct_at - t0;
    let paths = burst.await.expect("the burst");
    each_arrived_once(&office, &alice, &mut bob, "upgrade", UPGRADE_BURST).await;
    let count = |p: &str| paths.iter().filter(|x| *x == p).count();
    let burst_note = format!(
        "{UPGRADE_BURST} pipelined from the first send on, each once ({} relayed, {} direct, {} queued)",
        count("relayed"),
        count("direct"),
        count("queued")
    );
    let (p, remote) = office.path(&bob, &alice).await.expect("alice is bob's peer");
    assert_eq!(p, "direct", "both ends see the direct path");
    assert!(remote.starts_with("/ip4/198.18.1.1/"), "bob reaches alice at branch A's public address: {remote}");

    // Afterwards bulk traffic flows directly: 5,000 messages through alice's
    // control socket, 32 at a time.
    let mid = office.relayed_bytes().await;
    let socket = skein_node::profile::Profile::new(&alice.profile).socket_path();
    let sent: Vec<String> = futures::stream::iter(0..5_000)
        .map(|i| {
            let socket = socket.clone();
            async move {
                let req = ControlRequest::Send { to: "bob".into(), text: format!("bulk {i}") };
                let reply = call(&socket, &req).await.expect("control socket").expect("daemon running");
                assert!(reply.ok, "bulk {i}: {:?}", reply.error);
                reply.data["path"].as_str().unwrap_or_default().to_owned()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let other: Vec<(usize, &String)> = sent.iter().enumerate().filter(|(_, p)| *p != "direct").collect();
    assert!(other.is_empty(), "every bulk message went direct; {} did not: {other:?}", other.len());
    let deadline = Instant::now() + Duration::from_secs(120);
    let bulk = |d: &Desk| {
        d.daemon
            .seen
            .iter()
            .filter(|l| event(l, "message").is_some_and(|v| v["text"].as_str().is_some_and(|t| t.starts_with("bulk "))))
            .count()
    };
    while bulk(&bob) < 5_000 {
        assert!(Instant::now() < deadline, "bob received only {} of 5,000 messages", bulk(&bob));
        bob.settle(Duration::from_millis(200)).await;
    }
    let after_messages = office.relayed_bytes().await;
    let (file, took) = office.send_file(&alice, &bob, "plans.bin", 20).await;
    assert_eq!(file["path"], "direct", "the file went direct: {file}");
    let after = office.relayed_bytes().await;
    assert!(after - mid <= 4_096, "the tracker relayed {} bytes of the bulk traffic", after - mid);
    Row {
        path: "direct".into(),
        first_delivery: Some(first),
        to_direct: Some(to_direct),
        relayed_bytes: after - before,
        note: format!(
            "{burst_note}; 5,000 messages, then a 20 MiB file direct in {} ms, after the upgrade: {} + {} bytes relayed",
            took.as_millis(),
            after_messages - mid,
            after - after_messages
        ),
    }
}

/// Waits up to a minute for every text `"{label} {i}"`, `i < n`, to reach
/// `desk`, then checks that each arrived exactly once.
async fn each_arrived_once(office: &Office, from: &Desk, desk: &mut Desk, label: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let wanted = |i: usize| format!("{label} {i}");
    loop {
        let counts = desk.received_counts();
        let missing: Vec<String> = (0..n).map(wanted).filter(|t| !counts.contains_key(t)).collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            // Where the missing ones are: in the receiver's history (stored,
            // but no event printed) or only in the sender's, and in which state.
            let args = |with: &str| ["history".to_owned(), with.to_owned(), "--limit=100000".into(), "--json".into()];
            let (a, b) = (args(&from.user), args(&desk.user));
            let theirs = office.skein(desk, &a.each_ref().map(String::as_str)).await.1;
            let ours = office.skein(from, &b.each_ref().map(String::as_str)).await.1;
            let parse = |h: &str| serde_json::from_str::<serde_json::Value>(h).unwrap_or_default();
            let (theirs, ours) = (parse(&theirs), parse(&ours));
            let line = |h: &serde_json::Value, t: &str| {
                h.as_array().and_then(|a| a.iter().find(|m| m["text"] == t)).map(|m| m.to_string())
            };
            let shown: Vec<String> = missing
                .iter()
                .take(5)
                .map(|t| format!("{t:?}: receiver {:?}; sender {:?}", line(&theirs, t), line(&ours, t)))
                .collect();
            panic!("{} of {n} ({label}) never reached {}: {shown:#?}", missing.len(), desk.user);
        }
        desk.settle(Duration::from_millis(200)).await;
    }
    desk.settle(Duration::from_millis(500)).await;
    let counts = desk.received_counts();
    for i in 0..n {
        assert_eq!(counts.get(&wanted(i)), Some(&1), "{} arrived exactly once", wanted(i));
    }
}

/// Messages sent while the path goes from relayed to direct.
const UPGRADE_BURST: usize = 600;

/// Sends `n` texts `"{label} {i}"` to bob through the daemon at `socket`,
/// 64 in flight on one persistent control connection; returns each send's
/// path.
async fn pipelined(socket: std::path::PathBuf, label: &'static str, n: usize) -> Vec<String> {
    let mut conn = Connection::open(&socket).await.expect("control socket").expect("daemon running");
    let (mut sent, mut paths) = (0, Vec::with_capacity(n));
    while paths.len() < n {
        while sent < n && sent - paths.len() < 64 {
            let req = ControlRequest::Send { to: "bob".into(), text: format!("{label} {sent}") };
            conn.send(&req).await.expect("send");
            sent += 1;
        }
        let (_, reply) = conn.next_reply().await.expect("a reply");
        assert!(reply.ok, "{label}: {:?}", reply.error);
        paths.push(reply.data["path"].as_str().unwrap_or_default().to_owned());
    }
    paths
}

/// How long scenario 7 keeps the branches apart after the first message.
const HELD_OFF: Duration = Duration::from_millis(1_500);
/// Scenario 7's burst goes on until this many sends answered `direct`.
const DIRECT_AFTER: usize = 500;
/// Scenario 7's burst is bounded by count whatever happens.
const BURST_LIMIT: usize = 30_000;

async fn upgrade_under_load() -> Row {
    let office = Office::open(&["alice", "bob"]).await;
    office.lab.isolate("ra", true);
    let alice = office.desk("a1", "alice").await;
    let mut bob = office.desk("b1", "bob").await;
    let before = office.relayed_bytes().await;
    let t0 = Instant::now();
    let (path, first) = first_message(&office, &alice, &mut bob, "hello while cut off").await;
    assert_eq!(path, "relayed", "the branches cannot reach each other yet");
    let socket = skein_node::profile::Profile::new(&alice.profile).socket_path();
    let burst = tokio::spawn(pipelined_until_direct(socket));
    tokio::time::sleep(HELD_OFF).await;
    let cut_for = t0.elapsed();
    office.lab.isolate("ra", false);
    let direct_at = office
        .wait_path(&alice, &bob, "direct", Duration::from_secs(30))
        .await
        .expect("the path becomes direct once the branches can reach each other");
    let paths = burst.await.expect("the burst");
    let n = paths.len();
    let count = |p: &str| paths.iter().filter(|x| *x == p).count();
    let (relayed, direct) = (count("relayed"), count("direct"));
    assert!(
        relayed > 0 && direct >= DIRECT_AFTER,
        "the burst straddles the upgrade: {relayed} relayed, {direct} direct"
    );
    each_arrived_once(&office, &alice, &mut bob, "straddle", n).await;
    Row {
        path: "direct".into(),
        first_delivery: Some(first),
        to_direct: Some(direct_at - t0),
        relayed_bytes: office.relayed_bytes().await - before,
        note: format!(
            "branch A cut off from branch B for the first {} ms; {n} pipelined across the upgrade, each once \
             ({relayed} relayed, {direct} direct, {} queued)",
            cut_for.as_millis(),
            count("queued")
        ),
    }
}

/// Sends texts `"straddle {i}"` to bob through the daemon at `socket`, 64 in
/// flight on one persistent control connection, until [`DIRECT_AFTER`]
/// answered `direct` (at most [`BURST_LIMIT`]); returns each send's path.
async fn pipelined_until_direct(socket: std::path::PathBuf) -> Vec<String> {
    let mut conn = Connection::open(&socket).await.expect("control socket").expect("daemon running");
    let (mut sent, mut paths, mut direct) = (0, Vec::new(), 0);
    while sent > paths.len() || (direct < DIRECT_AFTER && sent < BURST_LIMIT) {
        while direct < DIRECT_AFTER && sent < BURST_LIMIT && sent - paths.len() < 64 {
            let req = ControlRequest::Send { to: "bob".into(), text: format!("straddle {sent}") };
            conn.send(&req).await.expect("send");
            sent += 1;
        }
        let (_, reply) = tokio::time::timeout(STEP, conn.next_reply())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no answer within {STEP:?}: {} sent, {} answered ({direct} direct), {paths:?}",
                    sent,
                    paths.len()
                )
            })
            .expect("a reply");
        assert!(reply.ok, "straddle: {:?}", reply.error);
        let path = reply.data["path"].as_str().unwrap_or_default().to_owned();
        direct += usize::from(path == "direct");
        paths.push(path);
    }
    paths
}

async fn symmetric(both: bool) -> Row {
    let office = Office::open(&["alice", "bob"]).await;
    office.lab.nat("ra", Nat::Symmetric);
    if both {
        office.lab.nat("rb", Nat::Symmetric);
    }
    let mut alice = office.desk("a1", "alice").await;
    let mut bob = office.desk("b1", "bob").await;
    let before = office.relayed_bytes().await;
    let (path, first) = first_message(&office, &alice, &mut bob, "hello through the relay").await;
    assert_eq!(path, "relayed");
    // Hole punching is tried and fails; the conversation stays relayed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed =
        |d: &Desk| d.daemon.seen.iter().any(|l| event(l, "hole_punch").is_some_and(|v| v["result"] == "failed"));
    while !failed(&alice) && !failed(&bob) {
        assert!(Instant::now() < deadline, "no hole-punching outcome within a minute");
        alice.settle(Duration::from_millis(100)).await;
        bob.settle(Duration::from_millis(100)).await;
    }
    for (from, to) in [(&alice, &bob), (&bob, &alice)] {
        let (p, remote) = office.path(from, to).await.expect("listed as a peer");
        assert_eq!(p, "relayed");
        assert!(remote.contains("p2p-circuit"), "{remote}");
    }
    chat(&office, &mut alice, &mut bob, 10, "relayed").await;
    let (file, took) = office.send_file(&alice, &bob, "slides.bin", 8).await;
    assert_eq!(file["path"], "relayed", "the file went through the relay: {file}");
    let relayed = office.relayed_bytes().await - before;
    assert!(relayed > 8 << 20, "the relay carried the conversation and the file, and counted them: {relayed}");
    Row {
        path,
        first_delivery: Some(first),
        to_direct: None,
        relayed_bytes: relayed,
        note: format!(
            "hole punching failed, as expected; an 8 MiB file went through the relay in {} ms",
            took.as_millis()
        ),
    }
}

async fn lossy() -> Row {
    let office = Office::open(&["alice", "bob"]).await;
    office.lab.loss("ra", 5);
    office.lab.loss("rb", 5);
    let delayed = office.lab.delay("ra", 40) && office.lab.delay("rb", 40);
    if !delayed {
        println!("natlab: this kernel has no netem (sch_netem); the 40 ms delay part is skipped, loss still applies");
    }
    let mut alice = office.desk("a1", "alice").await;
    let mut bob = office.desk("b1", "bob").await;
    let before = office.relayed_bytes().await;
    // Delivered, though not necessarily at once: a loss at the wrong moment
    // can send the first message to the mailbox, from which bob takes it.
    let t0 = Instant::now();
    let text = "hello over a lossy line";
    let path = office.send(&alice, &bob, text).await;
    bob.receive(text, Duration::from_secs(60)).await;
    let first = t0.elapsed();
    let direct_at = office
        .wait_path(&alice, &bob, "direct", Duration::from_secs(30))
        .await
        .expect("the path becomes direct despite 5 % loss");
    chat(&office, &mut alice, &mut bob, 10, "direct").await;
    Row {
        path: "direct".into(),
        first_delivery: Some(first),
        to_direct: Some(direct_at - t0),
        relayed_bytes: office.relayed_bytes().await - before,
        note: format!(
            "{}; the first send printed `{path}`",
            if delayed { "5 % loss + 40 ms delay per WAN leg" } else { "5 % loss per WAN leg; no netem: no delay" }
        ),
    }
}

async fn tracker_restart() -> Row {
    let mut office = Office::open(&["alice", "amy", "bob"]).await;
    let mut alice = office.desk("a1", "alice").await;
    let mut amy = office.desk("a2", "amy").await;
    let mut bob = office.desk("b1", "bob").await;
    let before = office.relayed_bytes().await;
    first_message(&office, &alice, &mut bob, "before the outage").await;
    office.wait_path(&alice, &bob, "direct", Duration::from_secs(10)).await.expect("alice and bob go direct");

    // The relay's count lives in the tracker's memory and starts again at
    // zero after the crash: read it just before, and add what comes after.
    let relayed_before_crash = office.relayed_bytes().await - before;
    office.kill_tracker().await;
    // During the outage: alice and bob keep talking over their direct
    // connection; bob writes to amy, whom he has never reached, so that
    // message waits on his device.
    let during: Vec<String> = (0..3).map(|i| format!("during the outage #{i}")).collect();
    let outage = Instant::now();
    for t in &during {
        let t0 = Instant::now();
        assert_eq!(office.send(&alice, &bob, t).await, "direct", "connected peers need no tracker");
        // The daemon has not yet noticed that the tracker is gone (that takes
        // its idle timeout); the conversation must not wait for it.
        assert!(t0.elapsed() < Duration::from_secs(10), "a send to a connected peer took {:?}", t0.elapsed());
    }
    let outage_sends = outage.elapsed();
    assert_eq!(office.send(&bob, &amy, "kept until the tracker is back").await, "queued");

    let marks = [alice.daemon.seen.len(), amy.daemon.seen.len(), bob.daemon.seen.len()];
    office.start_tracker().await;
    let restarted = Instant::now();
    for (d, mark) in [&mut alice, &mut amy, &mut bob].into_iter().zip(marks) {
        let user = d.user.clone();
        d.wait_since(mark, Duration::from_secs(60), &format!("{user} reconnects"), "connected").await;
        d.wait_since(mark, STEP, &format!("{user} re-reserves on the relay"), "relay_reserved").await;
    }
    let ev = amy.receive("kept until the tracker is back", Duration::from_secs(60)).await;
    let first = restarted.elapsed();
    for t in &during {
        bob.receive(t, STEP).await;
    }
    chat(&office, &mut alice, &mut bob, 3, "direct").await;
    // Exactly once: no resend delivers anything a second time.
    for d in [&mut alice, &mut amy, &mut bob] {
        d.settle(Duration::from_secs(3)).await;
    }
    assert_eq!(amy.times_received("kept until the tracker is back"), 1);
    for t in during.iter().chain(std::iter::once(&"before the outage".to_owned())) {
        assert_eq!(bob.times_received(t), 1, "{t:?} arrived once");
    }
    let (ok, out, err) = office.skein(&amy, &["history", "bob", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.matches("kept until the tracker is back").count(), 1, "history holds it once: {out}");
    let relayed_after_restart = office.relayed_bytes().await;
    Row {
        path: ev["path"].as_str().unwrap_or_default().to_owned(),
        first_delivery: Some(first),
        to_direct: None,
        relayed_bytes: relayed_before_crash + relayed_after_restart,
        note: format!(
            "first delivery: the message queued during the outage, timed from the restart; \
             3 direct sends during the outage took {} ms; relayed: {relayed_before_crash} bytes before the crash \
             + {relayed_after_restart} after the restart",
            outage_sends.as_millis()
        ),
    }
}

/// Waits for `desk`'s `connected` event to `tracker` printed after the
/// first `mark` lines.
async fn wait_connected(desk: &mut Desk, mark: usize, tracker: &str, within: Duration) {
    let on = |l: &str| event(l, "connected").is_some_and(|v| v["tracker"] == tracker);
    if desk.daemon.seen[mark.min(desk.daemon.seen.len())..].iter().any(|l| on(l)) {
        return;
    }
    let what = format!("{} connected to {tracker}", desk.user);
    desk.daemon.wait_next(within, &what, on).await;
}

async fn two_trackers() -> Row {
    let mut office = Office::open_two(&["alice", "bob"]).await;
    let mut alice = office.desk_on("a1", "alice", TRACKER).await;
    let mut bob = office.desk_on("b1", "bob", TRACKER2).await;
    wait_connected(&mut alice, 0, TRACKER, STEP).await;
    wait_connected(&mut bob, 0, TRACKER2, STEP).await;
    let before = office.relayed_bytes().await;
    let t0 = Instant::now();
    let (path, _) = first_message(&office, &alice, &mut bob, "from a tracker to the other").await;
    let first = t0.elapsed();
    let direct_at = office
        .wait_path(&alice, &bob, "direct", Duration::from_secs(10))
        .await
        .expect("cone ↔ cone goes direct across trackers");
    chat(&office, &mut alice, &mut bob, 3, "direct").await;
    let relayed = office.relayed_bytes().await - before;

    // The first tracker is killed: alice and bob keep talking directly
    // while alice's daemon resumes on the second.
    let mark = alice.daemon.seen.len();
    office.kill_tracker().await;
    let killed = Instant::now();
    let during: Vec<String> = (0..3).map(|i| format!("during the failover #{i}")).collect();
    for t in &during {
        assert_eq!(office.send(&alice, &bob, t).await, "direct", "connected peers need no tracker");
    }
    wait_connected(&mut alice, mark, TRACKER2, STEP).await;
    let failed_over = killed.elapsed();
    assert!(failed_over < Duration::from_secs(5), "alice resumed on the second tracker after {failed_over:?}");
    alice.wait_since(mark, STEP, "alice's relayed address on the second tracker", "relay_reserved").await;
    let republished = killed.elapsed();
    assert!(republished < Duration::from_secs(5), "t2 had alice's relayed address after {republished:?}");
    for t in &during {
        bob.receive(t, STEP).await;
    }
    chat(&office, &mut alice, &mut bob, 3, "direct").await;
    bob.settle(Duration::from_secs(2)).await;
    for t in &during {
        assert_eq!(bob.times_received(t), 1, "{t:?} arrived once");
    }
    office.close().await;
    Row {
        path: "direct".into(),
        first_delivery: Some(first),
        to_direct: Some(direct_at - t0),
        relayed_bytes: relayed,
        note: format!(
            "alice (branch A) on t1, bob (branch B) on t2; the first send printed `{path}`; t1 killed: alice \
             resumed on t2 after {} ms and t2 had her relayed address after {} ms; 3 direct sends meanwhile, \
             each arriving once",
            failed_over.as_millis(),
            republished.as_millis()
        ),
    }
}

/// The network a call scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lab {
    /// Both branches behind cone NATs.
    Cone,
    /// Branch A behind a symmetric NAT.
    Symmetric,
    /// Cone NATs with 5 % loss on each WAN leg.
    Lossy,
}

/// Scenario 8: an 8 s call from a1 to b1, which answers, checked from both
/// ends: the path, pictures at a real frame rate, and continuous audio.
async fn call_scenario(lab: Lab) -> Row {
    let office = Office::open(&["alice", "bob"]).await;
    match lab {
        Lab::Symmetric => office.lab.nat("ra", Nat::Symmetric),
        Lab::Lossy => {
            office.lab.loss("ra", 5);
            office.lab.loss("rb", 5);
        }
        Lab::Cone => {}
    }
    let alice = office.desk("a1", "alice").await;
    let mut bob = office.desk("b1", "bob").await;
    let want = if lab == Lab::Symmetric { "relayed" } else { "direct" };
    // The call starts once the peers know each other's path: a message
    // first, then (where it can) the direct connection.
    first_message(&office, &alice, &mut bob, "call me").await;
    if want == "direct" {
        office.wait_path(&alice, &bob, "direct", Duration::from_secs(30)).await.expect("the path becomes direct");
    }
    let before = office.relayed_bytes().await;
    let t0 = Instant::now();
    let (lines, bob_last) = office.call(&alice, &mut bob, 8).await;
    let relayed = office.relayed_bytes().await - before;
    let connected = lines.iter().find(|l| l["state"] == "connected").expect("the call connected");
    assert_eq!(connected["path"], want, "{connected}");
    let alice_last = lines.iter().rev().find(|l| l["type"] == "call_stats").expect("statistics");
    for (who, stats) in [("alice", alice_last), ("bob", &bob_last)] {
        assert_eq!(stats["path"], want, "{who}: {stats}");
        assert_eq!(stats["audio_gaps"], 0, "{who}'s audio was continuous: {stats}");
        let frames = stats["frames_received"].as_u64().unwrap_or(0);
        assert!(frames >= 120, "{who} decoded pictures at a real frame rate (8 s at 30 a second): {stats}");
    }
    if lab == Lab::Symmetric {
        assert!(relayed > 200_000, "the relay carried the call and counted it: {relayed} bytes");
    }
    let mid = lines.iter().filter(|l| l["type"] == "call_stats").nth(4).unwrap_or(alice_last);
    Row {
        path: want.into(),
        first_delivery: None,
        to_direct: None,
        relayed_bytes: relayed,
        note: format!(
            "8 s call in {:.1} s: alice decoded {} pictures, bob {}; no audio gap; mid-call loss {}%, audio {} kbit/s, video {} kbit/s",
            t0.elapsed().as_secs_f64(),
            alice_last["frames_received"],
            bob_last["frames_received"],
            mid["loss_pct"],
            mid["audio_kbps"],
            mid["video_kbps"],
        ),
    }
}
