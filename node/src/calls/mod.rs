//! Calls: signalling between devices, then audio and video between them.
//!
//! [`signal`] is the pure state machine of one call on one device: it
//! takes signals from peers, the user's answers and the time, and returns
//! what to send, report and start. The layers that move its signals over
//! the mesh and carry media are built on it.

pub mod signal;
