//! `skein-load`: the tracker load generator on its own. It starts a tracker,
//! creates users, connects simulated clients from this one process (logged
//! in and subscribed to presence), pings the tracker from every client to
//! count those still live, reports the tracker's memory per live client and
//! how fast a presence change reaches subscribers, then measures resumes
//! and password logins per second.
//!
//! ```text
//! skein-load [--clients N]... [--up-to N] [--subscribers N] [--hold SECS]
//! ```
//!
//! `--hold` keeps the clients connected that long after the last
//! `--clients` step, and prints the tracker's process id, so that a
//! profiler (heaptrack, perf) can be attached to it.

use anyhow::{Context, Result};
use skein_benches::load::{self, LoadPlan};
use skein_benches::report::table;

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut plan = LoadPlan::full();
    let mut steps = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value =
            || -> Result<usize> { args.next().context("a number after the flag")?.parse().context("a number") };
        match a.as_str() {
            "--clients" => steps.push(value()?),
            "--up-to" => {
                let n = value()?;
                plan.beyond = (n > 0).then_some((10_000, n));
            }
            "--subscribers" => plan.subscribers = value()?,
            "--hold" => plan.hold = std::time::Duration::from_secs(value()? as u64),
            "--help" | "-h" => {
                println!("skein-load [--clients N]... [--up-to N] [--subscribers N] [--hold SECS]");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}; see --help"),
        }
    }
    if !steps.is_empty() {
        plan.steps = steps;
    }
    let mut rows = load::tracker_conns(&plan).await?;
    rows.push(load::tracker_logins(&plan).await?);
    println!("{}", table(&rows));
    Ok(())
}
