//! A throwaway Skein installation for the end-to-end scenarios: a real
//! `skein-tracker` process on loopback and real `skein daemon` processes,
//! driven through their control sockets as scripts drive them.
//!
//! The binaries are the ones built next to the harness (`target/<profile>/`).

use anyhow::{Context, Result, bail};
use serde_json::Value;
use skein_node::control::{ControlRequest, call};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The password every benchmark user gets.
pub const PASSWORD: &str = "benchmark password";
/// Longest wait for a process to come up.
const START: Duration = Duration::from_secs(60);

/// Path of a workspace binary built alongside this one.
pub fn bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no executable directory")?.join(name);
    if !path.exists() {
        bail!("{} is missing: build the workspace binaries first (scripts/bench does)", path.display());
    }
    Ok(path)
}

/// A free UDP port on loopback (bound and released; the caller binds it next).
pub fn free_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits for a line of `child`'s standard output that satisfies `pred`,
/// then keeps draining the output in the background.
async fn wait_line(child: &mut Child, what: &str, pred: impl Fn(&str) -> bool) -> Result<String> {
    let out = child.stdout.take().context("stdout is not piped")?;
    let mut lines = BufReader::new(out).lines();
    let found = tokio::time::timeout(START, async {
        while let Some(line) = lines.next_line().await? {
            if pred(&line) {
                return anyhow::Ok(line);
            }
        }
        bail!("the process ended before {what}")
    })
    .await
    .with_context(|| format!("timed out waiting for {what}"))??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(found)
}

/// A tracker with its data directory.
#[derive(Debug)]
pub struct Cluster {
    /// Everything lives here.
    pub dir: tempfile::TempDir,
    /// The tracker process.
    pub tracker: Child,
    /// HOST:PORT of its control plane.
    pub addr: String,
    /// The tracker's `run` arguments, to start it again.
    run: Vec<String>,
    /// `--database URL` when the store is not the data directory's SQLite.
    database: Option<String>,
}

impl Cluster {
    /// Starts a tracker on loopback with extra `run` flags.
    pub async fn start(extra: &[&str]) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("tracker");
        let addr = format!("127.0.0.1:{}", free_port()?);
        let relay = format!("127.0.0.1:{}", free_port()?);
        let mut run: Vec<String> = vec!["run".into(), "--data".into(), data.to_str().context("utf-8 path")?.into()];
        run.extend(["--listen".into(), addr.clone(), "--relay-listen".into(), relay]);
        run.extend(extra.iter().map(|e| (*e).to_owned()));
        let tracker = Self::spawn(&run).await?;
        let database =
            extra.iter().position(|e| *e == "--database").and_then(|i| extra.get(i + 1)).map(|u| u.to_string());
        Ok(Cluster { dir, tracker, addr, run, database })
    }

    async fn spawn(run: &[String]) -> Result<Child> {
        let mut cmd = Command::new(bin("skein-tracker")?);
        cmd.args(run);
        cmd.env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut tracker = cmd.kill_on_drop(true).spawn().context("starting skein-tracker")?;
        wait_line(&mut tracker, "the tracker's relay", |l| l.starts_with("Relay serving")).await?;
        Ok(tracker)
    }

    /// Stops the tracker and starts it again on the same data and
    /// addresses, so it begins with no memory left over from earlier work.
    pub async fn restart(&mut self) -> Result<()> {
        self.tracker.kill().await.context("stopping skein-tracker")?;
        self.tracker = Self::spawn(&self.run).await?;
        Ok(())
    }

    /// The tracker's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("tracker")
    }

    /// Adds a user with [`PASSWORD`].
    pub async fn user(&self, name: &str) -> Result<()> {
        self.add(name, false).await
    }

    /// Adds an administrator with [`PASSWORD`].
    pub async fn admin(&self, name: &str) -> Result<()> {
        self.add(name, true).await
    }

    async fn add(&self, name: &str, admin: bool) -> Result<()> {
        let out = Command::new(bin("skein-tracker")?)
            .args(["user", "add", name, "--data"])
            .arg(self.data())
            .args(self.database.iter().flat_map(|u| ["--database", u.as_str()]))
            .args(if admin { &["--admin"][..] } else { &[] })
            .env("SKEIN_PASSWORD", PASSWORD)
            .output()
            .await?;
        if !out.status.success() {
            bail!("user add {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Logs `user` in on a new profile and starts its daemon with extra
    /// flags; returns once it is connected and holds a relay reservation.
    pub async fn node(&self, user: &str, extra: &[&str]) -> Result<Node> {
        let profile = self.login(user).await?;
        let mut cmd = Command::new(bin("skein")?);
        cmd.arg("--profile").arg(&profile).args(["daemon", "--listen", "127.0.0.1:0"]).args(extra);
        cmd.env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.kill_on_drop(true).spawn().context("starting skein daemon")?;
        wait_line(&mut child, "the daemon's relay reservation", |l| l.contains("\"type\":\"relay_reserved\"")).await?;
        let socket = skein_node::profile::Profile::new(&profile).socket_path();
        Ok(Node { profile, child, socket })
    }

    /// Logs `user` in on a new profile, as `skein login` does; returns the profile.
    pub async fn login(&self, user: &str) -> Result<PathBuf> {
        let profile = self.dir.path().join(format!("{user}-profile"));
        let out = Command::new(bin("skein")?)
            .arg("--profile")
            .arg(&profile)
            .args(["login", "--tracker", &self.addr, "--ca"])
            .arg(self.data().join("ca.pem"))
            .args(["--user", user])
            .env("SKEIN_PASSWORD", PASSWORD)
            .output()
            .await?;
        if !out.status.success() {
            bail!("login {user}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(profile)
    }
}

/// A running daemon.
#[derive(Debug)]
pub struct Node {
    /// Its profile directory.
    pub profile: PathBuf,
    /// The process.
    pub child: Child,
    socket: PathBuf,
}

impl Node {
    /// Asks the daemon; fails on a refusal.
    pub async fn call(&self, req: &ControlRequest) -> Result<Value> {
        Self::call_at(&self.socket, req).await
    }

    /// The control socket, for callers that fan out.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Asks the daemon at `socket`; fails on a refusal.
    pub async fn call_at(socket: &Path, req: &ControlRequest) -> Result<Value> {
        let reply = call(socket, req).await?.context("the daemon is not running")?;
        if !reply.ok {
            bail!("{}", reply.error.unwrap_or_default());
        }
        Ok(reply.data)
    }

    /// The tracker relays for this node only once it holds a reservation;
    /// sends texts to `to` until one goes `want` (`direct` or `relayed`).
    pub async fn reach(&self, to: &str, want: &str) -> Result<()> {
        for i in 0..100 {
            let v = self.call(&ControlRequest::Send { to: to.into(), text: format!("warm-up {i}") }).await?;
            if v["path"] == want {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{to} was never reached {want}")
    }
}
