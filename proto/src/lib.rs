//! Skein's wire types and framing.
//!
//! Everything that crosses a socket between Skein processes is defined here:
//! the control plane between nodes and trackers ([`control`]), device
//! certificates ([`device`]), error codes ([`error`]), and the bounded
//! length-prefixed frame that carries them ([`frame`]).
//!
//! Messages are serde types encoded with postcard. Enums are encoded by their
//! variant index, so **variants are only ever appended, never reordered or
//! removed**; the golden-bytes tests pin every index. New capabilities (groups,
//! file offers, call signalling) arrive as new variants at the end of
//! [`control::Request`], [`control::Response`] and [`control::Event`], and a
//! peer that does not know a variant answers with
//! [`error::ErrorCode::Unsupported`] instead of dropping the connection.
//!
//! The crate does no IO: encoding and decoding are pure functions over bytes.
//! The optional `tokio` feature adds two thin async helpers in [`io`].

pub mod app;
pub mod bytes;
pub mod call;
pub mod control;
pub mod device;
pub mod error;
pub mod file;
pub mod frame;
pub mod group;
#[cfg(feature = "tokio")]
pub mod io;
pub mod limits;
pub mod media;
pub mod peer;
pub mod time;

pub use error::{ErrorBody, ErrorCode};
pub use frame::{FrameDecoder, FrameError};

/// The control-plane protocol version this build speaks. Version 2 adds
/// [`control::Event::DeviceRevoked`], the welcome's nonce and the device's
/// proof of its PeerId, and one-time passwords that must be changed.
pub const PROTOCOL_VERSION: u16 = 2;
/// The oldest control-plane protocol version this build still accepts.
/// Version 1 clients cannot prove their PeerId, so they are refused with
/// a message to upgrade.
pub const MIN_PROTOCOL_VERSION: u16 = 2;
/// ALPN identifier of the control plane, negotiated in the TLS handshake.
pub const CONTROL_ALPN: &[u8] = b"skein-control/1";
