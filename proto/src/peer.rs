//! The peer protocols between nodes, carried on libp2p streams.
//!
//! Every peer connection starts with [`PeerRequest::Hello`]: both sides
//! present their device certificates, and a peer whose certificate does not
//! verify gets nothing else. Chat messages and receipts follow as requests,
//! each answered once. The same [`ChatMessage`] travels sealed through the
//! tracker mailbox when its recipient is offline ([`SealedPayload`]).
//!
//! As everywhere in this crate, variants are appended only; groups, file
//! offers, reactions and call signalling arrive as new variants.

use crate::bytes::{DeviceId, GroupId, MailId};
use crate::device::DeviceCert;
use crate::error::ErrorBody;
use crate::file::{FileOffer, FileStatus, ImageMessage, Reaction};
use serde::{Deserialize, Serialize};

/// libp2p protocol name of the Skein peer protocol.
pub const PEER_PROTOCOL: &str = "/skein/peer/1";
/// Largest peer-protocol frame, in bytes.
pub const MAX_PEER_FRAME: usize = 1024 * 1024;
/// libp2p protocol name of the message lane: one long-lived stream per
/// peer carrying many [`LaneRequest`]s, each answered by a
/// [`LaneResponse`] with its id, in whatever order they complete. Hellos
/// stay on [`PEER_PROTOCOL`]; a lane is opened only to a peer that passed
/// the hello, and its frames are at most [`MAX_PEER_FRAME`] bytes.
pub const LANE_PROTOCOL: &str = "/skein/lane/1";
/// Longest text message, in bytes.
pub const MAX_TEXT: usize = 64 * 1024;

/// A request from one node to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Introduce this device; answered by [`PeerResponse::Hello`].
    Hello(PeerHello),
    /// Deliver a message; answered by [`PeerResponse::Stored`] once it is in
    /// the receiver's history.
    Deliver(ChatMessage),
    /// Report that messages were delivered or read.
    Receipt(Receipt),
    /// Report what became of a file offer; answered by [`PeerResponse::Ok`].
    FileStatus(FileStatus),
    /// Ask a group member for the messages a device sent to the group
    /// between two of its sequence numbers (a gap noticed); answered by
    /// [`PeerResponse::Messages`].
    Backfill(Backfill),
    /// A call signal from one device to another ([`crate::call`]);
    /// answered by [`PeerResponse::Ok`].
    Call(crate::call::CallSignal),
}

/// Most messages one [`PeerResponse::Messages`] carries (text messages at
/// their largest still fit a peer frame).
pub const MAX_BACKFILL: usize = 12;

/// A gap in one device's messages to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    /// The group.
    pub group: GroupId,
    /// The device that sent them.
    pub device: DeviceId,
    /// The last sequence number held before the gap.
    pub after_seq: u64,
    /// The first sequence number held after it.
    pub before_seq: u64,
}

/// An answer to a [`PeerRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PeerResponse {
    /// The answering device's introduction.
    Hello(PeerHello),
    /// The message is stored (or was already: delivery is idempotent).
    Stored {
        /// The message.
        id: MailId,
    },
    /// Done.
    Ok,
    /// Refused, with why.
    Refused(ErrorBody),
    /// Messages asked for with [`PeerRequest::Backfill`], oldest first
    /// (at most [`MAX_BACKFILL`]; ask again after the last for more).
    Messages(Vec<ChatMessage>),
}

/// A device's introduction on a peer connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHello {
    /// Issued by the organisation; binds user, device and PeerId.
    pub cert: DeviceCert,
    /// Software and version, for diagnostics.
    pub agent: String,
}

/// Which conversation a message belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Conversation {
    /// A one-to-one conversation between `from_user` and `to_user`.
    Direct,
    /// A group's conversation; `to_user` is the group's address
    /// ([`group_address`]). Receivers take it only from a member under the
    /// newest membership certificate they know.
    Group {
        /// The group.
        group: GroupId,
        /// The newest version of the group the sender knew: a receiver that
        /// knows an older one asks the tracker for the newest first.
        version: u64,
        /// The sender's hybrid logical clock reading: every member orders
        /// the group's messages by (reading, sender, id).
        hlc: u64,
        /// The sending device's number for its messages to this group, from
        /// 1 (0: not known). A member that sees one skipped asks for it.
        seq: u64,
    },
}

/// The address of a group's conversation: `#` and the group's id in hex
/// (user names cannot start with `#`).
pub fn group_address(group: &GroupId) -> String {
    format!("#{}", group.to_hex())
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Plain text (UTF-8, at most [`MAX_TEXT`] bytes).
    Text(String),
    /// A file offer; the content is fetched over [`crate::file::FILE_PROTOCOL`].
    File(FileOffer),
    /// An image: a thumbnail inline, the full image as a file offer.
    Image(ImageMessage),
    /// A reaction to an earlier message.
    Reaction(Reaction),
    /// A post from an app (a company system), taken only from a mailbox
    /// item the organisation signed ([`crate::app`]).
    App(Box<crate::app::AppPost>),
    /// A card a user posted (through a plugin): a title, text, fields and
    /// link buttons, under the same rules as an app's ([`crate::app::Card::check`]).
    Card(Box<crate::app::Card>),
    /// A call's line in the history ([`crate::call::CallRecord`]), sent by
    /// the caller's device once the call is over.
    Call(crate::call::CallRecord),
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Unique id chosen by the sender; receivers deduplicate on it.
    pub id: MailId,
    /// The sending user.
    pub from_user: String,
    /// The sending device.
    pub from_device: DeviceId,
    /// The addressed user (for a copy synced to the sender's own devices,
    /// still the original recipient).
    pub to_user: String,
    /// The conversation.
    pub conversation: Conversation,
    /// When the sender wrote it, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// The content.
    pub body: MessageBody,
}

/// Kinds of receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptKind {
    /// Stored on a device of the recipient.
    Delivered,
    /// Seen by the recipient.
    Read,
}

/// A receipt for messages of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The messages.
    pub ids: Vec<MailId>,
    /// What happened to them.
    pub kind: ReceiptKind,
    /// Who delivered or read them.
    pub by_user: String,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// What a sealed mailbox item contains once opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SealedPayload {
    /// A message for an offline device.
    Message(ChatMessage),
    /// A receipt for an offline device.
    Receipt(Receipt),
    /// A file status for an offline device.
    FileStatus(FileStatus),
    /// A message from an app, signed by the organisation.
    App(crate::app::AppMessage),
}

/// A request on the message lane ([`LANE_PROTOCOL`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneRequest {
    /// Chosen by the sender, unique on its lane; the answer carries it.
    pub id: u64,
    /// The request, as on [`PEER_PROTOCOL`] (never a hello).
    pub req: PeerRequest,
}

/// The answer to a [`LaneRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneResponse {
    /// The request's id.
    pub id: u64,
    /// The answer, as on [`PEER_PROTOCOL`].
    pub resp: PeerResponse,
}
