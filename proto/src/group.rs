//! Groups: org groups, department groups and discussion groups, and the
//! membership certificate that lets every member check who may speak.
//!
//! The tracker holds each group and versions every change. For each version
//! it signs a [`MembershipCert`] with the organisation's ed25519 key over
//! [`MembershipBody::signing_bytes`]; nodes accept a group message only from
//! a member under the newest certificate they know. Signing and
//! verification live in `skein-certs`; this module only defines the bytes.

use crate::bytes::{GroupId, Signature};
use serde::{Deserialize, Serialize};

/// Domain-separation tag prefixed to the signed bytes.
pub const MEMBERSHIP_CERT_DOMAIN: &[u8] = b"skein/membership-cert/v1\0";
/// Format version of [`MembershipBody`].
pub const MEMBERSHIP_CERT_VERSION: u8 = 1;
/// Most members a group may have.
pub const MAX_GROUP_MEMBERS: usize = 500;
/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 128;

/// What kind of group, which says who may change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupKind {
    /// Made by an administrator; only administrators change it.
    Org,
    /// One per department; its members are the department's users (and its
    /// sub-departments'), and follow every move.
    Department {
        /// The department's path, such as `Engineering/Backend`.
        path: String,
    },
    /// Made by any user for a topic; its owner invites, removes, renames
    /// and closes; any member may leave.
    Discussion {
        /// The user who made it.
        owner: String,
    },
}

/// What a membership certificate asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipBody {
    /// Format version of this body; currently [`MEMBERSHIP_CERT_VERSION`].
    pub format: u8,
    /// Organisation name.
    pub org: String,
    /// The group.
    pub group: GroupId,
    /// Bumped by every change; the newest wins.
    pub version: u64,
    /// Display name; need not be unique.
    pub name: String,
    /// Its kind.
    pub kind: GroupKind,
    /// Member user names, sorted.
    pub members: Vec<String>,
    /// Closed groups take no more messages.
    pub closed: bool,
    /// Issue time, milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
}

impl MembershipBody {
    /// The exact bytes the organisation signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = MEMBERSHIP_CERT_DOMAIN.to_vec();
        // Encoding a plain struct of strings, bytes and integers cannot fail.
        out.extend_from_slice(&postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    /// Whether `user` is a member under this version.
    pub fn has_member(&self, user: &str) -> bool {
        self.members.binary_search_by(|m| m.as_str().cmp(user)).is_ok()
    }
}

/// A membership certificate: body plus the organisation's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipCert {
    /// The signed statement.
    pub body: MembershipBody,
    /// ed25519 signature over [`MembershipBody::signing_bytes`].
    pub signature: Signature,
}

/// A change to a group, as its members are told and as the conversation
/// shows it ("alice added carol", "bob left").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupChange {
    /// The group was made.
    Created,
    /// Users joined (invited, or moved into the department).
    Added(Vec<String>),
    /// Users were removed (or moved out of the department).
    Removed(Vec<String>),
    /// The actor left.
    Left,
    /// The group got a new name.
    Renamed {
        /// The name before.
        from: String,
    },
    /// The group was closed.
    Closed,
}

/// One change as the group's log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedChange {
    /// The group's version after it.
    pub version: u64,
    /// Who made it (empty when the department tree moved someone).
    pub actor: String,
    /// What changed.
    pub change: GroupChange,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// Most changes one [`crate::control::Response::GroupChanges`] carries:
/// the oldest after the version asked from, so a device pages forward.
pub const MAX_CHANGES: usize = 100;

/// One change and the certificate it produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEvent {
    /// Who made the change (an administrator, the owner, a member leaving;
    /// empty when the department tree moved someone).
    pub actor: String,
    /// What changed.
    pub change: GroupChange,
    /// The group's certificate after it.
    pub cert: MembershipCert,
}
