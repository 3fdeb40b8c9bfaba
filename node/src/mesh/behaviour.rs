//! The node's libp2p behaviour and swarm construction.
//!
//! QUIC only. Relay client for reservations and relayed dials, DCUtR to
//! upgrade relayed connections to direct ones (off in relay-only mode),
//! identify for observed addresses, ping for round-trip times, the Skein
//! peer protocol as request-response, raw streams for bulk transfers, and
//! connection limits so that strangers cannot exhaust a node.

use super::codec::{PROTOCOL, PeerCodec};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Swarm, SwarmBuilder, connection_limits, dcutr, identify, identity, noise, ping, relay, yamux};
use std::time::Duration;

/// Caps on the connections a node accepts. Connections it dials are not
/// capped, except by [`ConnectionCaps::per_peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Connections other peers dialled, established, in all.
    pub incoming: u32,
    /// Incoming connections still in their handshake.
    pub pending_incoming: u32,
    /// Connections to one peer, either way (a relayed one, a direct one,
    /// and the spares of simultaneous dials).
    pub per_peer: u32,
}

impl Default for ConnectionCaps {
    fn default() -> Self {
        Self { incoming: 256, pending_incoming: 32, per_peer: 8 }
    }
}

impl ConnectionCaps {
    fn limits(self) -> connection_limits::ConnectionLimits {
        connection_limits::ConnectionLimits::default()
            .with_max_established_incoming(Some(self.incoming))
            .with_max_pending_incoming(Some(self.pending_incoming))
            .with_max_established_per_peer(Some(self.per_peer))
    }
}

/// Everything a node speaks on the mesh.
#[allow(missing_debug_implementations)]
#[derive(NetworkBehaviour)]
pub struct NodeBehaviour {
    /// Refuses connections beyond [`ConnectionCaps`]; first, so a refused
    /// connection reaches no other behaviour.
    pub limits: connection_limits::Behaviour,
    /// Relay v2 client.
    pub relay_client: relay::client::Behaviour,
    /// Hole punching; `None` in relay-only mode.
    pub dcutr: Toggle<dcutr::Behaviour>,
    /// Identify: tells us our observed address.
    pub identify: identify::Behaviour,
    /// Ping: round-trip times.
    pub ping: ping::Behaviour,
    /// The Skein peer protocol.
    pub peer: request_response::Behaviour<PeerCodec>,
    /// Raw streams (file content), opened and accepted outside the swarm task.
    pub streams: libp2p_stream::Behaviour,
}

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the peer network: {0}")]
pub struct BuildError(pub String);

/// Builds the swarm. With `direct == false`, DCUtR is off and identify
/// caches no peer addresses, so peers connect through the relay only.
pub fn build(
    key: identity::Keypair,
    direct: bool,
    agent: &str,
    caps: ConnectionCaps,
) -> Result<Swarm<NodeBehaviour>, BuildError> {
    let agent = agent.to_owned();
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_quic_config(|mut c| {
            // A peer that vanishes is noticed within 15 s; keep-alives every
            // 5 s also keep NAT mappings open.
            c.max_idle_timeout = 15_000;
            c.keep_alive_interval = Duration::from_secs(5);
            c
        })
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| BuildError(e.to_string()))?
        .with_behaviour(|key, relay_client| {
            let local = key.public().to_peer_id();
            let mut id_cfg = identify::Config::new("/skein/1".into(), key.public()).with_agent_version(agent);
            if !direct {
                id_cfg = id_cfg.with_cache_size(0);
            }
            NodeBehaviour {
                limits: connection_limits::Behaviour::new(caps.limits()),
                relay_client,
                dcutr: Toggle::from(direct.then(|| dcutr::Behaviour::new(local))),
                identify: identify::Behaviour::new(id_cfg),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(5))),
                peer: request_response::Behaviour::with_codec(
                    PeerCodec,
                    [(PROTOCOL, ProtocolSupport::Full)],
                    // Messages and receipts are small: a peer that cannot store one in
                    // 5 s is treated as away, and the mailbox takes over. As many
                    // requests may be in progress per connection as one control
                    // connection keeps in flight (the default, 100, sent the rest of
                    // a burst to the mailbox); each holds at most one message.
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(5))
                        .with_max_concurrent_streams(crate::daemon::MAX_IN_FLIGHT),
                ),
                streams: libp2p_stream::Behaviour::new(),
            }
        })
        .map_err(|e| BuildError(e.to_string()))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(300))
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}
