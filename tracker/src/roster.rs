//! This tracker's entry in the organisation's list of trackers
//! (`skein-tracker trackers list`), kept in the store they share.
//!
//! The entry is written when the tracker starts, its `last_seen_ms`
//! refreshed every [`BEAT`] while it runs, and `running` cleared by a
//! clean stop. A tracker is known by its relay's PeerId, which its data
//! directory keeps from run to run.

use crate::config::TrackerConfig;
use crate::store::{Store, TrackerRecord};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a running tracker says it is still there.
pub const BEAT: Duration = Duration::from_secs(5);
/// A tracker not heard of for this long, though it never said it stopped,
/// is taken for gone.
pub const SILENT_AFTER: Duration = Duration::from_secs(15);

/// Where nodes reach the control plane bound at `bound`: every public
/// address (with the port, unless it names one), the listen IP when it is
/// specific, and the bound address itself when there is nothing better.
pub fn control_addrs(config: &TrackerConfig, bound: SocketAddr) -> Vec<String> {
    let with_port = |host: &str| match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, bound.port()).to_string(),
        Err(_) if host.parse::<SocketAddr>().is_ok() => host.to_owned(),
        Err(_) => format!("{host}:{}", bound.port()),
    };
    let mut addrs: Vec<String> =
        config.public_addrs.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).map(with_port).collect();
    if !bound.ip().is_unspecified() || addrs.is_empty() {
        addrs.push(bound.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    addrs.retain(|a| seen.insert(a.clone()));
    addrs
}

/// This tracker's entry as it starts, at `now_ms`: its control plane
/// bound at `bound` (none for a relay-only process) and its relay (which
/// advertises nothing when the process runs none).
pub fn entry(
    config: &TrackerConfig,
    bound: Option<SocketAddr>,
    relay: &crate::relay::Relay,
    now_ms: i64,
) -> TrackerRecord {
    let peer = relay.peer_id();
    TrackerRecord {
        relay_peer_id: peer.to_string(),
        name: config.tracker_id.clone(),
        control_addrs: bound.map(|b| control_addrs(config, b)).unwrap_or_default(),
        relay_addrs: relay
            .advertised()
            .iter()
            .map(|a| a.clone().with(libp2p::multiaddr::Protocol::P2p(peer)).to_string())
            .collect(),
        started_at_ms: now_ms,
        last_seen_ms: now_ms,
        running: true,
    }
}

/// Refreshes the entry of the tracker whose relay is `relay_peer_id`
/// every `every` until `shutdown`; a store that fails is logged and tried
/// again at the next beat (an entry that vanished, say restored from a
/// backup, is written again).
pub async fn run(store: Store, me: TrackerRecord, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::clock::now_ms() as i64;
        match store.tracker_seen(&me.relay_peer_id, now, true).await {
            Ok(true) => {}
            Ok(false) => {
                let again = TrackerRecord { last_seen_ms: now, ..me.clone() };
                if let Err(e) = store.tracker_started(&again).await {
                    tracing::warn!(error = %e, "cannot write this tracker's entry in the list of trackers");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot refresh this tracker's entry in the list of trackers"),
        }
    }
}

/// How a listed tracker stands at `now_ms`: `running`, `stopped` (it said
/// so), or `silent` (it stopped refreshing its entry without a word).
pub fn standing(t: &TrackerRecord, now_ms: i64) -> &'static str {
    if !t.running {
        "stopped"
    } else if now_ms.saturating_sub(t.last_seen_ms) > SILENT_AFTER.as_millis() as i64 {
        "silent"
    } else {
        "running"
    }
}

/// A duration as the list of trackers shows it: `4 s`, `12 min`, `3 h`, `2 days`.
pub fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7_200 => format!("{} min", s / 60),
        7_200..172_800 => format!("{} h", s / 3_600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_addresses_come_from_public_addresses_and_a_specific_listen_ip() {
        let bound: SocketAddr = "0.0.0.0:7400".parse().expect("addr");
        let mut c = TrackerConfig::new("/x");
        assert_eq!(control_addrs(&c, bound), ["0.0.0.0:7400"], "nothing better than the bound address");
        c.public_addrs = vec!["tracker.example.org".into(), "198.18.0.5".into(), "198.18.0.6:9000".into(), " ".into()];
        assert_eq!(control_addrs(&c, bound), ["tracker.example.org:7400", "198.18.0.5:7400", "198.18.0.6:9000"]);
        let specific: SocketAddr = "198.18.0.5:7400".parse().expect("addr");
        assert_eq!(control_addrs(&c, specific), ["tracker.example.org:7400", "198.18.0.5:7400", "198.18.0.6:9000"]);
        c.public_addrs = vec!["2001:db8::1".into()];
        assert_eq!(control_addrs(&c, bound), ["[2001:db8::1]:7400"]);
    }

    #[test]
    fn a_tracker_is_running_stopped_or_silent() {
        let t = TrackerRecord {
            relay_peer_id: "p".into(),
            name: "n".into(),
            control_addrs: vec![],
            relay_addrs: vec![],
            started_at_ms: 0,
            last_seen_ms: 100_000,
            running: true,
        };
        assert_eq!(standing(&t, 101_000), "running");
        assert_eq!(standing(&t, 100_000 + SILENT_AFTER.as_millis() as i64 + 1), "silent");
        assert_eq!(standing(&TrackerRecord { running: false, ..t }, 101_000), "stopped");
    }

    #[test]
    fn ages_read_as_people_say_them() {
        let secs = Duration::from_secs;
        assert_eq!(
            [ago(secs(4)), ago(secs(700)), ago(secs(4 * 3_600)), ago(secs(3 * 86_400))],
            ["4 s", "11 min", "4 h", "3 days"]
        );
    }
}
