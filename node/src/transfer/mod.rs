//! Peer-to-peer file transfer.
//!
//! A file is described by a [`manifest::Manifest`]: its size and the BLAKE3
//! hash of every fixed-size chunk. The file is addressed by the manifest's
//! root hash, which travels in the offer; the receiver fetches the manifest,
//! checks it against the root, then checks every chunk against its hash as
//! it arrives, so a bad chunk is found at once and fetched again. Which
//! chunks are already verified is a [`manifest::Have`] set, which is what
//! makes a transfer resumable after a drop or a restart; a
//! [`fetch::Fetch`] plans which chunks to ask for, a window at a time.
//!
//! Received files get a [`names::sanitize`]d name in the downloads folder,
//! never outside it and never over an existing file.
//!
//! A file offered to a group is fetched by every member device from the
//! offering device and from each other: [`swarm_wire`] is the group-file
//! stream, [`swarm`] plans which chunk to ask which member for, [`gather`]
//! and [`share`] are the receiving and serving ends.
//!
//! [`manifest`], [`names`], [`fetch`], [`swarm`] and [`disk`] are free of
//! network IO; [`partial`] is the file on disk; [`serve`] and [`receive`]
//! are the two ends of one file-fetch stream, moving chunks through
//! reused [`buffers`]; [`engine`] ties them to
//! offers, the history and the mesh. [`image`] makes and checks thumbnails.

pub mod buffers;
pub mod disk;
pub mod engine;
pub mod fetch;
pub mod gather;
pub mod image;
pub mod manifest;
pub mod names;
pub mod partial;
pub mod receive;
pub mod serve;
pub mod share;
#[cfg(test)]
mod stream_tests;
pub mod swarm;
#[cfg(test)]
mod swarm_tests;
pub mod swarm_wire;

pub use engine::{TransferOptions, Transfers};
