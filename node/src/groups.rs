//! Groups as the node shows them: finding a group by `#name` or id among
//! the caller's, and their JSON form. Pure functions over membership
//! certificates the node has verified.

use serde_json::{Value, json};
use skein_proto::bytes::GroupId;
use skein_proto::group::{GroupChange, GroupKind, MembershipCert};

/// Why a group name did not name one group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupNameError {
    /// No group of the caller's has that name or id.
    #[error("you are in no group {0}; `skein group list` shows yours")]
    Unknown(String),
    /// Several have that name.
    #[error("{name} names {} groups: {}; use the id instead", ids.len(), ids.join(", "))]
    Ambiguous {
        /// The name given.
        name: String,
        /// The ids that match.
        ids: Vec<String>,
    },
}

/// The group `spec` names among `groups`: `#name` (unambiguous), a name
/// without the `#`, or a full hex id.
pub fn resolve<'g>(groups: &'g [MembershipCert], spec: &str) -> Result<&'g MembershipCert, GroupNameError> {
    if let Some(id) = GroupId::from_hex(spec) {
        return groups.iter().find(|g| g.body.group == id).ok_or_else(|| GroupNameError::Unknown(spec.to_owned()));
    }
    let name = spec.strip_prefix('#').unwrap_or(spec);
    // A group's address (`#` and its id, as conversations are named) names
    // that group, before any group that happens to be called so.
    if let Some(g) = GroupId::from_hex(name).and_then(|id| groups.iter().find(|g| g.body.group == id)) {
        return Ok(g);
    }
    let matches: Vec<&MembershipCert> = groups.iter().filter(|g| g.body.name == name).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(GroupNameError::Unknown(spec.to_owned())),
        many => Err(GroupNameError::Ambiguous {
            name: format!("#{name}"),
            ids: many.iter().map(|g| g.body.group.to_hex()).collect(),
        }),
    }
}

/// A group as JSON: `id`, `name`, `version`, `kind`, `owner` or
/// `department`, `members`, `closed`.
pub fn group(cert: &MembershipCert) -> Value {
    let b = &cert.body;
    let (kind, owner, department) = match &b.kind {
        GroupKind::Org => ("org", None, None),
        GroupKind::Department { path } => ("department", None, Some(path.clone())),
        GroupKind::Discussion { owner } => ("discussion", Some(owner.clone()), None),
    };
    json!({
        "id": b.group.to_hex(), "name": b.name, "version": b.version, "kind": kind,
        "owner": owner, "department": department, "members": b.members, "closed": b.closed,
    })
}

/// The users a text mentions: each `@name` that is a valid user name,
/// once, in order of first mention.
pub fn mentions(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, _) in text.match_indices('@') {
        // A mention starts a word: `a@b` (an address) is none.
        if text[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
            .collect();
        let name = name.trim_end_matches(['.', '-']).to_owned();
        if skein_proto::limits::valid_user_name(&name) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// A change as its event line shows it: "alice added carol", "bob left".
pub fn describe(actor: &str, change: &GroupChange) -> String {
    let list = |users: &[String]| users.join(", ");
    match change {
        GroupChange::Created => format!("{actor} made the group"),
        GroupChange::Added(users) if actor.is_empty() => format!("{} joined", list(users)),
        GroupChange::Added(users) => format!("{actor} added {}", list(users)),
        GroupChange::Removed(users) if actor.is_empty() => format!("{} left", list(users)),
        GroupChange::Removed(users) => format!("{actor} removed {}", list(users)),
        GroupChange::Left => format!("{actor} left"),
        GroupChange::Renamed { from } => format!("{actor} renamed the group (was {from})"),
        GroupChange::Closed => format!("{actor} closed the group"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_proto::bytes::Signature;
    use skein_proto::group::{MEMBERSHIP_CERT_VERSION, MembershipBody};

    fn cert(id: u8, name: &str) -> MembershipCert {
        MembershipCert {
            body: MembershipBody {
                format: MEMBERSHIP_CERT_VERSION,
                org: "Acme".into(),
                group: GroupId([id; 16]),
                version: 1,
                name: name.into(),
                kind: GroupKind::Discussion { owner: "alice".into() },
                members: vec!["alice".into(), "bob".into()],
                closed: false,
                issued_at_ms: 1,
            },
            signature: Signature([0; 64]),
        }
    }

    #[test]
    fn names_resolve_when_unambiguous_and_say_which_ids_match_when_not() {
        let groups = vec![cert(1, "team"), cert(2, "ops"), cert(3, "ops")];
        assert_eq!(resolve(&groups, "#team").map(|g| g.body.group), Ok(GroupId([1; 16])));
        assert_eq!(resolve(&groups, "team").map(|g| g.body.group), Ok(GroupId([1; 16])));
        assert_eq!(resolve(&groups, &GroupId([3; 16]).to_hex()).map(|g| g.body.group), Ok(GroupId([3; 16])));
        let e = resolve(&groups, "#ops").expect_err("two groups are named ops");
        assert!(
            e.to_string().contains(&GroupId([2; 16]).to_hex()) && e.to_string().contains(&GroupId([3; 16]).to_hex())
        );
        assert!(matches!(resolve(&groups, "#nope"), Err(GroupNameError::Unknown(_))));
        // A conversation's address names its group.
        let address = skein_proto::peer::group_address(&GroupId([2; 16]));
        assert_eq!(resolve(&groups, &address).map(|g| g.body.group), Ok(GroupId([2; 16])));
    }

    #[test]
    fn mentions_are_words_that_start_with_an_at_sign() {
        assert_eq!(mentions("@bob can you look? cc @carol, and @bob again"), ["bob", "carol"]);
        assert_eq!(mentions("mail alice@example.com"), Vec::<String>::new());
        assert_eq!(mentions("thanks @dave."), ["dave"]);
        assert_eq!(mentions("@ nobody @Bob"), Vec::<String>::new());
    }

    #[test]
    fn changes_read_as_event_lines() {
        assert_eq!(describe("alice", &GroupChange::Added(vec!["carol".into()])), "alice added carol");
        assert_eq!(describe("bob", &GroupChange::Left), "bob left");
        assert_eq!(describe("", &GroupChange::Added(vec!["dave".into()])), "dave joined");
    }
}
