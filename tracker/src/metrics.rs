//! Prometheus metrics of one tracker process, served at `/metrics` on the
//! HTTP API's address (in the text exposition format).
//!
//! Counted as they happen: QUIC connections open, control requests by kind
//! and outcome (`ok`, or the error code: a wrong password is
//! `Unauthenticated`, a throttled login `Throttled`), the time the
//! presence hub takes to fan a change out to every subscriber's queue, and
//! API calls by route and status. Read when scraped: the relay's
//! reservations, circuits and relayed bytes, and the mailbox's depth and
//! the age of its oldest item (one query).

use crate::state::State;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use skein_proto::ErrorBody;
use skein_proto::control::Response;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

type Labels = Vec<(&'static str, String)>;

/// A fresh histogram for presence fan-out times, in seconds (10 µs to
/// about 5 s).
pub fn fanout_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.5, 15))
}

/// The tracker's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// QUIC connections open now.
    pub connections: Gauge,
    requests: Family<Labels, Counter>,
    api_calls: Family<Labels, Counter>,
    relay_reservations: Gauge,
    relay_circuits: Gauge,
    relayed_bytes: Counter,
    relayed_seen: AtomicU64,
    mailbox_items: Gauge,
    mailbox_oldest: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// The metrics, with the hub's fan-out histogram among them.
    pub fn new(fanout: Histogram) -> Self {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("skein_tracker")),
            connections: Gauge::default(),
            requests: Family::default(),
            api_calls: Family::default(),
            relay_reservations: Gauge::default(),
            relay_circuits: Gauge::default(),
            relayed_bytes: Counter::default(),
            relayed_seen: AtomicU64::new(0),
            mailbox_items: Gauge::default(),
            mailbox_oldest: Gauge::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register("connections", "QUIC connections open now", m.connections.clone());
            r.register(
                "requests",
                "Control requests answered, by kind and outcome (ok, or the error code)",
                m.requests.clone(),
            );
            r.register(
                "presence_fanout_seconds",
                "Time the presence hub took to queue a change for every subscriber",
                fanout,
            );
            r.register("api_calls", "HTTP API calls, by route and status", m.api_calls.clone());
            r.register("relay_reservations", "Relay reservations held now", m.relay_reservations.clone());
            r.register("relay_circuits", "Relay circuits open now", m.relay_circuits.clone());
            r.register("relayed_bytes", "Bytes the relay carried", m.relayed_bytes.clone());
            r.register("mailbox_items", "Sealed items waiting in the mailbox", m.mailbox_items.clone());
            r.register(
                "mailbox_oldest_age_seconds",
                "Age of the oldest item waiting in the mailbox (0 when none waits)",
                m.mailbox_oldest.clone(),
            );
        }
        m
    }

    /// Counts a control request of `kind` and how it was answered.
    pub fn request(&self, kind: &'static str, result: &Result<Response, ErrorBody>) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("{:?}", e.code),
        };
        self.requests.get_or_create(&vec![("kind", kind.to_owned()), ("outcome", outcome)]).inc();
    }

    /// Counts an API call to `route` (the route's pattern) answered `status`.
    pub fn api_call(&self, route: &str, status: u16) {
        self.api_calls.get_or_create(&vec![("route", route.to_owned()), ("status", status.to_string())]).inc();
    }

    /// The metrics in the text format, with what is read at scrape time
    /// brought up to date first.
    pub async fn render(&self, state: &State) -> String {
        if state.config.roles.relay {
            let stats = state.relay.stats().await;
            self.relay_reservations.set(i64::try_from(stats.reservations).unwrap_or(i64::MAX));
            self.relay_circuits.set(i64::try_from(stats.circuits).unwrap_or(i64::MAX));
            let before = self.relayed_seen.swap(stats.total_relayed_bytes, Ordering::Relaxed);
            // The relay's count only grows while it runs.
            self.relayed_bytes.inc_by(stats.total_relayed_bytes.saturating_sub(before));
        }
        match state.store.mailbox_stats().await {
            Ok((items, oldest_ms)) => {
                self.mailbox_items.set(items);
                let age = oldest_ms.map_or(0.0, |at| (crate::clock::now_ms() as i64 - at).max(0) as f64 / 1000.0);
                self.mailbox_oldest.set(age);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the mailbox's depth for /metrics"),
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}
