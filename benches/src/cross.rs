//! Two trackers of one organisation on one PostgreSQL database, under
//! simulated clients ([`crate::load`]):
//! - `presence-cross`: a user on the first tracker changes presence; half
//!   of the subscribers are on the same tracker, half on the other. The
//!   same-tracker arrivals are the one-tracker figure of the same run.
//! - `failover`: simulated nodes logged in on the first tracker, which is
//!   killed (SIGKILL). Each does what a node does: its QUIC keep-alives go
//!   unanswered, so after the node's silence limit it takes the tracker
//!   for gone, connects to the other and resumes with its token. Measured
//!   from the kill to each resume's answer.
//!
//! Both need a PostgreSQL server: the URL in `SKEIN_TEST_POSTGRES_URL`
//! (`scripts/bench` starts one); each scenario makes a database of its own
//! on it. Without one they are reported as skipped, with why.

use crate::cluster::Cluster;
use crate::load::{self, LoadPlan, STAR, Sim};
use crate::report::{Row, Samples, ms, secs};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use skein_tracker::test_utils::{POSTGRES_ENV, PgDatabase};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The row of a scenario that could not run here, saying why.
fn skipped(scenario: &str, why: &str) -> Row {
    eprintln!("skein-bench: {scenario} skipped: {why}");
    Row {
        scenario: scenario.into(),
        skein: format!("skipped: {why}"),
        baseline: "–".into(),
        ratio: "–".into(),
        target: "–".into(),
        met: None,
        measured: String::new(),
    }
}

/// Why the scenarios cannot run, if they cannot.
fn missing_postgres() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.trim().is_empty() => None,
        _ => Some(format!("no PostgreSQL server ({POSTGRES_ENV} is not set; scripts/bench starts one)")),
    }
}

/// Two trackers of one organisation on a fresh database, with cheap
/// password hashing (logins are not what these measure).
struct Pair {
    pg: PgDatabase,
    first: Cluster,
    second: Cluster,
    _config: tempfile::NamedTempFile,
}

impl Pair {
    async fn start() -> Result<Pair> {
        let pg = PgDatabase::create().await;
        let config = tempfile::NamedTempFile::new()?;
        std::fs::write(config.path(), "password_memory_kib = 64\npassword_iterations = 1\nidle_timeout_secs = 15\n")?;
        let cfg = config.path().to_str().context("utf-8 path")?.to_owned();
        let first = Cluster::start(&["--database", &pg.url, "--config", &cfg]).await?;
        first.admin("boss").await?;
        first.user(STAR).await?;
        let join = first.data().to_str().context("utf-8 path")?.to_owned();
        let second = Cluster::start(&["--database", &pg.url, "--config", &cfg, "--join", &join]).await?;
        Ok(Pair { pg, first, second, _config: config })
    }

    fn addrs(&self) -> Result<(SocketAddr, SocketAddr)> {
        Ok((self.first.addr.parse()?, self.second.addr.parse()?))
    }

    async fn end(mut self) {
        let _ = self.first.tracker.kill().await;
        let _ = self.second.tracker.kill().await;
        self.pg.drop_now().await;
    }
}

/// presence-cross: fan-out to subscribers on the star's tracker and on the
/// other one, in the same run.
pub async fn presence_cross(plan: &LoadPlan) -> Result<Row> {
    const NAME: &str = "presence-cross";
    if let Some(why) = missing_postgres() {
        return Ok(skipped(NAME, &why));
    }
    let pair = Pair::start().await?;
    let (a1, a2) = pair.addrs()?;
    let eps = load::endpoints(&pair.first.data().join("ca.pem"))?;
    let n = plan.subscribers;
    load::create_users(&eps, a1, n).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let half = n / 2;
    let mut held = load::connect_clients(&eps, a1, 0, half, n, &tx).await;
    held.extend(load::connect_clients(&eps, a2, half, n, n, &tx).await);
    if held.len() < n {
        bail!("only {} of {n} subscribers logged in", held.len());
    }
    let mut star = Sim::open(&eps[0], a1).await?;
    star.login(STAR).await?;
    // The second tracker has read the star's part of presence by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let arrivals = load::fan_out_each(&mut star, n, 5, &mut rx).await?;
    let (mut here, mut there) = (Samples::default(), Samples::default());
    for (i, d) in arrivals {
        if i < half { here.push(d) } else { there.push(d) }
    }
    drop(held);
    load::close_all(&eps).await;
    pair.end().await;
    let p99 = there.percentile(99.0);
    Ok(Row {
        scenario: NAME.into(),
        skein: format!(
            "p50 {}, p99 {} to {} subscribers on the other tracker",
            ms(there.percentile(50.0)),
            ms(p99),
            n - half
        ),
        baseline: format!(
            "p50 {}, p99 {} to {half} subscribers on the same tracker",
            ms(here.percentile(50.0)),
            ms(here.percentile(99.0))
        ),
        ratio: format!(
            "{:.1}× the same-tracker p99",
            p99.as_secs_f64() / here.percentile(99.0).as_secs_f64().max(1e-6)
        ),
        target: "p99 ≤ 250 ms across trackers".into(),
        met: Some(p99 <= Duration::from_millis(250)),
        measured: format!(
            "{} arrivals over 5 changes; two trackers on one PostgreSQL database (LISTEN/NOTIFY)",
            here.len() + there.len()
        ),
    })
}

/// How many nodes the failover scenario fails over.
pub fn failover_nodes(plan: &LoadPlan) -> usize {
    plan.subscribers
}

/// failover: SIGKILL of the tracker that `n` simulated nodes are on, until
/// each has resumed on the other.
pub async fn failover(plan: &LoadPlan) -> Result<Row> {
    const NAME: &str = "failover";
    if let Some(why) = missing_postgres() {
        return Ok(skipped(NAME, &why));
    }
    let mut pair = Pair::start().await?;
    let (a1, a2) = pair.addrs()?;
    let eps = load::endpoints(&pair.first.data().join("ca.pem"))?;
    let n = failover_nodes(plan);
    load::create_users(&eps, a1, n).await?;
    // Every node logs in on the first tracker and keeps its session.
    let nodes: Vec<Result<Sim>> = futures::stream::iter(0..n)
        .map(|i| {
            let ep = eps[i % eps.len()].clone();
            async move {
                let mut sim = Sim::open(&ep, a1).await?;
                let token = sim.login(&load::user_name(i)).await?;
                sim.token = Some(token);
                anyhow::Ok(sim)
            }
        })
        .buffer_unordered(128)
        .collect()
        .await;
    let nodes: Vec<Sim> = nodes.into_iter().collect::<Result<_>>()?;
    let (done_tx, mut done) = mpsc::unbounded_channel::<Result<Resumed>>();
    for (i, sim) in nodes.into_iter().enumerate() {
        let ep = eps[i % eps.len()].clone();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let _ = done_tx.send(fail_over(sim, ep, a2).await);
        });
    }
    drop(done_tx);
    tokio::time::sleep(Duration::from_secs(1)).await;
    pair.first.tracker.start_kill().context("killing the first tracker")?;
    let killed = Instant::now();
    let (mut samples, mut noticed, mut attempts) = (Samples::default(), Samples::default(), 0);
    let mut failures = Vec::new();
    while let Some(r) = done.recv().await {
        match r {
            Ok(r) => {
                samples.push(r.at.saturating_duration_since(killed));
                noticed.push(r.noticed.saturating_duration_since(killed));
                attempts += r.attempts;
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    load::close_all(&eps).await;
    pair.end().await;
    if let Some(first) = failures.first() {
        eprintln!("skein-bench: {} of {n} nodes did not fail over; the first: {first}", failures.len());
    }
    let p99 = samples.percentile(99.0);
    Ok(Row {
        scenario: NAME.into(),
        skein: format!(
            "p50 {}, p99 {} for {} of {n} nodes to resume on the other tracker",
            secs(samples.percentile(50.0)),
            secs(p99),
            samples.len()
        ),
        baseline: "–".into(),
        ratio: secs(p99),
        target: "p99 ≤ 5 s; every node resumed".into(),
        met: Some(failures.is_empty() && p99 <= Duration::from_secs(5)),
        measured: format!(
            "From SIGKILL to each resume's answer: a node takes its tracker for gone after {} without an answer \
             to its keep-alives (sent every {}), then connects to the other tracker and resumes with its token. \
             The nodes noticed the loss after p50 {}, p99 {}; {attempts} connections for {} resumes",
            secs(skein_node::tracker_client::SILENT_FOR),
            secs(skein_node::tracker_client::KEEP_ALIVE),
            secs(noticed.percentile(50.0)),
            secs(noticed.percentile(99.0)),
            samples.len()
        ),
    })
}

/// One node's failover.
struct Resumed {
    /// Its connection to the killed tracker closed.
    noticed: Instant,
    /// The other tracker answered its resume.
    at: Instant,
    /// Connections it took.
    attempts: usize,
}

/// Waits until `sim`'s tracker is gone, then resumes on the tracker at
/// `other`; returns when the resume was answered.
async fn fail_over(sim: Sim, ep: quinn::Endpoint, other: SocketAddr) -> Result<Resumed> {
    sim.conn.closed().await;
    let noticed = Instant::now();
    let mut attempts = 0;
    let token = sim.token.context("a session to resume")?;
    let device = sim.device.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let mut again = Sim::open(&ep, other).await?;
            again.resume(token, device.clone()).await
        };
        attempts += 1;
        match attempt.await {
            Ok(_) => return Ok(Resumed { noticed, at: Instant::now(), attempts }),
            Err(e) if Instant::now() > deadline => return Err(e.context("resuming on the other tracker")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
