//! The control plane between a node and a tracker.
//!
//! One QUIC bidirectional stream carries the session: the client opens with
//! [`ClientFrame::Hello`], the tracker answers [`ServerFrame::Welcome`] (or
//! [`ServerFrame::Reject`] and closes). After that the client sends numbered
//! [`Request`]s, each answered by exactly one [`ServerFrame::Response`] with the
//! same id, and the tracker pushes [`Event`]s at any time.
//!
//! Wire-compatibility rule: variants and fields are appended only. A tracker
//! that receives a request variant it does not know answers
//! [`ErrorCode::Unsupported`](crate::ErrorCode::Unsupported) for that id.

use crate::bytes::{DeviceId, GroupId, MailId, PublicKey, SessionToken};
use crate::device::DeviceCert;
use crate::error::ErrorBody;
use crate::group::{GroupEvent, LoggedChange, MembershipCert};
use serde::{Deserialize, Serialize};

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Version negotiation; must be the first frame.
    Hello(Hello),
    /// A numbered request.
    Request {
        /// Chosen by the client, echoed in the response.
        id: u32,
        /// What is asked.
        req: Request,
    },
}

/// Frames a tracker sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The hello was accepted.
    Welcome(Welcome),
    /// The hello was refused; the stream closes after this frame.
    Reject(ErrorBody),
    /// The answer to request `id`.
    Response {
        /// The request's id.
        id: u32,
        /// The answer or why there is none.
        result: Result<Response, ErrorBody>,
    },
    /// Something happened that the client subscribed to or must know.
    Event(Event),
}

/// The client's opening frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Oldest protocol version the client speaks.
    pub min_version: u16,
    /// Newest protocol version the client speaks.
    pub max_version: u16,
    /// Client software and version, for logs (`skein/0.1.0`).
    pub agent: String,
}

/// The tracker's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version both sides will use.
    pub version: u16,
    /// Organisation name.
    pub org: String,
    /// This tracker's identifier, unique among redundant trackers.
    pub tracker_id: String,
    /// Tracker clock, milliseconds since the Unix epoch.
    pub server_time_ms: u64,
    /// A client silent for longer than this is considered gone.
    pub idle_timeout_ms: u32,
    /// Fresh random bytes for this connection, which a device signs with
    /// its libp2p key to prove it holds the PeerId it logs in with (see
    /// [`DeviceHello::proof_bytes`]). Since protocol 2.
    pub nonce: [u8; 32],
}

/// Requests a client may make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Password login for a device. Answered by [`Response::Session`].
    Login(Login),
    /// Resume a session by token, rotating it. Answered by [`Response::Session`].
    Resume(Resume),
    /// End this session and revoke its token.
    Logout,
    /// Set this device's presence.
    SetPresence(SetPresence),
    /// Subscribe to presence changes; answered by a snapshot, then
    /// [`Event::Presence`] pushes.
    SubscribePresence(Subscription),
    /// Stop presence pushes.
    UnsubscribePresence,
    /// Search or browse users.
    Directory(DirectoryQuery),
    /// List the department tree.
    Departments,
    /// A user's online devices and their addresses.
    LookupPeer {
        /// The user to look up.
        user: String,
    },
    /// Publish this device's reachable addresses (multiaddrs).
    ReportAddresses(Addresses),
    /// Store sealed items in a user's mailbox.
    MailboxPut(MailboxPut),
    /// Take waiting items for this device.
    MailboxFetch {
        /// At most this many items.
        limit: u32,
    },
    /// Delete delivered items from this device's mailbox.
    MailboxAck {
        /// The items now safely stored by the device.
        ids: Vec<MailId>,
    },
    /// An administrator operation; needs the admin role.
    Admin(AdminRequest),
    /// Liveness and round-trip check.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Change the own password, given the current one.
    ChangePassword {
        /// Current password.
        old: String,
        /// New password.
        new: String,
    },
    /// Where this tracker's relay listens. Answered by [`Response::Relay`].
    RelayInfo,
    /// The organisation's rules for nodes. Answered by [`Response::Policy`].
    Policy,
    /// Make a group: a discussion group owned by the caller, or with `org`
    /// an org group (administrators only). Answered by [`Response::Group`].
    GroupCreate(GroupCreate),
    /// The current certificates of the caller's groups. Answered by
    /// [`Response::Groups`].
    GroupList,
    /// Change a group; answered by [`Response::Group`] with the new
    /// certificate, which the group's connected members are also sent
    /// ([`Event::GroupChanged`]).
    GroupUpdate {
        /// The group.
        group: GroupId,
        /// The change.
        update: GroupUpdate,
    },
    /// Several users' devices in one request (a group message's members).
    /// Answered by [`Response::Peers`], which leaves out unknown and
    /// disabled users.
    LookupPeers {
        /// The users, at most [`crate::group::MAX_GROUP_MEMBERS`].
        users: Vec<String>,
    },
    /// The changes of a group the caller is in after `after_version`,
    /// oldest first, at most [`crate::group::MAX_CHANGES`] (ask again from
    /// the last one for more). Answered by
    /// [`Response::GroupChanges`].
    GroupChanges {
        /// The group.
        group: GroupId,
        /// Changes up to this version are known already.
        after_version: u64,
    },
    /// Store sealed items in several users' mailboxes at once (a group
    /// message's offline members), at most
    /// [`crate::limits::MAX_MAIL_MANY_ITEMS`] items in all. Each user's
    /// items are stored or refused on their own: one full mailbox spoils
    /// no one else's. Answered by [`Response::MailboxStoredEach`], one
    /// entry per put, in order.
    MailboxPutMany(Vec<MailboxPut>),
    /// The organisation's running trackers, so a device can turn to another
    /// when its own goes away. Answered by [`Response::Trackers`].
    Trackers,
}

impl Request {
    /// The request's kind, as its variant is named (`"MailboxPut"`): for
    /// counting and logging, never its contents.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Login(_) => "Login",
            Self::Resume(_) => "Resume",
            Self::Logout => "Logout",
            Self::SetPresence(_) => "SetPresence",
            Self::SubscribePresence(_) => "SubscribePresence",
            Self::UnsubscribePresence => "UnsubscribePresence",
            Self::Directory(_) => "Directory",
            Self::Departments => "Departments",
            Self::LookupPeer { .. } => "LookupPeer",
            Self::ReportAddresses(_) => "ReportAddresses",
            Self::MailboxPut(_) => "MailboxPut",
            Self::MailboxFetch { .. } => "MailboxFetch",
            Self::MailboxAck { .. } => "MailboxAck",
            Self::Admin(_) => "Admin",
            Self::Ping { .. } => "Ping",
            Self::ChangePassword { .. } => "ChangePassword",
            Self::RelayInfo => "RelayInfo",
            Self::Policy => "Policy",
            Self::GroupCreate(_) => "GroupCreate",
            Self::GroupList => "GroupList",
            Self::GroupUpdate { .. } => "GroupUpdate",
            Self::LookupPeers { .. } => "LookupPeers",
            Self::GroupChanges { .. } => "GroupChanges",
            Self::MailboxPutMany(_) => "MailboxPutMany",
            Self::Trackers => "Trackers",
        }
    }
}

/// A new group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreate {
    /// Display name; need not be unique.
    pub name: String,
    /// The other members (the creator is added).
    pub members: Vec<String>,
    /// An org group, changed by administrators only.
    pub org: bool,
}

/// A change to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupUpdate {
    /// Invite users (owner, or an administrator for org groups).
    Add(Vec<String>),
    /// Remove users (owner, or an administrator for org groups).
    Remove(Vec<String>),
    /// Leave it (any member but the owner, who closes it instead).
    Leave,
    /// Give it a new name (owner, or an administrator for org groups).
    Rename(String),
    /// Close it for good (owner, or an administrator for org groups).
    Close,
}

/// Where one tracker of the organisation is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerAddrs {
    /// The name it gives itself.
    pub name: String,
    /// Its control plane, `HOST:PORT`.
    pub control: Vec<String>,
    /// Its relay's multiaddrs.
    pub relay: Vec<String>,
}

/// Answers to requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Done, nothing to return.
    Ok,
    /// A new or resumed session.
    Session(Box<Session>),
    /// Current presence of the subscribed users.
    PresenceSnapshot(Vec<PresenceEntry>),
    /// A page of directory results.
    Directory(DirectoryPage),
    /// The whole department tree, parents before children.
    Departments(Vec<Department>),
    /// A user's reachable devices.
    Peer(PeerInfo),
    /// Mailbox items stored: how many.
    MailboxStored {
        /// Items accepted.
        stored: u32,
    },
    /// Waiting mailbox items.
    Mail(Vec<MailItem>),
    /// Mailbox items deleted: how many.
    MailboxAcked {
        /// Items removed.
        removed: u32,
    },
    /// The result of an admin operation.
    Admin(AdminResponse),
    /// Answer to [`Request::Ping`].
    Pong {
        /// The request's nonce.
        nonce: u64,
        /// Tracker clock, milliseconds since the Unix epoch.
        server_time_ms: u64,
    },
    /// Answer to [`Request::RelayInfo`].
    Relay(RelayInfo),
    /// Answer to [`Request::Policy`].
    Policy(OrgPolicy),
    /// Group certificates, newest version each.
    Groups(Vec<MembershipCert>),
    /// A group after a change.
    Group(GroupEvent),
    /// Several users' devices.
    Peers(Vec<PeerInfo>),
    /// A group's changes, oldest first.
    GroupChanges(Vec<LoggedChange>),
    /// Answer to [`Request::MailboxPutMany`]: for each put, in order, how
    /// many items were new, or why that user's items were refused.
    MailboxStoredEach(Vec<Result<u32, ErrorBody>>),
    /// The organisation's running trackers.
    Trackers(Vec<TrackerAddrs>),
}

/// Rules the organisation sets for its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPolicy {
    /// Largest file a user may send or receive, in bytes.
    pub max_file_size: u64,
}

/// How to reach a tracker's relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayInfo {
    /// The relay's libp2p PeerId (binary form).
    pub peer_id: Vec<u8>,
    /// The relay's UDP port, on the same host as the control plane unless
    /// `addrs` says otherwise.
    pub port: u16,
    /// Explicit relay multiaddrs (without `/p2p/`), from the tracker's public addresses.
    pub addrs: Vec<String>,
}

/// Pushed by the tracker without a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A subscribed user's presence changed.
    Presence(PresenceEntry),
    /// This session has ended (disabled account, revoked, expired, logout
    /// elsewhere). The tracker closes the connection after sending this.
    SessionEnded(ErrorBody),
    /// New items are waiting in this device's mailbox.
    MailWaiting {
        /// Items waiting in total.
        count: u32,
    },
    /// The tracker is shutting down; reconnect (to another tracker) after the hint.
    ShuttingDown {
        /// Suggested delay before reconnecting.
        reconnect_after_ms: u32,
    },
    /// A device's access ended (logout, password change or reset, disabled
    /// account, revoked device): close any peer connection to it and stop
    /// trusting its certificate. Sent from protocol version 2.
    DeviceRevoked(RevokedDevice),
    /// A group this user is (or was, until this change) a member of changed.
    GroupChanged(GroupEvent),
}

/// A device whose certificate no longer counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedDevice {
    /// Its user.
    pub user: String,
    /// The device.
    pub device_id: DeviceId,
    /// Its libp2p PeerId (binary multihash form).
    pub peer_id: Vec<u8>,
}

/// Describes the device logging in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHello {
    /// Chosen once by the device and kept in its profile.
    pub device_id: DeviceId,
    /// Human name, such as the host name.
    pub name: String,
    /// libp2p PeerId (binary multihash form).
    pub peer_id: Vec<u8>,
    /// X25519 public key for sealed mail.
    pub x25519: PublicKey,
    /// The signature, by the libp2p key behind `peer_id`, over
    /// [`DeviceHello::proof_bytes`] with this connection's
    /// [`Welcome::nonce`]: a device cannot register another's PeerId.
    pub proof: Vec<u8>,
}

impl DeviceHello {
    /// What a device signs to prove its PeerId on the connection whose
    /// welcome carried `nonce`: a domain tag, the nonce, and the rest of
    /// the hello.
    pub fn proof_bytes(&self, nonce: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + nonce.len() + self.peer_id.len());
        out.extend_from_slice(b"skein device proof v1\0");
        out.extend_from_slice(nonce);
        out.extend_from_slice(&self.device_id.0);
        out.extend_from_slice(&(self.peer_id.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.peer_id);
        out.extend_from_slice(&self.x25519.0);
        out
    }
}

/// Password login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// User name.
    pub user: String,
    /// Password, in clear inside TLS; never logged.
    pub password: String,
    /// The device logging in.
    pub device: DeviceHello,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("device", &self.device)
            .finish()
    }
}

/// Token-based session resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The token from the last [`Session`]; it is rotated on success.
    pub token: SessionToken,
    /// The device resuming; must match the session's device.
    pub device: DeviceHello,
}

/// A logged-in session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Bearer token for [`Request::Resume`]; replaces any earlier one.
    pub token: SessionToken,
    /// When the token stops working, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The logged-in user.
    pub user: UserEntry,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// This device's certificate.
    pub device_cert: DeviceCert,
    /// The organisation's device-certificate verifying key.
    pub org_signing_key: PublicKey,
    /// The password is a one-time password: until it is changed
    /// ([`Request::ChangePassword`]) the session may do nothing else but
    /// log out (requests answer [`crate::ErrorCode::PasswordChangeRequired`]).
    pub password_change_required: bool,
}

/// A presence state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PresenceStatus {
    /// No device connected.
    Offline,
    /// Connected and available.
    Online,
    /// Connected, idle or stepped away.
    Away,
    /// Connected, do not disturb.
    Busy,
}

impl PresenceStatus {
    /// Lowercase name for JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Online => "online",
            Self::Away => "away",
            Self::Busy => "busy",
        }
    }

    /// Parses `online`, `away`, `busy` or `offline`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "offline" => Some(Self::Offline),
            "online" => Some(Self::Online),
            "away" => Some(Self::Away),
            "busy" => Some(Self::Busy),
            _ => None,
        }
    }
}

/// Sets this device's presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPresence {
    /// The new state; `Offline` makes the device invisible while connected.
    pub status: PresenceStatus,
    /// Optional status note ("in a meeting").
    pub note: Option<String>,
}

/// Whose presence to follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subscription {
    /// Everyone in the organisation.
    All,
    /// Just these users.
    Users(Vec<String>),
}

/// One user's presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// User name.
    pub user: String,
    /// Combined state over the user's devices.
    pub status: PresenceStatus,
    /// Status note of the device that set the state.
    pub note: Option<String>,
    /// Last time any device was connected, ms since the Unix epoch (0: never).
    pub last_seen_ms: u64,
    /// Devices connected now.
    pub devices: u16,
}

/// A directory search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryQuery {
    /// Matches user name, display name, title or e-mail, case-insensitively.
    pub text: Option<String>,
    /// Restricts to this department and its sub-departments.
    pub department: Option<String>,
    /// Results to skip.
    pub offset: u32,
    /// Results to return, at most [`crate::limits::MAX_DIRECTORY_PAGE`].
    pub limit: u32,
}

/// A user as the directory shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// Full name.
    pub display_name: String,
    /// Department path, such as `Engineering/Backend`.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Disabled accounts are listed for admins only.
    pub disabled: bool,
    /// Current presence.
    pub status: PresenceStatus,
    /// Last time any device was connected, ms since the Unix epoch (0: never).
    pub last_seen_ms: u64,
}

/// One page of directory results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryPage {
    /// The users on this page.
    pub users: Vec<UserEntry>,
    /// Matches in total.
    pub total: u32,
}

/// A department in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    /// Full path, such as `Engineering/Backend`.
    pub path: String,
    /// Parent path; `None` for a top-level department.
    pub parent: Option<String>,
    /// Users directly in this department.
    pub members: u32,
}

/// Addresses a device can be reached at, as multiaddr strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// Local interface addresses (same-LAN peers dial these first).
    pub listen: Vec<String>,
    /// Addresses others observed, such as the NAT's public mapping.
    pub observed: Vec<String>,
    /// Relayed addresses through a tracker's relay.
    pub relayed: Vec<String>,
}

/// One online device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device's identifier.
    pub device_id: DeviceId,
    /// Human name of the device.
    pub name: String,
    /// The device's certificate, which binds PeerId and X25519 key.
    pub cert: DeviceCert,
    /// Where to reach it.
    pub addresses: Addresses,
    /// Its presence state.
    pub status: PresenceStatus,
}

/// A user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The user.
    pub user: String,
    /// Online devices, with addresses.
    pub online: Vec<DeviceInfo>,
    /// Every device with an unexpired certificate, online or not; offline
    /// mail is sealed to each.
    pub known: Vec<DeviceCert>,
}

/// One sealed item for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedItem {
    /// Item identifier, unique per sender; duplicates are ignored.
    pub id: MailId,
    /// The recipient device.
    pub to_device: DeviceId,
    /// Ciphertext; the tracker never sees plaintext.
    pub sealed: Vec<u8>,
}

/// Stores items for a user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxPut {
    /// The recipient user.
    pub to_user: String,
    /// One item per recipient device.
    pub items: Vec<SealedItem>,
}

/// A waiting mailbox item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailItem {
    /// Item identifier.
    pub id: MailId,
    /// The sending user, as authenticated by the tracker.
    pub from_user: String,
    /// Ciphertext.
    pub sealed: Vec<u8>,
    /// When the tracker stored it, ms since the Unix epoch.
    pub stored_at_ms: u64,
}

/// Administrator operations.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Create a user.
    AddUser(NewUser),
    /// Disable (ending live sessions) or re-enable a user.
    SetDisabled {
        /// The user.
        user: String,
        /// New state.
        disabled: bool,
    },
    /// Set a user's password and revoke their sessions.
    SetPassword {
        /// The user.
        user: String,
        /// New password.
        password: String,
    },
    /// Create a department (and missing parents).
    AddDepartment {
        /// Full path.
        path: String,
    },
    /// Revoke a device's certificate and sessions.
    RevokeDevice {
        /// The user.
        user: String,
        /// The device.
        device_id: DeviceId,
    },
    /// What this tracker's relay has carried.
    RelayStats,
}

impl std::fmt::Debug for AdminRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AddUser(u) => f.debug_tuple("AddUser").field(&u.name).finish(),
            Self::SetDisabled { user, disabled } => {
                f.debug_struct("SetDisabled").field("user", user).field("disabled", disabled).finish()
            }
            Self::SetPassword { user, .. } => f.debug_struct("SetPassword").field("user", user).finish(),
            Self::AddDepartment { path } => f.debug_struct("AddDepartment").field("path", path).finish(),
            Self::RevokeDevice { user, device_id } => {
                f.debug_struct("RevokeDevice").field("user", user).field("device_id", device_id).finish()
            }
            Self::RelayStats => f.write_str("RelayStats"),
        }
    }
}

/// A user to create.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    /// Login name; see [`crate::limits::valid_user_name`].
    pub name: String,
    /// Full name.
    pub display_name: String,
    /// Initial password.
    pub password: String,
    /// Department path; created if missing.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Grant the admin role.
    pub admin: bool,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser").field("name", &self.name).field("admin", &self.admin).finish_non_exhaustive()
    }
}

/// Results of admin operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminResponse {
    /// Done.
    Done,
    /// Sessions ended by the operation.
    SessionsEnded {
        /// How many.
        count: u32,
    },
    /// Answer to [`AdminRequest::RelayStats`].
    RelayStats(RelayStats),
}

/// Traffic through a tracker's relay since it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStats {
    /// Bytes relayed in total: relayed data plus the small reservation and
    /// circuit set-up messages.
    pub total_relayed_bytes: u64,
    /// Peers holding a reservation now.
    pub reservations: u32,
    /// Circuits open now.
    pub circuits: u32,
    /// Per peer, most sent first.
    pub peers: Vec<RelayPeerBytes>,
}

/// One peer's relayed traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayPeerBytes {
    /// The peer's libp2p PeerId (binary form).
    pub peer_id: Vec<u8>,
    /// Bytes the peer sent through the relay.
    pub rx: u64,
    /// Bytes the peer received through the relay.
    pub tx: u64,
}

/// The request id of an encoded [`ClientFrame::Request`], read without
/// decoding the request itself. A tracker uses it to answer
/// [`ErrorCode::Unsupported`](crate::ErrorCode::Unsupported) to a request
/// variant it does not know, instead of dropping the connection.
pub fn peek_request_id(payload: &[u8]) -> Option<u32> {
    // Variant index 1 (`Request`), then the id; both are varints, which
    // postcard also accepts in overlong form.
    let (tag, rest) = read_varint_u32(payload)?;
    if tag != 1 {
        return None;
    }
    read_varint_u32(rest).map(|(id, _)| id)
}

/// Reads a LEB128 `u32` of at most 5 bytes, as postcard decodes it.
fn read_varint_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut v: u64 = 0;
    for (i, &b) in bytes.iter().take(5).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((u32::try_from(v).ok()?, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_finds_the_id_of_requests_only() {
        for id in [0u32, 1, 127, 128, 300, u32::MAX] {
            let bytes =
                crate::frame::encode_payload(&ClientFrame::Request { id, req: Request::Logout }).expect("encode");
            assert_eq!(peek_request_id(&bytes), Some(id));
        }
        let hello = ClientFrame::Hello(Hello { min_version: 1, max_version: 1, agent: "x".into() });
        let bytes = crate::frame::encode_payload(&hello).expect("encode");
        assert_eq!(peek_request_id(&bytes), None);
        assert_eq!(peek_request_id(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), None);
        assert_eq!(peek_request_id(&[]), None);
    }
}
