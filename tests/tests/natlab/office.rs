//! One company in the NAT lab: a tracker on `t1` (198.18.0.1), users, and
//! daemons on the branch hosts, all real `skein-tracker` and `skein`
//! processes inside the lab's namespaces. With [`Office::open_two`], a
//! second tracker on `t2` (198.18.0.2) joins the first on their PostgreSQL
//! database, which both reach through its Unix socket (no lab address
//! leads to the machine's own network).

use serde_json::Value;
use skein_tests::lab::Lab;
use skein_tests::{Proc, bin};
use skein_tracker::test_utils::PgDatabase;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const PW: &str = "correct horse battery";
pub const TRACKER: &str = "198.18.0.1:7400";
/// The second tracker, in [`Office::open_two`].
pub const TRACKER2: &str = "198.18.0.2:7400";
/// Longest wait for any single step.
pub const STEP: Duration = Duration::from_secs(30);

/// The tracker, its data and the profiles of the users on each host.
#[derive(Debug)]
pub struct Office {
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    pub tracker: Proc,
    /// The second tracker, in [`Office::open_two`].
    pub tracker2: Option<Proc>,
    admin: PathBuf,
    /// The shared database: its URL through the server's Unix socket.
    database: Option<(PgDatabase, String)>,
}

/// A running daemon for `user` on `host`.
#[derive(Debug)]
pub struct Desk {
    pub user: String,
    pub host: String,
    pub profile: PathBuf,
    pub daemon: Proc,
}

/// A parsed daemon event line, if it is one of `kind`.
pub fn event(line: &str, kind: &str) -> Option<Value> {
    serde_json::from_str::<Value>(line).ok().filter(|v| v["type"] == kind)
}

impl Office {
    /// Builds a lab, starts the tracker and adds `users` plus an administrator.
    pub async fn open(users: &[&str]) -> Office {
        Self::open_on(users, None).await
    }

    /// [`Office::open`] with the tracker on a fresh PostgreSQL database,
    /// and a second tracker on `t2` that joins the first.
    pub async fn open_two(users: &[&str]) -> Office {
        let pg = PgDatabase::create().await;
        let url = through_socket(&pg.url);
        let mut office = Self::open_on(users, Some((pg, url))).await;
        let url = office.database_url().expect("the database").to_owned();
        let (d1, d2) = (office.data(), office.dir.path().join("t2"));
        let args = [
            "run",
            "--data",
            d2.to_str().expect("utf-8"),
            "--database",
            &url,
            "--join",
            d1.to_str().expect("utf-8"),
            "--listen",
            TRACKER2,
            "--relay-listen",
            "198.18.0.2:7401",
            "--public-addr",
            "198.18.0.2",
        ];
        let mut t = office.lab.spawn("t2", &bin("skein-tracker"), &args, &[("RUST_LOG", &log_filter())]);
        t.wait_line(STEP, "the second tracker's relay", |l| l.starts_with("Relay serving")).await;
        office.tracker2 = Some(t);
        office
    }

    async fn open_on(users: &[&str], database: Option<(PgDatabase, String)>) -> Office {
        let lab = Lab::up();
        let dir = tempfile::tempdir().expect("tempdir");
        let url = database.as_ref().map(|(_, u)| u.as_str());
        let tracker = start_tracker(&lab, dir.path(), url).await;
        let admin = dir.path().join("admin-profile");
        let mut office = Office { lab, tracker, tracker2: None, admin, dir, database };
        for u in users {
            office.add_user(u, false).await;
        }
        office.add_user("boss", true).await;
        office.login("t1", "boss", &office.admin.clone(), TRACKER).await;
        office
    }

    fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|(_, u)| u.as_str())
    }

    /// Stops the trackers and drops the shared database, if there is one.
    pub async fn close(mut self) {
        self.tracker.kill().await;
        if let Some(t) = self.tracker2.as_mut() {
            t.kill().await;
        }
        if let Some((pg, _)) = self.database.take() {
            pg.drop_now().await;
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("t1")
    }

    async fn add_user(&mut self, name: &str, admin: bool) {
        let data = self.data();
        let mut args = vec!["user", "add", name, "--data", data.to_str().expect("utf-8")];
        if admin {
            args.push("--admin");
        }
        let url = self.database_url().map(str::to_owned);
        if let Some(url) = &url {
            args.extend(["--database", url]);
        }
        let (ok, _, err) = self.lab.output("t1", &bin("skein-tracker"), &args, &[("SKEIN_PASSWORD", PW)]).await;
        assert!(ok, "user add {name}: {err}");
    }

    async fn login(&self, host: &str, user: &str, profile: &Path, tracker: &str) {
        let ca = self.data().join("ca.pem");
        let args = [
            "--profile",
            profile.to_str().expect("utf-8"),
            "login",
            "--tracker",
            tracker,
            "--ca",
            ca.to_str().expect("utf-8"),
            "--user",
            user,
        ];
        let (ok, _, err) = self.lab.output(host, &bin("skein"), &args, &[("SKEIN_PASSWORD", PW)]).await;
        assert!(ok, "login {user} on {host}: {err}");
    }

    /// Logs `user` in on `host` and starts its daemon, waiting until it is
    /// connected and holds a relay reservation.
    pub async fn desk(&self, host: &str, user: &str) -> Desk {
        self.desk_on(host, user, TRACKER).await
    }

    /// [`Office::desk`] through `tracker`, which its daemon starts on (the
    /// list of other trackers is asked for again once connected, so it can
    /// still fail over).
    pub async fn desk_on(&self, host: &str, user: &str, tracker: &str) -> Desk {
        let profile = self.dir.path().join(format!("{user}-on-{host}"));
        self.login(host, user, &profile, tracker).await;
        let session = profile.join("session.json");
        let mut saved: Value =
            serde_json::from_str(&std::fs::read_to_string(&session).expect("session")).expect("json");
        saved["trackers"] = Value::Array(Vec::new());
        std::fs::write(&session, serde_json::to_vec(&saved).expect("json")).expect("write the session");
        let p = profile.to_str().expect("utf-8").to_owned();
        let downloads = profile.join("downloads");
        // Files are taken, and calls answered with GStreamer's test sources.
        let args = [
            "--profile",
            &p,
            "daemon",
            "--download-dir",
            downloads.to_str().expect("utf-8"),
            "--auto-accept",
            "--auto-answer",
            "--test-source",
        ];
        let mut daemon = self.lab.spawn(host, &bin("skein"), &args, &[("RUST_LOG", &log_filter())]);
        daemon.wait_line(STEP, &format!("{user} connected"), |l| event(l, "connected").is_some()).await;
        daemon.wait_line(STEP, &format!("{user}'s relay reservation"), |l| event(l, "relay_reserved").is_some()).await;
        Desk { user: user.to_owned(), host: host.to_owned(), profile, daemon }
    }

    /// `from` calls `to` (whose daemon answers) for `seconds` with the test
    /// sources: the caller's `skein call --json` lines, and the callee's
    /// final statistics (from its `ended` event).
    pub async fn call(&self, from: &Desk, to: &mut Desk, seconds: u64) -> (Vec<Value>, Value) {
        let secs = seconds.to_string();
        let (ok, out, err) = self.skein(from, &["call", &to.user, "--test-source", "--seconds", &secs, "--json"]).await;
        assert!(ok, "{} calling {}: {err}\n{out}", from.user, to.user);
        let lines: Vec<Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let call = lines.first().and_then(|l| l["call"].as_str()).expect("the call's id").to_owned();
        let ended = to
            .daemon
            .wait_line(STEP, &format!("{}'s end of the call", to.user), |l| {
                event(l, "call").is_some_and(|v| v["call"] == call.as_str() && v["state"] == "ended")
            })
            .await;
        let ended: Value = serde_json::from_str(&ended).expect("event JSON");
        (lines, ended["stats"].clone())
    }

    /// Runs `skein ARGS` for `desk` on its host.
    pub async fn skein(&self, desk: &Desk, args: &[&str]) -> (bool, String, String) {
        let mut all = vec!["--profile", desk.profile.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        self.lab.output(&desk.host, &bin("skein"), &all, &[]).await
    }

    /// Sends a file of `mib` MiB named `name` from `from` to `to`, whose
    /// daemon accepts it, and checks it arrived byte for byte. Returns the
    /// receiver's view of the transfer and how long `send-file` took.
    pub async fn send_file(&self, from: &Desk, to: &Desk, name: &str, mib: usize) -> (Value, Duration) {
        let data = skein_tests::pseudo_random(mib << 20, mib as u64);
        let src = self.dir.path().join(name);
        std::fs::write(&src, &data).expect("write the file to send");
        let t0 = Instant::now();
        let (ok, out, err) = self.skein(from, &["send-file", &to.user, src.to_str().expect("utf-8"), "--json"]).await;
        let took = t0.elapsed();
        assert!(ok, "send-file {name}: {err}");
        let sent: Value = serde_json::from_str(&out).expect("send-file JSON");
        assert_eq!(sent["state"], "completed");
        let got = std::fs::read(to.profile.join("downloads").join(name)).expect("the received file");
        assert!(got == data, "{name} arrived changed");
        let (ok, out, err) = self.skein(to, &["transfers", sent["id"].as_str().expect("id"), "--json"]).await;
        assert!(ok, "transfers: {err}");
        (serde_json::from_str(&out).expect("transfer JSON"), took)
    }

    /// Sends `text` from `from` to `to` and returns the printed path.
    pub async fn send(&self, from: &Desk, to: &Desk, text: &str) -> String {
        let (ok, out, err) = self.skein(from, &["send", &to.user, text]).await;
        assert!(ok, "{} → {}: {err}", from.user, to.user);
        out.trim().to_owned()
    }

    /// The path `from`'s `skein peers --json` shows towards `to`'s user.
    pub async fn path(&self, from: &Desk, to: &Desk) -> Option<(String, String)> {
        let (ok, out, err) = self.skein(from, &["peers", "--json"]).await;
        assert!(ok, "peers: {err}");
        let peers: Value = serde_json::from_str(&out).expect("peers JSON");
        peers.as_array()?.iter().find(|p| p["user"] == to.user.as_str()).map(|p| {
            (p["path"].as_str().unwrap_or_default().to_owned(), p["remote"].as_str().unwrap_or_default().to_owned())
        })
    }

    /// Polls `peers` until `from` sees `to` on `want`, for at most `within`.
    /// Returns when that happened, or `None`.
    pub async fn wait_path(&self, from: &Desk, to: &Desk, want: &str, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.path(from, to).await.is_some_and(|(p, _)| p == want) {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Bytes the tracker's relay has carried since it started.
    pub async fn relayed_bytes(&self) -> u64 {
        let admin = self.admin.to_str().expect("utf-8");
        let (ok, out, err) =
            self.lab.output("t1", &bin("skein"), &["--profile", admin, "relay-stats", "--json"], &[]).await;
        assert!(ok, "relay-stats: {err}");
        let v: Value = serde_json::from_str(&out).expect("relay-stats JSON");
        v["total_relayed_bytes"].as_u64().expect("total_relayed_bytes")
    }

    /// Kills the tracker (as a crash would).
    pub async fn kill_tracker(&mut self) {
        self.tracker.kill().await;
    }

    /// Starts the tracker again on the same data and addresses.
    pub async fn start_tracker(&mut self) {
        let url = self.database_url().map(str::to_owned);
        self.tracker = start_tracker(&self.lab, self.dir.path(), url.as_deref()).await;
    }
}

/// Log filter for the lab's processes: `NATLAB_LOG`, by default warnings
/// plus why a message could not be delivered directly and what the peer
/// network decided (hole punching, silent peers).
fn log_filter() -> String {
    std::env::var("NATLAB_LOG").unwrap_or_else(|_| "warn,skein_node::delivery=info,skein_node::mesh=info".into())
}

async fn start_tracker(lab: &Lab, dir: &Path, database: Option<&str>) -> Proc {
    let data = dir.join("t1");
    let mut args = vec![
        "run",
        "--data",
        data.to_str().expect("utf-8"),
        "--listen",
        TRACKER,
        "--relay-listen",
        "198.18.0.1:7401",
        "--public-addr",
        "198.18.0.1",
        "--org",
        "Branch Lab",
    ];
    if let Some(url) = database {
        args.extend(["--database", url]);
    }
    let mut t = lab.spawn("t1", &bin("skein-tracker"), &args, &[("RUST_LOG", &log_filter())]);
    t.wait_line(STEP, "the tracker's relay", |l| l.starts_with("Relay serving")).await;
    t
}

/// The environment variable naming the test PostgreSQL server's socket
/// directory (`scripts/lib.sh` sets it with the server's URL).
const SOCKET_ENV: &str = "SKEIN_TEST_POSTGRES_SOCKET_DIR";

/// `url` (`postgres://USER@HOST:PORT/DB`) reached through the server's Unix
/// socket instead: the lab's namespaces share the file system, not the
/// machine's loopback.
fn through_socket(url: &str) -> String {
    let dir = std::env::var(SOCKET_ENV).unwrap_or_else(|_| {
        panic!(
            "the two-tracker scenario needs the PostgreSQL server's socket directory in {SOCKET_ENV} \
             (scripts/test and scripts/natlab start a server and set it)"
        )
    });
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    let (user, rest) = rest.split_once('@').expect("USER@ in the URL");
    let (authority, db) = rest.split_once('/').expect("/DB in the URL");
    let port = authority.rsplit_once(':').map_or("5432", |(_, p)| p);
    let db = db.split('?').next().unwrap_or(db);
    format!("postgres://{user}@localhost:{port}/{db}?host={dir}")
}

impl Desk {
    /// Waits for the message `text` to arrive; returns its event.
    pub async fn receive(&mut self, text: &str, within: Duration) -> Value {
        let line = self
            .daemon
            .wait_line(within, &format!("{} receives {text:?}", self.user), |l| {
                event(l, "message").is_some_and(|v| v["text"] == text)
            })
            .await;
        serde_json::from_str(&line).expect("event JSON")
    }

    /// How many times the message `text` arrived so far.
    pub fn times_received(&self, text: &str) -> usize {
        self.daemon.seen.iter().filter(|l| event(l, "message").is_some_and(|v| v["text"] == text)).count()
    }

    /// How many times each text arrived so far, by text: one pass over the
    /// output, for checks over thousands of messages.
    pub fn received_counts(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for v in self.daemon.seen.iter().filter_map(|l| event(l, "message")) {
            if let Some(t) = v["text"].as_str() {
                *counts.entry(t.to_owned()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Waits for an event of `kind` printed after the first `mark` lines.
    pub async fn wait_since(&mut self, mark: usize, within: Duration, what: &str, kind: &str) {
        if self.daemon.seen[mark.min(self.daemon.seen.len())..].iter().any(|l| event(l, kind).is_some()) {
            return;
        }
        self.daemon.wait_next(within, what, |l| event(l, kind).is_some()).await;
    }

    /// Collects the daemon's output for `period`.
    pub async fn settle(&mut self, period: Duration) {
        self.daemon.collect_for(period).await;
    }
}
