//! What the CPU did while a scenario ran, read from `/proc` before and
//! after it: how busy the whole machine was (every process on it, not only
//! Skein's), how much of all CPU time went to the kernel, and how many
//! cores each process of interest used. This is what the harness prints
//! beside a row instead of explanations from earlier profiles.
//!
//! Linux only: elsewhere [`CpuWatch::finish`] returns `None`.

use std::fmt;

/// Ticks of the whole machine, from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MachineTicks {
    total: u64,
    idle: u64,
    kernel: u64,
}

impl MachineTicks {
    /// Parses the first (all-CPU) line of `/proc/stat`.
    fn parse(stat: &str) -> Option<MachineTicks> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is
        // already counted in user).
        Some(MachineTicks { total: (0..8).map(at).sum(), idle: at(3) + at(4), kernel: at(2) + at(5) + at(6) })
    }
}

/// Ticks of one process: (user, kernel), from `/proc/PID/stat`.
fn parse_process(stat: &str) -> Option<(u64, u64)> {
    // The name in parentheses may hold spaces; the fields after it start
    // with the state (field 3), so utime and stime (14, 15) are at 11, 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

fn cpus(stat: &str) -> usize {
    stat.lines().filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)).count()
}

fn read_machine() -> Option<(MachineTicks, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    Some((MachineTicks::parse(&stat)?, cpus(&stat)))
}

fn read_process(pid: u32) -> Option<(u64, u64)> {
    parse_process(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A watched process and its (user, kernel) ticks at the start.
#[derive(Debug)]
struct Watched {
    name: String,
    pid: u32,
    start: Option<(u64, u64)>,
}

/// Started before a measurement; [`CpuWatch::finish`] after it says what
/// the CPU did in between.
#[derive(Debug)]
pub struct CpuWatch {
    machine: Option<(MachineTicks, usize)>,
    procs: Vec<Watched>,
}

impl CpuWatch {
    /// Starts watching the machine and the named processes.
    pub fn start(procs: &[(&str, Option<u32>)]) -> CpuWatch {
        let procs = procs
            .iter()
            .filter_map(|(name, pid)| {
                pid.map(|pid| Watched { name: (*name).to_owned(), pid, start: read_process(pid) })
            })
            .collect();
        CpuWatch { machine: read_machine(), procs }
    }

    /// What the CPU did since [`CpuWatch::start`]; `None` without `/proc`.
    pub fn finish(self) -> Option<CpuUse> {
        let (before, cores) = self.machine?;
        let (after, _) = read_machine()?;
        let total = after.total.saturating_sub(before.total);
        if total == 0 || cores == 0 {
            return None;
        }
        let share = |ticks: u64| ticks as f64 / total as f64;
        let busy = share(total.saturating_sub(after.idle.saturating_sub(before.idle)));
        let kernel = share(after.kernel.saturating_sub(before.kernel));
        // Ticks of one core over the same interval.
        let per_core = total as f64 / cores as f64;
        let procs = self
            .procs
            .into_iter()
            .filter_map(|Watched { name, pid, start }| {
                let (u0, k0) = start?;
                let (u1, k1) = read_process(pid)?;
                let (u, k) = (u1.saturating_sub(u0), k1.saturating_sub(k0));
                Some(ProcessUse {
                    name,
                    cores: (u + k) as f64 / per_core,
                    kernel: (k as f64) / ((u + k).max(1) as f64),
                })
            })
            .collect();
        Some(CpuUse { cores, busy, kernel, procs })
    }
}

/// One process's share of the CPU over a measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessUse {
    /// What it is (`alice's daemon`, `tracker`, …).
    pub name: String,
    /// Cores it kept busy on average.
    pub cores: f64,
    /// The share of its time spent in the kernel.
    pub kernel: f64,
}

/// What the CPU did over a measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuUse {
    /// CPUs in `/proc/stat`.
    pub cores: usize,
    /// Share of all CPU time that was busy, by any process on the machine.
    pub busy: f64,
    /// Share of all CPU time spent in the kernel, by any process.
    pub kernel: f64,
    /// The watched processes.
    pub procs: Vec<ProcessUse>,
}

impl fmt::Display for CpuUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CPU: the machine's {} cores {:.0}% busy, {:.0}% of all CPU time in the kernel (every process on the \
             machine)",
            self.cores,
            self.busy * 100.0,
            self.kernel * 100.0
        )?;
        for (i, p) in self.procs.iter().enumerate() {
            let sep = if i == 0 { "; " } else { ", " };
            write!(f, "{sep}{} {:.2} cores", p.name, p.cores)?;
            if p.cores > 0.0 {
                write!(f, " ({:.0}% kernel)", p.kernel * 100.0)?;
            }
        }
        Ok(())
    }
}

/// A reading for a row's details: the figures, or why there are none.
pub fn describe(u: Option<CpuUse>) -> String {
    u.map_or_else(|| "CPU: not measured (no /proc)".into(), |u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ticks_come_from_the_all_cpu_line() {
        let stat = "cpu  100 5 30 800 20 4 6 2 0 0\ncpu0 50 2 15 400 10 2 3 1 0 0\ncpu1 50 3 15 400 10 2 3 1 0 0\n";
        assert_eq!(MachineTicks::parse(stat), Some(MachineTicks { total: 967, idle: 820, kernel: 40 }));
        assert_eq!(cpus(stat), 2);
    }

    #[test]
    fn process_ticks_skip_a_name_with_spaces() {
        let stat = "4242 (skein daemon) S 1 4242 4242 0 -1 4194560 500 0 0 0 731 129 0 0 20 0 9 0 1000 0 0";
        assert_eq!(parse_process(stat), Some((731, 129)));
        assert_eq!(parse_process("garbage"), None);
    }

    #[test]
    fn this_process_can_be_watched() {
        let w = CpuWatch::start(&[("harness", Some(std::process::id())), ("nobody", None)]);
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        if let Some(u) = w.finish() {
            assert_eq!(u.procs.len(), 1);
            assert!(u.to_string().starts_with("CPU: the machine's"), "{u}");
        }
    }
}
