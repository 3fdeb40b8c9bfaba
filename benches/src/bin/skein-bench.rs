//! `skein-bench`: runs Skein's end-to-end benchmarks, each next to its
//! baseline in the same run, and prints a markdown table.
//!
//! ```text
//! skein-bench            # everything (a few minutes)
//! skein-bench --quick    # small sizes, under a minute: keeps the harness working
//! skein-bench msg file   # only scenarios whose name contains one of these
//! skein-bench msg-hops   # where a message's time goes, hop by hop
//! skein-bench call       # glass-to-glass latency of calls, direct and relayed
//! ```

use anyhow::Result;
use skein_benches::load::{self, LoadPlan};
use skein_benches::report::{Row, table};
use skein_benches::scenarios::{self, Pair, Plan};
use skein_benches::{cross, fanout, hops};

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<u64>().ok()))
        .map_or(0, |kib| kib >> 20);
    format!("{cores} cores ({cpu}), {mem} GiB of memory")
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let plan = if quick { Plan::QUICK } else { Plan::FULL };
    let load_plan = if quick { LoadPlan::quick() } else { LoadPlan::full() };
    let profile = if cfg!(debug_assertions) { "debug build: figures are not representative" } else { "release build" };
    eprintln!("skein-bench: {} run on {}; {profile}", if quick { "quick" } else { "full" }, machine());

    let mut rows: Vec<Row> = Vec::new();
    let mut direct_rate = None;
    if wanted("msg-rtt") || wanted("msg-rate") || wanted("msg-hops") || wanted("file") {
        let pair = Pair::start(false).await?;
        let (mut node_rtt, mut node_rate) = (None, None);
        if wanted("msg-rtt") {
            let (row, samples) = scenarios::msg_rtt(&pair, plan).await?;
            rows.push(row);
            node_rtt = Some(samples);
            eprintln!("skein-bench: msg-rtt done");
            rows.push(scenarios::msg_rtt_cli(&pair, plan).await?);
            eprintln!("skein-bench: msg-rtt-cli done");
        }
        if wanted("msg-rate") {
            let (row, rate) = scenarios::msg_rate(&pair, plan).await?;
            rows.push(row);
            node_rate = Some(rate);
            eprintln!("skein-bench: msg-rate done");
        }
        if wanted("msg-hops") {
            let rungs = hops::rungs(&pair.cluster, &pair.bob, plan.rtt_count, plan.rate_count).await?;
            rows.push(hops::row(&rungs, node_rtt.as_ref(), node_rate));
            eprintln!("skein-bench: msg-hops done");
        }
        if wanted("file") {
            let (row, rate) = scenarios::file(&pair, plan).await?;
            rows.push(row);
            direct_rate = Some(rate);
            eprintln!("skein-bench: file done");
        }
    }
    if let (true, Some(direct)) = (wanted("file-relayed"), direct_rate) {
        rows.push(scenarios::file_relayed(plan, direct).await?);
        eprintln!("skein-bench: file-relayed done");
    }
    if wanted("group-fanout") {
        rows.push(fanout::group_fanout(plan).await?);
        eprintln!("skein-bench: group-fanout done");
    }
    if wanted("tracker-conns") {
        rows.extend(load::tracker_conns(&load_plan).await?);
        eprintln!("skein-bench: tracker-conns done");
    }
    if wanted("tracker-logins") {
        rows.push(load::tracker_logins(&load_plan).await?);
        eprintln!("skein-bench: tracker-logins done");
    }
    if wanted("presence-cross") {
        rows.push(cross::presence_cross(&load_plan).await?);
        eprintln!("skein-bench: presence-cross done");
    }
    if wanted("failover") {
        rows.push(cross::failover(&load_plan).await?);
        eprintln!("skein-bench: failover done");
    }
    let call_secs = if quick { 4 } else { 20 };
    if wanted("call-latency") {
        rows.extend(skein_benches::calls::call_latency(false, call_secs).await?);
        eprintln!("skein-bench: call-latency done");
    }
    if wanted("call-relayed") {
        rows.extend(skein_benches::calls::call_latency(true, call_secs).await?);
        eprintln!("skein-bench: call-relayed done");
    }
    println!("Machine: {}; {profile}.\n", machine());
    println!("{}", table(&rows));
    Ok(())
}
