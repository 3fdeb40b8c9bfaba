//! The end-to-end scenarios, each run next to its raw-quinn baseline.
//!
//! Beside each row the harness prints only what it measured in the same
//! run: the parts it timed, and what the CPU did meanwhile ([`crate::cpu`]).

use crate::cluster::{Cluster, Node};
use crate::cpu::{self, CpuWatch};
use crate::rawquic;
use crate::report::{Row, Samples, mbps, secs, us};
use anyhow::{Context, Result, bail};
use skein_node::control::ControlRequest;
use skein_node::transfer::manifest::{CHUNK_SIZE, Manifest};
use skein_proto::bytes::ContentHash;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Sizes and counts for one run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Messages timed one at a time.
    pub rtt_count: usize,
    /// Messages sent for the rate.
    pub rate_count: usize,
    /// Bytes in the file scenarios.
    pub file_bytes: u64,
    /// Members of the group besides the sender, each a device of its own.
    pub group_members: usize,
    /// Sends to the group timed one at a time.
    pub group_sends: usize,
}

impl Plan {
    /// The full run.
    pub const FULL: Plan =
        Plan { rtt_count: 2_000, rate_count: 20_000, file_bytes: 1 << 30, group_members: 100, group_sends: 200 };
    /// A run of well under a minute, to keep the harness working.
    pub const QUICK: Plan =
        Plan { rtt_count: 200, rate_count: 2_000, file_bytes: 64 << 20, group_members: 10, group_sends: 20 };
}

const MSG: usize = 200;

/// Two users with daemons on loopback, reaching each other directly.
#[derive(Debug)]
pub struct Pair {
    /// The tracker.
    pub cluster: Cluster,
    /// The sender.
    pub alice: Node,
    /// The receiver, accepting files automatically.
    pub bob: Node,
}

impl Pair {
    /// Starts the pair; `relay_only` forces both through the tracker's relay.
    pub async fn start(relay_only: bool) -> Result<Pair> {
        let cluster = Cluster::start(&[]).await?;
        cluster.user("alice").await?;
        cluster.user("bob").await?;
        let downloads = cluster.dir.path().join("downloads");
        let dl = downloads.to_str().context("utf-8 path")?;
        let mut extra = vec!["--download-dir", dl, "--auto-accept"];
        if relay_only {
            extra.push("--relay-only");
        }
        let alice = cluster.node("alice", &extra).await?;
        let bob = cluster.node("bob", &extra).await?;
        alice.reach("bob", if relay_only { "relayed" } else { "direct" }).await?;
        Ok(Pair { cluster, alice, bob })
    }

    /// Starts watching the CPU of both daemons, the tracker and this harness.
    fn watch(&self) -> CpuWatch {
        CpuWatch::start(&[
            ("alice's daemon", self.alice.child.id()),
            ("bob's daemon", self.bob.child.id()),
            ("the tracker", self.cluster.tracker.id()),
            ("this harness", Some(std::process::id())),
        ])
    }
}

/// A 200-byte text numbered `i`.
pub(crate) fn text(i: usize) -> String {
    let mut t = format!("{i:08} ");
    t.extend(std::iter::repeat_n('x', MSG - t.len()));
    t
}

/// msg-rtt: a 200-byte message sent and acknowledged, one at a time,
/// through the node handle (the library API that the daemon and the
/// desktop app are built on) of a node running inside this harness, to
/// bob's daemon; each send is answered once both ends have stored it.
/// Returns the row and the timed sends.
pub async fn msg_rtt(pair: &Pair, plan: Plan) -> Result<(Row, Samples)> {
    use skein_node::daemon::DaemonOptions;
    let base = rawquic::echo_rtt(plan.rtt_count, MSG).await?;
    pair.cluster.user("carol").await?;
    let profile = skein_node::profile::Profile::new(&pair.cluster.login("carol").await?);
    let options = DaemonOptions { listen: vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse()?], ..Default::default() };
    let (node, task) = skein_node::handle::start(profile, options, "skein-bench").await?;
    let mut reached = false;
    for i in 0..100 {
        if node.send("bob", &format!("warm-up {i}")).await.map(|v| v["path"] == "direct").unwrap_or(false) {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !reached {
        bail!("carol's node never reached bob directly");
    }
    let watch = || {
        CpuWatch::start(&[
            ("bob's daemon", pair.bob.child.id()),
            ("the tracker", pair.cluster.tracker.id()),
            ("this harness (carol's node)", Some(std::process::id())),
        ])
    };
    let (skein, used) = timed_sends(plan.rtt_count, watch, async |i| Ok(node.send("bob", &text(i)).await?)).await?;
    node.stop();
    let _ = task.await;
    let p50 = skein.percentile(50.0).as_secs_f64() / base.percentile(50.0).as_secs_f64();
    let p99 = skein.percentile(99.0).as_secs_f64() / base.percentile(99.0).as_secs_f64();
    let row = Row {
        scenario: "msg-rtt".into(),
        skein: format!("p50 {}, p99 {}", us(skein.percentile(50.0)), us(skein.percentile(99.0))),
        baseline: format!("p50 {}, p99 {}", us(base.percentile(50.0)), us(base.percentile(99.0))),
        ratio: format!("{p50:.1}× (p50), {p99:.1}× (p99)"),
        target: "p50 ≤ 3×, p99 ≤ 5×".into(),
        met: Some(p50 <= 3.0 && p99 <= 5.0),
        measured: cpu::describe(used),
    };
    Ok((row, skein))
}

/// Times `count` sends, one at a time, after a tenth as many untimed ones;
/// the CPU watch starts with the timed ones. Every send must go direct.
async fn timed_sends(
    count: usize,
    mut watch_from: impl FnMut() -> CpuWatch,
    mut send: impl AsyncFnMut(usize) -> Result<serde_json::Value>,
) -> Result<(Samples, Option<cpu::CpuUse>)> {
    let mut watch = None;
    let mut samples = Samples::default();
    for i in 0..count + count / 10 {
        if i == count / 10 {
            watch = Some(watch_from());
        }
        let t0 = Instant::now();
        let v = send(i).await?;
        if v["path"] != "direct" {
            bail!("a timed message went {}", v["path"]);
        }
        if i >= count / 10 {
            samples.push(t0.elapsed());
        }
    }
    Ok((samples, watch.and_then(CpuWatch::finish)))
}

/// msg-rtt-cli: the same through alice's daemon, as scripts send: `send`
/// requests one at a time on one persistent connection to its control
/// socket, each answered once bob's daemon has stored the message.
pub async fn msg_rtt_cli(pair: &Pair, plan: Plan) -> Result<Row> {
    let base = rawquic::echo_rtt(plan.rtt_count, MSG).await?;
    let mut conn = skein_node::control::Connection::open(pair.alice.socket())
        .await?
        .context("alice's daemon does not answer on its control socket")?;
    // The part of a send that needs neither the network nor bob: a control
    // request that alice's daemon answers from its own state.
    let mut local = Samples::default();
    for _ in 0..plan.rtt_count {
        let t0 = Instant::now();
        conn.call(&ControlRequest::Info).await?;
        local.push(t0.elapsed());
    }
    let send = async |i| {
        let reply = conn.call(&ControlRequest::Send { to: "bob".into(), text: text(i) }).await?;
        match reply.ok {
            true => Ok(reply.data),
            false => bail!("a timed message failed: {:?}", reply.error),
        }
    };
    let (skein, used) = timed_sends(plan.rtt_count, || pair.watch(), send).await?;
    let ratio = skein.percentile(50.0).as_secs_f64() / base.percentile(50.0).as_secs_f64();
    Ok(Row {
        scenario: "msg-rtt-cli".into(),
        skein: format!("p50 {}, p99 {}", us(skein.percentile(50.0)), us(skein.percentile(99.0))),
        baseline: format!("p50 {}, p99 {}", us(base.percentile(50.0)), us(base.percentile(99.0))),
        ratio: format!("{ratio:.1}× (p50)"),
        target: "p50 ≤ 4×".into(),
        met: Some(ratio <= 4.0),
        measured: format!(
            "A control request alice's daemon answers alone (`info`, no network): p50 {}, p99 {}. {}",
            us(local.percentile(50.0)),
            us(local.percentile(99.0)),
            cpu::describe(used)
        ),
    })
}

/// msg-rate: sustained delivered and acknowledged messages per second, 64
/// in flight on one persistent connection to the daemon's control socket
/// (each answered, by id, once bob's device has stored it).
/// Returns the row and the rate.
pub async fn msg_rate(pair: &Pair, plan: Plan) -> Result<(Row, f64)> {
    let base = rawquic::framed_rate(plan.rate_count, MSG).await?;
    let mut conn = skein_node::control::Connection::open(pair.alice.socket())
        .await?
        .context("alice's daemon does not answer on its control socket")?;
    let watch = pair.watch();
    let t0 = Instant::now();
    let (mut sent, mut answered, mut delivered) = (0, 0, 0);
    while sent < plan.rate_count.min(64) {
        conn.send(&ControlRequest::Send { to: "bob".into(), text: text(sent) }).await?;
        sent += 1;
    }
    while answered < plan.rate_count {
        let (_, reply) = conn.next_reply().await?;
        answered += 1;
        if reply.ok && reply.data["path"] == "direct" {
            delivered += 1;
        }
        if sent < plan.rate_count {
            conn.send(&ControlRequest::Send { to: "bob".into(), text: text(sent) }).await?;
            sent += 1;
        }
    }
    let took = t0.elapsed();
    let used = watch.finish();
    if delivered != plan.rate_count {
        bail!("only {delivered} of {} messages were delivered directly", plan.rate_count);
    }
    let rate = plan.rate_count as f64 / took.as_secs_f64();
    let ratio = rate / base;
    let row = Row {
        scenario: "msg-rate".into(),
        skein: format!("{rate:.0} msg/s"),
        baseline: format!("{base:.0} msg/s"),
        ratio: format!("{:.1}%", ratio * 100.0),
        target: "≥ 15%".into(),
        met: Some(ratio >= 0.15),
        measured: format!("Over the {} sends ({:.2} s): {}", plan.rate_count, took.as_secs_f64(), cpu::describe(used)),
    };
    Ok((row, rate))
}

/// Writes `bytes` of pseudo-random data to `path`.
fn make_file(path: &Path, bytes: u64) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for w in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// What one file transfer measured, from the user's command to the
/// verified file on the receiver.
#[derive(Debug, Clone)]
pub struct FileRun {
    /// The file's size.
    pub bytes: u64,
    /// From the send-file command to its answer: the sender hashes the
    /// file, records the offer and delivers it.
    pub offer: Duration,
    /// From that answer until the receiver reports the file complete: it
    /// fetches the chunks, verifies each as it arrives, writes it, and
    /// syncs the file to disk.
    pub transfer: Duration,
    /// Verifying the whole received file once more, timed by the harness
    /// after the transfer with the receiver's own code (BLAKE3 of every
    /// chunk and the root, checked against the offer). Not part of the
    /// end-to-end time: it shows what the receiver's checking costs here.
    pub verify: Duration,
    /// What the CPU did from the command to the verified file.
    pub cpu: Option<cpu::CpuUse>,
}

impl FileRun {
    /// From the command to the verified file.
    pub fn end_to_end(&self) -> Duration {
        self.offer + self.transfer
    }

    /// Bytes per second, end to end.
    pub fn rate(&self) -> f64 {
        self.bytes as f64 / self.end_to_end().as_secs_f64()
    }

    /// Bytes per second of the transfer part alone.
    pub fn transfer_rate(&self) -> f64 {
        self.bytes as f64 / self.transfer.as_secs_f64()
    }

    /// The parts, for the table.
    pub fn parts(&self) -> String {
        let share = |d: Duration| d.as_secs_f64() / self.end_to_end().as_secs_f64() * 100.0;
        format!(
            "{} end to end: hashing and offer {} ({:.0}%), transfer {} ({:.0}%, {})",
            secs(self.end_to_end()),
            secs(self.offer),
            share(self.offer),
            secs(self.transfer),
            share(self.transfer),
            mbps(self.transfer_rate())
        )
    }
}

/// Sends a `bytes`-byte file from alice to bob and times it, from the
/// command to the verified file on bob's side.
pub async fn file_once(pair: &Pair, bytes: u64, name: &str) -> Result<FileRun> {
    let src: PathBuf = pair.cluster.dir.path().join(name);
    make_file(&src, bytes)?;
    let watch = pair.watch();
    let t0 = Instant::now();
    let offer = pair
        .alice
        .call(&ControlRequest::SendFile { to: "bob".into(), path: src.display().to_string(), name: None })
        .await?;
    let offered = Instant::now();
    let id = offer["id"].as_str().context("offer id")?.to_owned();
    let root = offer["root"].as_str().context("offer root")?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(900);
    let saved = loop {
        let t = pair.bob.call(&ControlRequest::Transfers { id: Some(id.clone()) }).await;
        if let Ok(t) = t {
            match t["state"].as_str() {
                Some("completed") => break t["saved_path"].as_str().map(PathBuf::from),
                Some("failed" | "declined") => bail!("the transfer {}: {}", t["state"], t["error"]),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!("the transfer took over 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let done = Instant::now();
    let cpu = watch.finish();
    let received = saved.unwrap_or_else(|| pair.cluster.dir.path().join("downloads").join(name));
    let verify = verify_received(&received, &root).await?;
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&received);
    Ok(FileRun { bytes, offer: offered - t0, transfer: done - offered, verify, cpu })
}

/// Verifies the received file against the offered root as the receiver
/// does, and returns how long that took; fails if it is not the file sent.
async fn verify_received(path: &Path, root: &str) -> Result<Duration> {
    let path = path.to_owned();
    let t0 = Instant::now();
    let manifest = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path).with_context(|| format!("opening the received {}", path.display()))?;
        anyhow::Ok(Manifest::from_reader(std::io::BufReader::with_capacity(CHUNK_SIZE as usize, f), CHUNK_SIZE)?)
    })
    .await??;
    let took = t0.elapsed();
    let got = ContentHash(manifest.root()).to_hex();
    if got != root {
        bail!("the received file's root is {got}, but {root} was offered");
    }
    Ok(took)
}

/// file: a file direct on loopback, from the send-file command to the
/// verified file on the receiver's disk.
pub async fn file(pair: &Pair, plan: Plan) -> Result<(Row, f64)> {
    let base = rawquic::bulk(plan.file_bytes, None).await?;
    let to_disk = rawquic::bulk(plan.file_bytes, Some(&pair.cluster.dir.path().join("baseline.bin"))).await?;
    let run = file_once(pair, plan.file_bytes, "direct.bin").await?;
    let ratio = run.rate() / base;
    let to_file = run.rate() / to_disk;
    let size = human(plan.file_bytes);
    Ok((
        Row {
            scenario: format!("file ({size})"),
            skein: format!("{} ({})", mbps(run.rate()), run.parts()),
            baseline: format!("{} (one stream, discarded); {} written to a file", mbps(base), mbps(to_disk)),
            ratio: format!(
                "{:.0}% of raw quinn writing to a file, {:.0}% of raw quinn discarding (end to end)",
                to_file * 100.0,
                ratio * 100.0
            ),
            target: "≥ 85% of raw writing to a file, ≥ 60% of raw discarding".into(),
            met: Some(to_file >= 0.85 && ratio >= 0.6),
            measured: format!(
                "{}; the transfer part alone is {:.0}% of the baseline, and raw quinn writing to a file reached \
                 {:.0}% of it. Verifying the received file once more (BLAKE3 of every chunk, as the receiver does \
                 during the transfer) took {} here. {}",
                run.parts(),
                run.transfer_rate() / base * 100.0,
                to_disk / base * 100.0,
                secs(run.verify),
                cpu::describe(run.cpu.clone())
            ),
        },
        run.rate(),
    ))
}

/// file-relayed: the same through the tracker's relay, against the
/// direct file row, both end to end.
pub async fn file_relayed(plan: Plan, direct: f64) -> Result<Row> {
    let pair = Pair::start(true).await?;
    let run = file_once(&pair, plan.file_bytes, "relayed.bin").await?;
    let ratio = run.rate() / direct;
    Ok(Row {
        scenario: format!("file-relayed ({})", human(plan.file_bytes)),
        skein: format!("{} ({})", mbps(run.rate()), run.parts()),
        baseline: format!("{} (the file row, end to end)", mbps(direct)),
        ratio: format!("{:.0}%", ratio * 100.0),
        target: "≥ 40% of direct".into(),
        met: Some(ratio >= 0.40),
        measured: format!(
            "Verifying the received file once more took {}. {}",
            secs(run.verify),
            cpu::describe(run.cpu)
        ),
    })
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 { format!("{} GiB", bytes >> 30) } else { format!("{} MiB", bytes >> 20) }
}
