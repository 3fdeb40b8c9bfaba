//! Tracker configuration as one struct with defaults and builder setters.
//!
//! The binary maps a TOML file, `SKEIN_TRACKER_*` environment variables and
//! flags onto it, in that order of precedence from lowest (see `cli.rs`).

use crate::auth::PasswordCost;
use crate::rate::RateLimit;
use crate::relay::RelayLimits;
use crate::throttle::ThrottlePolicy;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default control-plane UDP port.
pub const DEFAULT_CONTROL_PORT: u16 = 7400;
/// Default relay UDP port.
pub const DEFAULT_RELAY_PORT: u16 = 7401;

/// Mailbox limits per recipient.
#[derive(Debug, Clone)]
pub struct MailboxLimits {
    /// Items waiting per device.
    pub max_items_per_device: i64,
    /// Bytes waiting per user, over all devices.
    pub max_bytes_per_user: i64,
    /// Items older than this are deleted.
    pub max_age: Duration,
    /// The share, in percent, of a recipient's mailbox (items per device,
    /// bytes per user) that one sender may fill.
    pub sender_share_percent: u32,
}

impl Default for MailboxLimits {
    fn default() -> Self {
        Self {
            max_items_per_device: 10_000,
            max_bytes_per_user: 256 * 1024 * 1024,
            max_age: Duration::from_secs(30 * 86400),
            sender_share_percent: 25,
        }
    }
}

impl MailboxLimits {
    /// The limits the store checks for one put.
    pub fn for_store(&self) -> crate::store::MailboxLimits {
        let share =
            |total: i64| (total.saturating_mul(i64::from(self.sender_share_percent.clamp(1, 100))) / 100).max(1);
        crate::store::MailboxLimits {
            max_items_per_device: self.max_items_per_device,
            max_bytes_per_user: self.max_bytes_per_user,
            sender_share: crate::store::SenderShare {
                items_per_device: share(self.max_items_per_device),
                bytes_per_user: share(self.max_bytes_per_user),
            },
        }
    }
}

/// Everything a tracker needs to run.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Directory holding certificates, keys and the SQLite database.
    pub data_dir: PathBuf,
    /// Control-plane UDP address.
    pub listen: SocketAddr,
    /// Relay UDP address.
    pub relay_listen: SocketAddr,
    /// What the relay serves: circuit lifetime and size, counts.
    pub relay: RelayLimits,
    /// Extra DNS names or IPs for the tracker certificate, used at first initialisation.
    pub public_addrs: Vec<String>,
    /// Store URL; `None` means SQLite at `DATA/tracker.db`.
    pub database: Option<String>,
    /// Organisation name, used at first initialisation.
    pub org: String,
    /// This tracker's name among the organisation's trackers; empty means
    /// the host name and the port it serves on ([`TrackerConfig::named`]).
    pub tracker_id: String,
    /// Session token lifetime; each resume extends it.
    pub session_ttl: Duration,
    /// Device certificate lifetime.
    pub device_cert_ttl: Duration,
    /// A client silent this long is disconnected and marked offline.
    pub idle_timeout: Duration,
    /// Most concurrent client connections.
    pub max_connections: usize,
    /// Throttling per account.
    pub account_throttle: ThrottlePolicy,
    /// Throttling per source address (more lenient: offices share NAT addresses).
    pub address_throttle: ThrottlePolicy,
    /// Mailbox limits.
    pub mailbox: MailboxLimits,
    /// argon2id cost.
    pub password_cost: PasswordCost,
    /// How often to look for admin changes made by other processes on an
    /// SQLite store (PostgreSQL tells trackers as each change commits).
    pub admin_poll: Duration,
    /// Outgoing frames queued per connection before it is dropped as too slow.
    pub send_queue: usize,
    /// Largest file users may send each other, in bytes (the org's policy;
    /// nodes enforce it on both ends).
    pub max_file_size: u64,
    /// Most devices with a valid certificate per user; a login on one more
    /// is refused until one signs out or is revoked.
    pub max_devices_per_user: u32,
    /// Most connections per source network (IPv4 address, IPv6 /64) that
    /// have not logged in yet.
    pub max_strangers_per_network: usize,
    /// A connection must log in this soon after its hello, or is closed.
    pub login_deadline: Duration,
    /// Presence changes per connection: a burst, then a steady rate.
    pub presence_rate: RateLimit,
    /// What this process serves: the control plane, the relay, or both,
    /// and the HTTP API.
    pub roles: crate::roles::Roles,
    /// The HTTP API's TCP address (with the api role).
    pub api_listen: SocketAddr,
    /// Serve the HTTP API over HTTPS with the tracker's certificate (on any
    /// address), instead of plain HTTP (on loopback only).
    pub api_tls: bool,
}

impl TrackerConfig {
    /// Defaults for a tracker keeping its state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_CONTROL_PORT)),
            relay_listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_RELAY_PORT)),
            relay: RelayLimits::default(),
            public_addrs: Vec::new(),
            database: None,
            org: "Skein".into(),
            tracker_id: String::new(),
            session_ttl: Duration::from_secs(30 * 86400),
            device_cert_ttl: Duration::from_secs(7 * 86400),
            idle_timeout: Duration::from_secs(15),
            max_connections: 50_000,
            account_throttle: ThrottlePolicy::default(),
            address_throttle: ThrottlePolicy {
                free_failures: 30,
                max_delay: Duration::from_secs(60),
                ..ThrottlePolicy::default()
            },
            mailbox: MailboxLimits::default(),
            password_cost: PasswordCost::default(),
            admin_poll: Duration::from_secs(1),
            send_queue: 1024,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            max_devices_per_user: 10,
            max_strangers_per_network: 128,
            login_deadline: Duration::from_secs(10),
            presence_rate: RateLimit::new(10, 0.5),
            roles: crate::roles::Roles::default(),
            api_listen: SocketAddr::from(crate::api::DEFAULT_LISTEN),
            api_tls: false,
        }
    }

    /// Sets the control-plane address.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Sets the relay address.
    pub fn relay_listen(mut self, addr: SocketAddr) -> Self {
        self.relay_listen = addr;
        self
    }

    /// Sets the relay limits.
    pub fn relay_limits(mut self, limits: RelayLimits) -> Self {
        self.relay = limits;
        self
    }

    /// Sets the store URL.
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.database = Some(url.into());
        self
    }

    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Sets the session lifetime.
    pub fn session_ttl(mut self, t: Duration) -> Self {
        self.session_ttl = t;
        self
    }

    /// Sets the password hashing cost.
    pub fn password_cost(mut self, cost: PasswordCost) -> Self {
        self.password_cost = cost;
        self
    }

    /// Sets the mailbox limits.
    pub fn mailbox(mut self, limits: MailboxLimits) -> Self {
        self.mailbox = limits;
        self
    }

    /// Sets the account throttling policy.
    pub fn account_throttle(mut self, p: ThrottlePolicy) -> Self {
        self.account_throttle = p;
        self
    }

    /// The store URL in force.
    pub fn database_url(&self) -> String {
        self.database.clone().unwrap_or_else(|| sqlite_url(&self.data_dir))
    }

    /// Path of the CA certificate.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.data_dir.join("ca.pem")
    }

    /// Path of the CA private key.
    pub fn ca_key_path(&self) -> PathBuf {
        self.data_dir.join("ca.key")
    }

    /// Path of the organisation's device-signing key.
    pub fn org_key_path(&self) -> PathBuf {
        self.data_dir.join("org.key")
    }

    /// Path of the tracker certificate.
    pub fn tracker_cert_path(&self) -> PathBuf {
        self.data_dir.join("tracker.pem")
    }

    /// Path of the tracker private key.
    pub fn tracker_key_path(&self) -> PathBuf {
        self.data_dir.join("tracker.key")
    }

    /// Path of the relay's libp2p identity.
    pub fn relay_key_path(&self) -> PathBuf {
        self.data_dir.join("relay.key")
    }
}

/// The SQLite URL for a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("tracker.db").display())
}

/// The default largest file users may send each other: 4 GiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 4 << 30;

/// `v` MiB in bytes, saturating.
pub fn mib(v: u64) -> u64 {
    v.saturating_mul(1 << 20)
}

fn host_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    if host.is_empty() { "tracker".into() } else { host }
}

impl TrackerConfig {
    /// Gives the tracker its default name, `HOST:PORT` (`port` being the
    /// one it serves on), unless it was named.
    pub fn named(mut self, port: u16) -> Self {
        if self.tracker_id.trim().is_empty() {
            self.tracker_id = format!("{}:{port}", host_name());
        }
        self
    }
}

/// The TOML file's shape: every key optional, durations in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// What this process serves (`"control,relay"`).
    #[serde(default, deserialize_with = "roles")]
    pub roles: Option<crate::roles::Roles>,
    /// The HTTP API's address.
    pub api_listen: Option<SocketAddr>,
    /// HTTPS for the HTTP API, with the tracker's certificate.
    pub api_tls: Option<bool>,
    /// Control-plane address.
    pub listen: Option<SocketAddr>,
    /// Relay address.
    pub relay_listen: Option<SocketAddr>,
    /// Extra certificate names.
    pub public_addrs: Option<Vec<String>>,
    /// Store URL.
    pub database: Option<String>,
    /// Organisation name.
    pub org: Option<String>,
    /// Tracker identifier.
    pub tracker_id: Option<String>,
    /// Session lifetime in seconds.
    pub session_ttl_secs: Option<u64>,
    /// Device certificate lifetime in seconds.
    pub device_cert_ttl_secs: Option<u64>,
    /// Idle timeout in seconds.
    pub idle_timeout_secs: Option<u64>,
    /// Most concurrent connections.
    pub max_connections: Option<usize>,
    /// Mailbox items per device.
    pub mailbox_max_items: Option<i64>,
    /// Mailbox bytes per user.
    pub mailbox_max_bytes: Option<i64>,
    /// Mailbox item age limit in days.
    pub mailbox_max_age_days: Option<u64>,
    /// Percent of a recipient's mailbox one sender may fill (default 25).
    pub mailbox_sender_share_percent: Option<u32>,
    /// Longest life of a relayed circuit, in seconds (default 86400).
    pub relay_max_circuit_secs: Option<u64>,
    /// Bytes per relayed circuit, both directions together; 0 = no limit (the default).
    pub relay_max_circuit_bytes: Option<u64>,
    /// Relayed circuits open at once (default 10000).
    pub relay_max_circuits: Option<usize>,
    /// Relayed circuits per device (default 64).
    pub relay_max_circuits_per_peer: Option<usize>,
    /// Relay reservations held at once (default 10000).
    pub relay_max_reservations: Option<usize>,
    /// Largest file users may send, in MiB (default 4096).
    pub max_file_size_mib: Option<u64>,
    /// argon2id memory per password hash, in KiB (default 19456).
    pub password_memory_kib: Option<u32>,
    /// argon2id passes per password hash (default 2).
    pub password_iterations: Option<u32>,
    /// Most devices with a valid certificate per user (default 10).
    pub max_devices_per_user: Option<u32>,
    /// Most not-yet-logged-in connections per IPv4 address or IPv6 /64 (default 128).
    pub max_unauthenticated_per_network: Option<usize>,
    /// Seconds a connection has to log in after its hello (default 10).
    pub login_deadline_secs: Option<u64>,
}

impl FileConfig {
    /// Reads and parses a TOML file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {} is invalid: {}", path.display(), e.message()))
    }

    /// Applies the keys that are set onto `cfg`.
    pub fn apply(self, mut cfg: TrackerConfig) -> TrackerConfig {
        let secs = Duration::from_secs;
        if let Some(v) = self.listen {
            cfg.listen = v;
        }
        if let Some(v) = self.relay_listen {
            cfg.relay_listen = v;
        }
        if let Some(v) = self.public_addrs {
            cfg.public_addrs = v;
        }
        if let Some(v) = self.roles {
            cfg.roles = v;
        }
        if let Some(v) = self.api_listen {
            cfg.api_listen = v;
        }
        if let Some(v) = self.api_tls {
            cfg.api_tls = v;
        }
        if let Some(v) = self.database {
            cfg.database = Some(v);
        }
        if let Some(v) = self.org {
            cfg.org = v;
        }
        if let Some(v) = self.tracker_id {
            cfg.tracker_id = v;
        }
        if let Some(v) = self.session_ttl_secs {
            cfg.session_ttl = secs(v);
        }
        if let Some(v) = self.device_cert_ttl_secs {
            cfg.device_cert_ttl = secs(v);
        }
        if let Some(v) = self.idle_timeout_secs {
            cfg.idle_timeout = secs(v.max(1));
        }
        if let Some(v) = self.max_connections {
            cfg.max_connections = v;
        }
        if let Some(v) = self.max_file_size_mib {
            cfg.max_file_size = mib(v);
        }
        if let Some(v) = self.password_memory_kib {
            // argon2 needs at least 8 KiB per lane.
            cfg.password_cost.m_cost = v.max(8 * cfg.password_cost.p_cost.max(1));
        }
        if let Some(v) = self.password_iterations {
            cfg.password_cost.t_cost = v.max(1);
        }
        if let Some(v) = self.max_devices_per_user {
            cfg.max_devices_per_user = v.max(1);
        }
        if let Some(v) = self.max_unauthenticated_per_network {
            cfg.max_strangers_per_network = v.max(1);
        }
        if let Some(v) = self.login_deadline_secs {
            cfg.login_deadline = secs(v.max(1));
        }
        if let Some(v) = self.mailbox_max_items {
            cfg.mailbox.max_items_per_device = v;
        }
        if let Some(v) = self.mailbox_max_bytes {
            cfg.mailbox.max_bytes_per_user = v;
        }
        if let Some(v) = self.mailbox_max_age_days {
            cfg.mailbox.max_age = secs(v * 86400);
        }
        if let Some(v) = self.mailbox_sender_share_percent {
            cfg.mailbox.sender_share_percent = v.clamp(1, 100);
        }
        if let Some(v) = self.relay_max_circuit_secs {
            cfg.relay.max_circuit_duration = secs(v.max(1));
        }
        if let Some(v) = self.relay_max_circuit_bytes {
            cfg.relay.max_circuit_bytes = v;
        }
        if let Some(v) = self.relay_max_circuits {
            cfg.relay.max_circuits = v;
        }
        if let Some(v) = self.relay_max_circuits_per_peer {
            cfg.relay.max_circuits_per_peer = v.max(1);
        }
        if let Some(v) = self.relay_max_reservations {
            cfg.relay.max_reservations = v;
        }
        cfg
    }
}

/// Reads `roles = "control,relay"`, naming a role that does not exist.
fn roles<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<crate::roles::Roles>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:9000\"\nidle_timeout_secs = 5\n").expect("write");
        let cfg = FileConfig::load(&p).expect("load").apply(TrackerConfig::new("/d"));
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.idle_timeout, Duration::from_secs(5));
        assert_eq!(cfg.relay_listen.port(), DEFAULT_RELAY_PORT);
        assert_eq!(cfg.relay, RelayLimits::default());
        std::fs::write(&p, "relay_max_circuit_secs = 3600\nrelay_max_circuit_bytes = 1073741824\nrelay_max_circuits = 50\nrelay_max_circuits_per_peer = 4\nrelay_max_reservations = 20\n").expect("write");
        let cfg = FileConfig::load(&p).expect("load").apply(TrackerConfig::new("/d"));
        assert_eq!(cfg.relay.max_circuit_duration, Duration::from_secs(3600));
        assert_eq!(cfg.relay.max_circuit_bytes, 1 << 30);
        assert_eq!((cfg.relay.max_circuits, cfg.relay.max_circuits_per_peer, cfg.relay.max_reservations), (50, 4, 20));
        std::fs::write(&p, "roles = \"relay\"\n").expect("write");
        let cfg = FileConfig::load(&p).expect("load").apply(TrackerConfig::new("/d"));
        assert_eq!(cfg.roles, crate::roles::Roles::RELAY);
        std::fs::write(&p, "roles = \"relay,api2\"\n").expect("write");
        let err = FileConfig::load(&p).expect_err("an unknown role must fail");
        assert!(err.contains("api2"), "{err}");
        std::fs::write(&p, "lisen = 1\n").expect("write");
        let err = FileConfig::load(&p).expect_err("typo must fail");
        assert!(err.contains("t.toml") && err.contains("lisen"), "{err}");
    }
}
