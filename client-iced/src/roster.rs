//! The contact list's order and grouping.
//!
//! People look for who is reachable first: available contacts on top, then
//! busy, then away, then offline ones with the most recently seen first.
//! Within a group, names sort case-insensitively by display name.

use skein_proto::control::{PresenceEntry, PresenceStatus};

/// One row of the contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterRow {
    /// User name.
    pub user: String,
    /// Name to show.
    pub display_name: String,
    /// Presence.
    pub status: PresenceStatus,
    /// Status note, if any.
    pub note: Option<String>,
    /// Last seen, ms since the Unix epoch (0: never).
    pub last_seen_ms: u64,
}

/// A titled group of rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterGroup {
    /// The group's status.
    pub status: PresenceStatus,
    /// Rows in display order.
    pub rows: Vec<RosterRow>,
}

fn rank(s: PresenceStatus) -> u8 {
    match s {
        PresenceStatus::Online => 0,
        PresenceStatus::Busy => 1,
        PresenceStatus::Away => 2,
        PresenceStatus::Offline => 3,
    }
}

/// Builds the grouped contact list from presence entries. `display_name`
/// maps a user name to the name to show (the directory's, when known).
pub fn build(entries: &[PresenceEntry], display_name: impl Fn(&str) -> Option<String>) -> Vec<RosterGroup> {
    let mut rows: Vec<RosterRow> = entries
        .iter()
        .map(|e| RosterRow {
            user: e.user.clone(),
            display_name: display_name(&e.user).unwrap_or_else(|| e.user.clone()),
            status: e.status,
            note: e.note.clone(),
            last_seen_ms: e.last_seen_ms,
        })
        .collect();
    rows.sort_by(|a, b| {
        rank(a.status)
            .cmp(&rank(b.status))
            .then_with(|| {
                if a.status == PresenceStatus::Offline {
                    b.last_seen_ms.cmp(&a.last_seen_ms)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then_with(|| a.display_name.to_lowercase().cmp(&b.display_name.to_lowercase()))
            .then_with(|| a.user.cmp(&b.user))
    });
    let mut groups: Vec<RosterGroup> = Vec::new();
    for row in rows {
        match groups.last_mut() {
            Some(g) if g.status == row.status => g.rows.push(row),
            _ => groups.push(RosterGroup { status: row.status, rows: vec![row] }),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use PresenceStatus::*;

    fn e(user: &str, status: PresenceStatus, seen: u64) -> PresenceEntry {
        PresenceEntry {
            user: user.into(),
            status,
            note: None,
            last_seen_ms: seen,
            devices: u16::from(status != Offline),
        }
    }

    #[test]
    fn groups_in_reachability_order_with_recent_offline_first() {
        let entries = [
            e("zoe", Offline, 10),
            e("bob", Away, 0),
            e("amy", Online, 0),
            e("carl", Offline, 50),
            e("dan", Busy, 0),
            e("Al", Online, 0),
            e("eve", Offline, 0),
        ];
        let groups = build(&entries, |u| (u == "amy").then(|| "Amy Pond".to_owned()));
        let shape: Vec<(PresenceStatus, Vec<&str>)> =
            groups.iter().map(|g| (g.status, g.rows.iter().map(|r| r.user.as_str()).collect())).collect();
        assert_eq!(
            shape,
            vec![
                (Online, vec!["Al", "amy"]),
                (Busy, vec!["dan"]),
                (Away, vec!["bob"]),
                (Offline, vec!["carl", "zoe", "eve"]),
            ]
        );
        assert_eq!(groups[0].rows[1].display_name, "Amy Pond");
    }

    #[test]
    fn empty_input_gives_no_groups() {
        assert!(build(&[], |_| None).is_empty());
    }
}
