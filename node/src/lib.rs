//! The Skein node: a device's side of Skein.
//!
//! - [`profile`] keeps the device's keys and saved session on disk.
//! - [`tracker_client`] speaks the control plane to a tracker.
//! - [`session`] logs in and resumes, saving rotated tokens.
//! - [`handle`] runs a device's node for `skein daemon` and the desktop
//!   app alike; [`daemon`] keeps its session alive and serves the
//!   [`control`] socket.
//! - [`mesh`] is the peer network; [`delivery`] sends and [`inbox`] receives
//!   messages, receipts and file statuses; [`transfer`] moves files.
//! - [`events`] carries what the node reports to the daemon's output or
//!   the desktop app.
//! - [`emoji`] expands `:shortcodes:` and checks reactions.
//! - [`cli`] is the `skein` command line; [`json`] fixes its output shapes.

pub mod app_mail;
pub mod calls;
pub mod cli;
pub mod control;
pub mod daemon;
pub mod delivery;
pub mod emoji;
pub mod events;
pub mod first_contact;
pub mod forward;
pub mod group_book;
pub mod groups;
pub mod handle;
pub mod history;
pub mod hlc;
pub mod inbox;
pub mod json;
pub mod lookups;
pub mod mesh;
pub mod nearest;
pub mod plugins;
pub mod profile;
pub mod reporter;
pub use skein_certs::seal;
pub mod session;
pub mod tracker_client;
pub mod transfer;
pub mod trust;

pub use skein_proto::time::now_ms;

/// A fresh random 16-byte id (a message's, a call's).
pub(crate) fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut id);
    id
}
