//! Measurements and the markdown table the harness prints.

use std::time::Duration;

/// Latency samples.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Adds one.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// The `p`th percentile (0–100), or zero without samples.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.0.clone();
        v.sort();
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[i.min(v.len() - 1)]
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Microseconds, for the table.
pub fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Milliseconds, for the table.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Seconds, for the table.
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Megabytes (10^6) per second, for the table.
pub fn mbps(bytes_per_sec: f64) -> String {
    format!("{:.0} MB/s", bytes_per_sec / 1e6)
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// What Skein reached.
    pub skein: String,
    /// The baseline in the same run.
    pub baseline: String,
    /// Skein relative to the baseline, as the target states it.
    pub ratio: String,
    /// The target.
    pub target: String,
    /// Whether the target was met; `None` when there is no target to judge.
    pub met: Option<bool>,
    /// What else this run measured for the row (its parts, the CPU while
    /// it ran). Only figures from the run itself belong here; explanations
    /// from profiles taken once live in the README, with how to repeat them.
    pub measured: String,
}

/// The table: rows missing their target first, each with what the run
/// measured beside it; after the table, the same for the other rows.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let missed: Vec<&Row> = rows.iter().filter(|r| r.met == Some(false)).collect();
    if !missed.is_empty() {
        out.push_str("**Missing their target** (with what this run measured beside them):\n\n");
        for r in &missed {
            out.push_str(&format!("- `{}`: {} (target {}). {}\n", r.scenario, r.ratio, r.target, r.measured));
        }
        out.push('\n');
    }
    out.push_str("| scenario | Skein | baseline (same run) | ratio | target | met |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    let mut ordered: Vec<&Row> = missed;
    ordered.extend(rows.iter().filter(|r| r.met != Some(false)));
    for r in ordered {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.scenario, r.skein, r.baseline, r.ratio, r.target, met
        ));
    }
    let others: Vec<&Row> = rows.iter().filter(|r| r.met != Some(false) && !r.measured.is_empty()).collect();
    if !others.is_empty() {
        out.push_str("\nAlso measured in this run:\n\n");
        for r in others {
            out.push_str(&format!("- `{}`: {}\n", r.scenario, r.measured));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_from_the_sorted_samples() {
        let mut s = Samples::default();
        for ms in [5u64, 1, 4, 2, 3] {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.percentile(50.0), Duration::from_millis(3));
        assert_eq!(s.percentile(0.0), Duration::from_millis(1));
        assert_eq!(s.percentile(100.0), Duration::from_millis(5));
        assert_eq!(Samples::default().percentile(99.0), Duration::ZERO);
    }

    #[test]
    fn missed_rows_come_first_with_what_was_measured() {
        let row = |name: &str, met| Row {
            scenario: name.into(),
            skein: "1".into(),
            baseline: "2".into(),
            ratio: "0.5×".into(),
            target: "≥ 0.8×".into(),
            met,
            measured: format!("{name} measured"),
        };
        let t = table(&[row("a", Some(true)), row("b", Some(false)), row("c", None)]);
        assert!(
            t.starts_with("**Missing their target** (with what this run measured beside them):\n\n- `b`: 0.5× (target ≥ 0.8×). b measured"),
            "{t}"
        );
        assert!(t.ends_with("Also measured in this run:\n\n- `a`: a measured\n- `c`: c measured\n"), "{t}");
        let body: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| scenario") && !l.starts_with("| ---"))
            .collect();
        assert!(body[0].starts_with("| b |") && body[1].starts_with("| a |") && body[2].starts_with("| c |"), "{t}");
    }
}
