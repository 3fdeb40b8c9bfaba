//! What one tracker process serves: the control plane (logins, presence,
//! the directory, the mailbox), the relay, both (the default), and the
//! HTTP API for company systems (with the control plane).
//!
//! A relay-only process sits near a branch office while the control plane
//! runs in the data centre; it needs the organisation's PostgreSQL store
//! (for who may use it) and nothing secret: no CA key, no signing key, no
//! tracker certificate. A control-only process runs no relay; its devices
//! reserve on the organisation's relays, which the list of trackers names.

use std::fmt;
use std::str::FromStr;

/// The roles of one tracker process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Logins, sessions, presence, directory, mailbox, groups.
    pub control: bool,
    /// libp2p circuit relay v2 for devices whose hole punching failed.
    pub relay: bool,
    /// The HTTP API for company systems ([`crate::api`]).
    pub api: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Self { control: true, relay: true, api: false }
    }
}

impl Roles {
    /// The relay alone.
    pub const RELAY: Roles = Roles { control: false, relay: true, api: false };
    /// The control plane alone.
    pub const CONTROL: Roles = Roles { control: true, relay: false, api: false };
}

/// The role names, as `--roles` takes them.
pub const NAMES: &str = "control, relay, api";

impl FromStr for Roles {
    type Err = String;

    /// `control`, `relay` or both, comma-separated, in any order.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut roles = Roles { control: false, relay: false, api: false };
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "control" => roles.control = true,
                "relay" => roles.relay = true,
                "api" => roles.api = true,
                _ => return Err(format!("unknown role {word:?}: the roles are {NAMES} (comma-separated)")),
            }
        }
        if !roles.control && !roles.relay && !roles.api {
            return Err(format!("no role given: name one or more of {NAMES}"));
        }
        if roles.api && !roles.control {
            return Err(
                "the api role runs with the control role in one process: --roles control,api (and relay)".into()
            );
        }
        Ok(roles)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [(self.control, "control"), (self.relay, "relay"), (self.api, "api")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        match names.is_empty() {
            true => f.write_str("none"),
            false => f.write_str(&names.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_in_any_order_and_case() {
        assert_eq!("control,relay".parse(), Ok(Roles::default()));
        assert_eq!(" Relay , control ".parse(), Ok(Roles::default()));
        assert_eq!("relay".parse(), Ok(Roles::RELAY));
        assert_eq!("control".parse(), Ok(Roles::CONTROL));
        assert_eq!(Roles::RELAY.to_string().parse(), Ok(Roles::RELAY));
        let all = Roles { control: true, relay: true, api: true };
        assert_eq!("control,relay,api".parse(), Ok(all));
        assert_eq!(all.to_string(), "control,relay,api");
    }

    #[test]
    fn unknown_or_missing_roles_are_named() {
        let e = "control,relya".parse::<Roles>().expect_err("a typo");
        assert!(e.contains("\"relya\"") && e.contains(NAMES), "{e}");
        let e = " , ".parse::<Roles>().expect_err("nothing");
        assert!(e.contains("no role"), "{e}");
        let e = "relay,api".parse::<Roles>().expect_err("api without control");
        assert!(e.contains("control,api"), "{e}");
    }
}
