//! What one tracker process serves: the control plane (logins, presence,
//! the directory, the mailbox), the relay, or both (the default).
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
}

impl Default for Roles {
    fn default() -> Self {
        Self { control: true, relay: true }
    }
}

impl Roles {
    /// The relay alone.
    pub const RELAY: Roles = Roles { control: false, relay: true };
    /// The control plane alone.
    pub const CONTROL: Roles = Roles { control: true, relay: false };
}

/// The role names, as `--roles` takes them.
pub const NAMES: &str = "control, relay";

impl FromStr for Roles {
    type Err = String;

    /// `control`, `relay` or both, comma-separated, in any order.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut roles = Roles { control: false, relay: false };
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "control" => roles.control = true,
                "relay" => roles.relay = true,
                _ => return Err(format!("unknown role {word:?}: the roles are {NAMES} (comma-separated)")),
            }
        }
        if !roles.control && !roles.relay {
            return Err(format!("no role given: name one or more of {NAMES}"));
        }
        Ok(roles)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.control, self.relay) {
            (true, true) => f.write_str("control,relay"),
            (true, false) => f.write_str("control"),
            (false, true) => f.write_str("relay"),
            (false, false) => f.write_str("none"),
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
    }

    #[test]
    fn unknown_or_missing_roles_are_named() {
        let e = "control,relya".parse::<Roles>().expect_err("a typo");
        assert!(e.contains("\"relya\"") && e.contains(NAMES), "{e}");
        let e = " , ".parse::<Roles>().expect_err("nothing");
        assert!(e.contains("no role"), "{e}");
    }
}
