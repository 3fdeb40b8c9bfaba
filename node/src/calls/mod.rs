//! Calls: signalling between devices, then audio and video between them.
//!
//! - [`signal`] is the pure state machine of one call on one device: it
//!   takes signals from peers, the user's answers and the time, and
//!   returns what to send, report and start.
//! - [`manager`] runs it: signals over the mesh, events, history lines.
//! - [`media`] carries a connected call's audio and video on peer streams,
//!   between the GStreamer pipelines of `skein_media`.

mod call;
pub mod capture;
pub mod manager;
pub mod media;
mod record;
pub mod signal;

pub use call::MAX_PARTICIPANTS;
pub use manager::{Calls, CallsContext};
pub use media::{MediaConfig, Pictures, RemoteFrame};
