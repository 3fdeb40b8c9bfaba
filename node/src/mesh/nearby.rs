//! Whether a peer is on one of this device's own networks: a direct
//! connection whose remote address shares a subnet (an IPv4 /24, an IPv6
//! /64) with an address this device listens on, or is this host itself.
//! Group files are fetched from such peers first, so an office's members
//! share a file over their LAN rather than across the WAN. Free of IO.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use std::net::IpAddr;

/// The IP a multiaddr starts with, if it starts with one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// Whether `remote` is on the same network as one of `local` (this
/// device's listen addresses, unspecified ones left out).
pub fn same_network(remote: IpAddr, local: &[IpAddr]) -> bool {
    if remote.is_loopback() {
        return true;
    }
    local.iter().filter(|l| !l.is_unspecified()).any(|l| match (remote, l) {
        (IpAddr::V4(r), IpAddr::V4(l)) => r.octets()[..3] == l.octets()[..3],
        (IpAddr::V6(r), IpAddr::V6(l)) => r.segments()[..4] == l.segments()[..4],
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_peer_in_one_of_this_device_s_subnets_is_nearby_and_one_elsewhere_is_not() {
        let local = [ip("0.0.0.0"), ip("198.18.1.20"), ip("2001:db8:1:2::5")];
        assert!(same_network(ip("198.18.1.77"), &local));
        assert!(same_network(ip("2001:db8:1:2:abcd::1"), &local));
        assert!(same_network(ip("127.0.0.1"), &local), "this host");
        assert!(!same_network(ip("198.18.2.77"), &local), "another office");
        assert!(!same_network(ip("2001:db8:1:3::1"), &local));
        assert!(!same_network(ip("198.19.0.1"), &[ip("0.0.0.0")]), "an unspecified address says nothing");
        let addr: Multiaddr = "/ip4/198.18.1.77/udp/4001/quic-v1".parse().expect("addr");
        assert_eq!(ip_of(&addr), Some(ip("198.18.1.77")));
        assert_eq!(ip_of(&"/dns4/example.org/udp/1/quic-v1".parse().expect("addr")), None);
    }
}
