//! skein-desk: the Skein desktop client.
//!
//! The iced application embeds the node library; this crate currently holds
//! the screen-independent view models it renders, kept free of any UI
//! toolkit so they are tested as plain functions:
//!
//! - [`roster`]: the contact list, ordered and grouped the way people scan it.

pub mod roster;
