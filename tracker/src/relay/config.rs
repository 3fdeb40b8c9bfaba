//! Limits of the tracker's relay, sized for files and media.
//!
//! libp2p's defaults (2 minutes and 128 KiB per circuit, 128 reservations,
//! 16 circuits) suit a public relay that only helps peers hole-punch. A Skein
//! tracker relays whole transfers and calls for its own organisation's
//! devices when hole punching fails, so circuits may be long and large; what
//! stays bounded is how many there are, in total and per device.

use std::time::Duration;

/// How much the relay serves. Every field is finite except
/// [`RelayLimits::max_circuit_bytes`], where 0 means no byte limit per circuit
/// (the duration and circuit counts still bound it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLimits {
    /// Longest a relayed circuit may live, counted from its start (not an
    /// idle timeout). At most `u32::MAX` seconds; larger values are clamped.
    pub max_circuit_duration: Duration,
    /// Bytes a circuit may carry, both directions together, before the relay
    /// closes it; 0 = no limit.
    pub max_circuit_bytes: u64,
    /// Reservations held at once, over all devices.
    pub max_reservations: usize,
    /// Reservations one device may hold at once (at least 1).
    pub max_reservations_per_peer: usize,
    /// Circuits open at once, over all devices.
    pub max_circuits: usize,
    /// Circuits one device may have open at once as their source (at least
    /// 1). A destination is bounded by its own reservation and the total.
    pub max_circuits_per_peer: usize,
    /// How long a reservation lasts; clients renew at three quarters of it.
    pub reservation_duration: Duration,
    /// Connections to the relay at once, over all peers (allowed or not).
    pub max_connections: u32,
    /// Connections one peer may hold to the relay at once.
    pub max_connections_per_peer: u32,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_circuit_duration: Duration::from_secs(24 * 3600),
            max_circuit_bytes: 0,
            max_reservations: 10_000,
            max_reservations_per_peer: 8,
            max_circuits: 10_000,
            max_circuits_per_peer: 64,
            reservation_duration: Duration::from_secs(30 * 60),
            max_connections: 20_000,
            max_connections_per_peer: 8,
        }
    }
}

impl RelayLimits {
    /// Sets the longest circuit lifetime.
    pub fn max_circuit_duration(mut self, d: Duration) -> Self {
        self.max_circuit_duration = d;
        self
    }

    /// Sets the byte limit per circuit (0 = none).
    pub fn max_circuit_bytes(mut self, bytes: u64) -> Self {
        self.max_circuit_bytes = bytes;
        self
    }

    /// Sets the total number of circuits.
    pub fn max_circuits(mut self, n: usize) -> Self {
        self.max_circuits = n;
        self
    }

    /// Sets the number of circuits per device.
    pub fn max_circuits_per_peer(mut self, n: usize) -> Self {
        self.max_circuits_per_peer = n;
        self
    }

    /// Sets the total number of reservations.
    pub fn max_reservations(mut self, n: usize) -> Self {
        self.max_reservations = n;
        self
    }

    /// The circuit duration libp2p accepts: it panics above `u32::MAX` seconds.
    pub(crate) fn circuit_duration_clamped(&self) -> Duration {
        self.max_circuit_duration.min(Duration::from_secs(u64::from(u32::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sized_for_files_and_durations_are_clamped() {
        let l = RelayLimits::default();
        assert!(l.max_circuit_duration >= Duration::from_secs(3600));
        assert_eq!(l.max_circuit_bytes, 0);
        let huge = RelayLimits::default().max_circuit_duration(Duration::from_secs(u64::MAX));
        assert_eq!(huge.circuit_duration_clamped(), Duration::from_secs(u64::from(u32::MAX)));
    }
}
