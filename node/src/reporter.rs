//! Reporting this device's addresses to the tracker.
//!
//! The mesh announces address changes in bursts (interfaces, then observed
//! NAT mappings, then the relay reservation). One task per tracker
//! connection sends them one request at a time, always the latest set, so
//! an older report can never overtake a newer one at the tracker. Once the
//! tracker has taken a report with a relayed address, the daemon prints
//! `relay_reserved`: from then on peers behind other NATs can reach us.

use crate::events::Events;
use crate::tracker_client::TrackerClient;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde_json::json;
use skein_proto::control::{Addresses, Request};
use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The latest addresses, and the task reporting them to the current tracker.
#[derive(Debug)]
pub struct AddressReporter {
    tx: watch::Sender<Addresses>,
    task: Option<JoinHandle<()>>,
    events: Events,
}

impl AddressReporter {
    /// A reporter that says on `events` when the relay is reserved.
    pub fn new(events: Events) -> Self {
        Self { tx: watch::Sender::new(Addresses::default()), task: None, events }
    }

    /// Records a new set of addresses (each list capped at the protocol's limit).
    pub fn set(&self, mut a: Addresses) {
        for v in [&mut a.listen, &mut a.observed, &mut a.relayed] {
            v.truncate(skein_proto::limits::MAX_ADDRS);
        }
        self.tx.send_replace(a);
    }

    /// The addresses known now.
    pub fn current(&self) -> Addresses {
        self.tx.borrow().clone()
    }

    /// Starts reporting to a newly connected tracker.
    pub fn connect(&mut self, client: TrackerClient) {
        self.disconnect();
        self.task = Some(tokio::spawn(report(client, self.tx.subscribe(), self.events.clone())));
    }

    /// Stops reporting (the tracker connection is gone).
    pub fn disconnect(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for AddressReporter {
    fn drop(&mut self) {
        self.disconnect();
    }
}

async fn report(client: TrackerClient, mut rx: watch::Receiver<Addresses>, events: Events) {
    let mut relay_announced = false;
    loop {
        let a = reportable(&rx.borrow_and_update().clone(), client.remote_addr());
        match client.request(Request::ReportAddresses(a.clone())).await {
            Ok(_) => {
                if let (false, Some(first)) = (relay_announced, a.relayed.first()) {
                    events.emit(json!({"type": "relay_reserved", "address": first}));
                }
                relay_announced = !a.relayed.is_empty();
            }
            Err(e) => tracing::info!(error = %e, "could not report addresses"),
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The addresses worth telling the tracker: loopback ones only when the
/// tracker itself is reached over loopback (everyone is on this machine);
/// elsewhere they would only send peers dialling themselves.
pub fn reportable(a: &Addresses, tracker: SocketAddr) -> Addresses {
    if tracker.ip().is_loopback() {
        return a.clone();
    }
    let local = |s: &String| {
        s.parse::<Multiaddr>().is_ok_and(|m| {
            m.iter().any(|p| match p {
                Protocol::Ip4(ip) => ip.is_loopback() || ip.is_unspecified(),
                Protocol::Ip6(ip) => ip.is_loopback() || ip.is_unspecified(),
                _ => false,
            })
        })
    };
    let keep = |v: &[String]| v.iter().filter(|s| !local(s)).cloned().collect();
    Addresses { listen: keep(&a.listen), observed: keep(&a.observed), relayed: a.relayed.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_reported_only_to_a_loopback_tracker() {
        let a = Addresses {
            listen: vec!["/ip4/127.0.0.1/udp/5/quic-v1".into(), "/ip4/198.19.1.2/udp/5/quic-v1".into()],
            observed: vec!["/ip4/198.18.1.1/udp/5/quic-v1".into()],
            relayed: vec!["/ip4/198.18.0.1/udp/7401/quic-v1/p2p-circuit".into()],
        };
        let remote = reportable(&a, "198.18.0.1:7400".parse().expect("addr"));
        assert_eq!(remote.listen, vec!["/ip4/198.19.1.2/udp/5/quic-v1".to_owned()]);
        assert_eq!((remote.observed, remote.relayed), (a.observed.clone(), a.relayed.clone()));
        assert_eq!(reportable(&a, "127.0.0.1:7400".parse().expect("addr")), a);
    }
}
