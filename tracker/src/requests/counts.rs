//! How many requests of each kind this tracker has answered since it
//! started: what an operator (and a test) reads to see what the nodes ask.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Requests handled, by kind ([`skein_proto::control::Request::kind`]).
#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl RequestCounts {
    /// Counts one request of `kind`.
    pub fn count(&self, kind: &'static str) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()).entry(kind).or_default() += 1;
    }

    /// Requests of `kind` so far.
    pub fn of(&self, kind: &str) -> u64 {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).get(kind).copied().unwrap_or(0)
    }

    /// Every kind seen, with its count.
    pub fn all(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
