//! File offers, image messages, reactions, and the file-fetch protocol.
//!
//! A file travels in two parts. The offer ([`FileOffer`]) is a chat message
//! body, so it reaches every device of the recipient the way a message does
//! (directly, or sealed in the mailbox while they are offline) and shows in
//! the conversation. The content then moves on its own QUIC stream
//! ([`FILE_PROTOCOL`]), pulled by the receiving device from the sending
//! device: the receiver asks for the manifest by its root hash
//! ([`FetchRequest::Get`]) and then for chunks a window at a time
//! ([`FetchRequest::Want`]); the sender answers each chunk with a
//! [`FetchReply::Chunk`] header followed by exactly `len` raw bytes. A
//! transfer is identified by the id of the message that offered it.
//!
//! The receiver reports what became of an offer with a [`FileStatus`],
//! which travels like a receipt.

use crate::bytes::{ContentHash, DeviceId, MailId};
use crate::error::ErrorBody;
use serde::{Deserialize, Serialize};

/// libp2p protocol name of the file-fetch stream.
pub const FILE_PROTOCOL: &str = "/skein/file/1";
/// Longest offered file name, in bytes.
pub const MAX_FILE_NAME: usize = 255;
/// Largest frame on the file-fetch stream (a manifest of a 64 GiB file is 2 MiB).
pub const MAX_FETCH_FRAME: usize = 4 * 1024 * 1024;
/// Most chunk indexes in one [`FetchRequest::Want`].
pub const MAX_WANT: usize = 1024;
/// Largest inline thumbnail of an image message, in bytes.
pub const MAX_THUMBNAIL: usize = 96 * 1024;
/// Longest reaction (one emoji, possibly a ZWJ sequence), in bytes.
pub const MAX_REACTION: usize = 64;

/// A file offered to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOffer {
    /// The name as the sender knows it. Receivers sanitise it.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Root of the file's verified chunk tree.
    pub root: ContentHash,
}

/// An image message: a file offer plus a thumbnail that travels inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMessage {
    /// The full image, fetched on demand like any file.
    pub file: FileOffer,
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: String,
    /// Full image width in pixels.
    pub width: u32,
    /// Full image height in pixels.
    pub height: u32,
    /// A small JPEG of the image, at most [`MAX_THUMBNAIL`] bytes.
    pub thumbnail: Vec<u8>,
}

/// A reaction to a message, added or taken back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The message reacted to.
    pub target: MailId,
    /// The emoji.
    pub emoji: String,
    /// `true` takes the reaction back.
    pub remove: bool,
}

/// What became of a file offer on one of the recipient's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileState {
    /// Accepted; fetching.
    Accepted,
    /// Declined by the recipient.
    Declined,
    /// The whole file is stored and verified.
    Completed,
    /// Given up, with why.
    Failed(String),
}

/// A report on a file offer, sent by a recipient device to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStatus {
    /// The offer (the id of the message that carried it).
    pub transfer: MailId,
    /// The recipient user.
    pub by_user: String,
    /// The recipient device.
    pub by_device: DeviceId,
    /// What happened.
    pub state: FileState,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// From the receiving device on a file-fetch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchRequest {
    /// The manifest of the file offered as `transfer`, whose root is `root`.
    /// Answered by [`FetchReply::Manifest`] or [`FetchReply::Refused`].
    Get {
        /// The offer.
        transfer: MailId,
        /// The offered root.
        root: ContentHash,
    },
    /// These chunks, in this order; at most [`MAX_WANT`] indexes.
    Want(Vec<u32>),
}

/// From the sending device on a file-fetch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchReply {
    /// The encoded manifest.
    Manifest(Vec<u8>),
    /// Chunk `index` follows: exactly `len` raw bytes after this frame.
    Chunk {
        /// Which chunk.
        index: u32,
        /// Its length.
        len: u32,
    },
    /// The sender will not (or can no longer) serve this file.
    Refused(ErrorBody),
}
