//! Which addresses the relay announces, as pure functions of the
//! configuration and the bound port.
//!
//! Two lists matter:
//! - **external addresses** are confirmed on the relay's swarm. libp2p's
//!   relay refuses every reservation until it has one, and a reservation
//!   tells the client these addresses (they become its relayed listen
//!   addresses). Only IPs, because nodes have no DNS transport.
//! - **advertised addresses** go to nodes in `RelayInfo`: IPs first, DNS
//!   names last, without `/p2p/`.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One entry of the tracker's `public_addrs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicAddr {
    /// An IP address (a port, if given, is ignored).
    Ip(IpAddr),
    /// A DNS name.
    Dns(String),
}

/// Parses a `public_addrs` entry: an IP, `IP:PORT`, `[IPv6]:PORT` or a DNS
/// name. Blank entries and names with characters a DNS name cannot hold give
/// `None`.
pub fn parse_public(entry: &str) -> Option<PublicAddr> {
    let s = entry.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(PublicAddr::Ip(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(PublicAddr::Ip(sa.ip()));
    }
    let name = s.trim_end_matches('.');
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    valid.then(|| PublicAddr::Dns(name.to_ascii_lowercase()))
}

/// `/ip4|ip6/IP/udp/PORT/quic-v1`.
pub fn quic_addr(ip: IpAddr, port: u16) -> Multiaddr {
    let base = match ip {
        IpAddr::V4(v4) => Multiaddr::empty().with(Protocol::Ip4(v4)),
        IpAddr::V6(v6) => Multiaddr::empty().with(Protocol::Ip6(v6)),
    };
    base.with(Protocol::Udp(port)).with(Protocol::QuicV1)
}

fn dns_addr(name: &str, port: u16) -> Multiaddr {
    Multiaddr::empty().with(Protocol::Dns(name.to_owned().into())).with(Protocol::Udp(port)).with(Protocol::QuicV1)
}

/// Public IPs the relay's socket can serve: an IPv4 socket only IPv4.
fn public_ips(listen_ip: IpAddr, public: &[String]) -> Vec<IpAddr> {
    public
        .iter()
        .filter_map(|p| match parse_public(p) {
            Some(PublicAddr::Ip(ip)) if !ip.is_unspecified() && (listen_ip.is_ipv6() || ip.is_ipv4()) => Some(ip),
            _ => None,
        })
        .collect()
}

fn dedup(mut addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let mut seen = std::collections::HashSet::new();
    addrs.retain(|a| seen.insert(a.clone()));
    addrs
}

/// The addresses to confirm as external on the relay's swarm: the listen
/// IP when it is specific, every public IP, and, when listening on all
/// interfaces, loopback (so a node on the same host, and tests, can reserve).
pub fn external_addrs(listen_ip: IpAddr, public: &[String], port: u16) -> Vec<Multiaddr> {
    let mut ips = Vec::new();
    if !listen_ip.is_unspecified() {
        ips.push(listen_ip);
    }
    ips.extend(public_ips(listen_ip, public));
    if listen_ip.is_unspecified() {
        ips.push(match listen_ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    dedup(ips.into_iter().map(|ip| quic_addr(ip, port)).collect())
}

/// The addresses told to nodes: the listen IP when it is specific, public
/// IPs, then public DNS names (last: nodes cannot resolve them yet). Empty
/// means "the control plane's host, at the relay port".
pub fn advertised_addrs(listen_ip: IpAddr, public: &[String], port: u16) -> Vec<Multiaddr> {
    let mut addrs = Vec::new();
    if !listen_ip.is_unspecified() {
        addrs.push(quic_addr(listen_ip, port));
    }
    addrs.extend(public_ips(listen_ip, public).into_iter().map(|ip| quic_addr(ip, port)));
    addrs.extend(public.iter().filter_map(|p| match parse_public(p) {
        Some(PublicAddr::Dns(name)) => Some(dns_addr(&name, port)),
        _ => None,
    }));
    dedup(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(addrs: Vec<Multiaddr>) -> Vec<String> {
        addrs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn parses_public_entries() {
        assert_eq!(parse_public(" 198.18.0.1 "), Some(PublicAddr::Ip("198.18.0.1".parse().expect("ip"))));
        assert_eq!(parse_public("198.18.0.1:7400"), Some(PublicAddr::Ip("198.18.0.1".parse().expect("ip"))));
        assert_eq!(parse_public("[2001:db8::1]:7400"), Some(PublicAddr::Ip("2001:db8::1".parse().expect("ip"))));
        assert_eq!(parse_public("Tracker.Example.org."), Some(PublicAddr::Dns("tracker.example.org".into())));
        assert_eq!(parse_public("bad/name"), None);
        assert_eq!(parse_public("  "), None);
    }

    #[test]
    fn specific_listen_ip_comes_first_and_names_last() {
        let public = vec!["tracker.example.org".into(), "203.0.113.7".into(), "2001:db8::1".into()];
        let listen: IpAddr = "198.18.0.5".parse().expect("ip");
        assert_eq!(
            strings(advertised_addrs(listen, &public, 7401)),
            [
                "/ip4/198.18.0.5/udp/7401/quic-v1",
                "/ip4/203.0.113.7/udp/7401/quic-v1",
                "/dns/tracker.example.org/udp/7401/quic-v1"
            ]
        );
        assert_eq!(
            strings(external_addrs(listen, &public, 7401)),
            ["/ip4/198.18.0.5/udp/7401/quic-v1", "/ip4/203.0.113.7/udp/7401/quic-v1"]
        );
    }

    #[test]
    fn unspecified_listen_ip_adds_loopback_externally_only() {
        let any: IpAddr = "0.0.0.0".parse().expect("ip");
        let public = vec!["203.0.113.7".into(), "203.0.113.7".into()];
        assert_eq!(
            strings(external_addrs(any, &public, 9)),
            ["/ip4/203.0.113.7/udp/9/quic-v1", "/ip4/127.0.0.1/udp/9/quic-v1"]
        );
        assert_eq!(strings(advertised_addrs(any, &public, 9)), ["/ip4/203.0.113.7/udp/9/quic-v1"]);
        assert!(advertised_addrs(any, &[], 9).is_empty());
        assert_eq!(strings(external_addrs(any, &[], 9)), ["/ip4/127.0.0.1/udp/9/quic-v1"]);
    }
}
