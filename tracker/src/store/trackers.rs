//! The organisation's trackers: where each is reached and when it was
//! last seen, kept in the store they share.
//!
//! A tracker is known by its relay's PeerId, which its data directory
//! keeps from run to run. It records itself when it starts, refreshes
//! `last_seen_ms` while it runs and clears `running` when it stops
//! cleanly. Addresses are stored as text: control addresses
//! (`HOST:PORT`) separated by commas, relay multiaddrs by spaces.

use super::{Store, StoreError, flag};

/// The channel on which a running tracker says it is still there (its
/// relay's PeerId as the payload), every time it refreshes its entry.
pub const TRACKERS_CHANNEL: &str = "skein_trackers";
use sqlx::Row;

/// One tracker of the organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerRecord {
    /// Its relay's PeerId (base58), stable across restarts.
    pub relay_peer_id: String,
    /// The name it gives itself (`--name`, `tracker_id`; `HOST:PORT` by default).
    pub name: String,
    /// Where nodes reach its control plane (`HOST:PORT`).
    pub control_addrs: Vec<String>,
    /// Its relay's multiaddrs.
    pub relay_addrs: Vec<String>,
    /// When it last started, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// When it last said it was running.
    pub last_seen_ms: i64,
    /// Whether it was running when it last wrote (cleared by a clean stop).
    pub running: bool,
}

fn split(text: &str, sep: char) -> Vec<String> {
    text.split(sep).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl Store {
    /// Records `t` as running now (a start), replacing what its PeerId had.
    pub async fn tracker_started(&self, t: &TrackerRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO trackers (relay_peer_id, name, control_addrs, relay_addrs, started_at_ms, last_seen_ms, running) \
             VALUES ($1, $2, $3, $4, $5, $6, 1) \
             ON CONFLICT (relay_peer_id) DO UPDATE SET name = excluded.name, control_addrs = excluded.control_addrs, \
             relay_addrs = excluded.relay_addrs, started_at_ms = excluded.started_at_ms, \
             last_seen_ms = excluded.last_seen_ms, running = 1",
        )
        .bind(&t.relay_peer_id)
        .bind(&t.name)
        .bind(t.control_addrs.join(","))
        .bind(t.relay_addrs.join(" "))
        .bind(t.started_at_ms)
        .bind(t.last_seen_ms)
        .execute(self.pool())
        .await?;
        self.announce_tracker(&t.relay_peer_id).await
    }

    /// Tells the other trackers on PostgreSQL that `relay_peer_id` runs.
    async fn announce_tracker(&self, relay_peer_id: &str) -> Result<(), StoreError> {
        super::listen::notify(self.backend(), self.pool(), TRACKERS_CHANNEL, relay_peer_id).await
    }

    /// Refreshes a running tracker's `last_seen_ms`; with `running ==
    /// false`, records that it stopped cleanly. Returns whether its row
    /// was there.
    pub async fn tracker_seen(&self, relay_peer_id: &str, at_ms: i64, running: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE trackers SET last_seen_ms = $1, running = $2 WHERE relay_peer_id = $3")
            .bind(at_ms)
            .bind(i64::from(running))
            .bind(relay_peer_id)
            .execute(self.pool())
            .await?;
        if running && done.rows_affected() > 0 {
            self.announce_tracker(relay_peer_id).await?;
        }
        Ok(done.rows_affected() > 0)
    }

    /// Every tracker, the most recently seen first.
    pub async fn list_trackers(&self) -> Result<Vec<TrackerRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT relay_peer_id, name, control_addrs, relay_addrs, started_at_ms, last_seen_ms, running \
             FROM trackers ORDER BY last_seen_ms DESC, relay_peer_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TrackerRecord {
                    relay_peer_id: r.try_get("relay_peer_id")?,
                    name: r.try_get("name")?,
                    control_addrs: split(&r.try_get::<String, _>("control_addrs")?, ','),
                    relay_addrs: split(&r.try_get::<String, _>("relay_addrs")?, ' '),
                    started_at_ms: r.try_get("started_at_ms")?,
                    last_seen_ms: r.try_get("last_seen_ms")?,
                    running: flag(r.try_get("running")?),
                })
            })
            .collect()
    }
}
