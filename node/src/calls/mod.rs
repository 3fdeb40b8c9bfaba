//! Calls: signalling between devices, then audio and video between them.
//!
//! - [`signal`] is the pure state machine of one call on one device: it
//!   takes signals from peers, the user's answers and the time, and
//!   returns what to send, report and start.
//! - [`manager`] runs it: signals over the mesh, events, history lines.
//! - [`media`] carries a connected call's audio and video on peer streams,
//!   between the GStreamer pipelines of `skein_media`.

pub mod manager;
pub mod media;
pub mod signal;

pub use manager::{Calls, CallsContext};
pub use media::{MediaConfig, Pictures};
