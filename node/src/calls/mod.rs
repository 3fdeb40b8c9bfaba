//! Calls: signalling between devices, then audio and video between them.
//!
//! - [`signal`] is the pure state machine of one call on one device: it
//!   takes signals from peers, the user's answers and the time, and
//!   returns what to send, report and start.
//! - `call` is this device's call as a whole: one leg per other
//!   participant (one in a one-to-one call; a full mesh in a group call).
//! - [`manager`] runs it: signals over the mesh, events, the roster of a
//!   group call.
//! - `record` leaves the call's line in the conversation's history.
//! - [`capture`] opens the microphone and camera once per call and feeds
//!   every leg.
//! - [`media`] carries a connected leg's audio and video on peer streams,
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
