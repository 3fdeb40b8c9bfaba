//! File transfers as the conversation shows them: an offer waiting for an
//! answer, then a live progress bar with rate and time left, then where
//! the file was saved. Kept current by the node's `transfer` events.

use serde_json::Value;
use std::collections::HashMap;

/// One transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// The transfer id (the offering message's id, hex).
    pub id: String,
    /// `in` or `out`.
    pub incoming: bool,
    /// `offered`, `waiting`, `receiving`, `sending`, `completed`,
    /// `declined`, `failed`…
    pub state: String,
    /// Bytes moved.
    pub done: u64,
    /// File size.
    pub size: u64,
    /// Bytes per second lately.
    pub rate_bps: u64,
    /// Seconds left at that rate.
    pub eta_s: Option<u64>,
    /// Where it was saved (received, completed).
    pub saved_path: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Transfer {
    /// How far along, from 0 to 1.
    pub fn fraction(&self) -> f32 {
        if self.size == 0 {
            return if self.state == "completed" { 1.0 } else { 0.0 };
        }
        (self.done as f64 / self.size as f64).clamp(0.0, 1.0) as f32
    }

    /// Still moving.
    pub fn active(&self) -> bool {
        matches!(self.state.as_str(), "receiving" | "sending" | "waiting" | "accepted")
    }

    /// "12.5 MiB of 50 MiB · 8.1 MiB/s · 5 s left".
    pub fn progress_line(&self) -> String {
        let mut line = format!("{} of {}", human(self.done), human(self.size));
        if self.active() && self.rate_bps > 0 {
            line.push_str(&format!(" · {}/s", human(self.rate_bps)));
        }
        if let (true, Some(eta)) = (self.active(), self.eta_s) {
            line.push_str(&format!(" · {} left", duration(eta)));
        }
        line
    }
}

/// Every transfer seen, by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transfers {
    by_id: HashMap<String, Transfer>,
}

impl Transfers {
    /// A transfer by id.
    pub fn get(&self, id: &str) -> Option<&Transfer> {
        self.by_id.get(id)
    }

    /// Applies a `transfer` event (or a `transfers --json` entry).
    pub fn apply(&mut self, v: &Value) {
        let Some(id) = v["id"].as_str() else { return };
        let t = self.by_id.entry(id.to_owned()).or_insert_with(|| Transfer {
            id: id.to_owned(),
            incoming: v["direction"].as_str() != Some("out"),
            state: String::new(),
            done: 0,
            size: 0,
            rate_bps: 0,
            eta_s: None,
            saved_path: None,
            error: None,
        });
        if let Some(s) = v["state"].as_str() {
            t.state = s.to_owned();
        }
        if let Some(d) = v["bytes_done"].as_u64() {
            t.done = d;
        }
        if let Some(s) = v["size"].as_u64() {
            t.size = s;
        }
        t.rate_bps = v["rate_bps"].as_u64().unwrap_or(if t.active() { t.rate_bps } else { 0 });
        t.eta_s = v["eta_s"].as_u64();
        if let Some(p) = v["saved_path"].as_str() {
            t.saved_path = Some(p.to_owned());
        }
        t.error = v["error"].as_str().map(str::to_owned);
        if t.state == "completed" {
            t.done = t.done.max(t.size);
        }
    }
}

/// Bytes for people: "12.5 MiB".
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Seconds for people: "5 s", "3 min", "2 h 5 min".
pub fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_progress_events_move_the_bar_and_completion_fills_it() {
        let mut t = Transfers::default();
        t.apply(&json!({"type": "transfer", "id": "f1", "direction": "in", "state": "offered", "size": 100}));
        assert_eq!(t.get("f1").map(Transfer::fraction), Some(0.0));
        t.apply(&json!({"type": "transfer", "id": "f1", "state": "receiving", "bytes_done": 25, "size": 100,
            "rate_bps": 3_145_728, "eta_s": 25}));
        let f = t.get("f1").expect("known");
        assert_eq!(f.fraction(), 0.25);
        assert_eq!(f.progress_line(), "25 B of 100 B · 3.0 MiB/s · 25 s left");
        t.apply(&json!({"type": "transfer", "id": "f1", "state": "completed", "saved_path": "/d/x.bin"}));
        let f = t.get("f1").expect("known");
        assert_eq!((f.fraction(), f.saved_path.as_deref()), (1.0, Some("/d/x.bin")));
        assert_eq!(f.progress_line(), "100 B of 100 B", "no rate once done");
        assert_eq!((human(52_428_800), duration(3_725)), ("50.0 MiB".to_owned(), "1 h 2 min".to_owned()));
    }
}
