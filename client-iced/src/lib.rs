//! skein-desk: the Skein desktop app, on iced.
//!
//! It embeds the node (`skein_node::handle`), so there is no separate
//! daemon: the app is the node, and while it runs it serves the profile's
//! control socket, so `skein` commands work against it.
//!
//! - [`app`]: the application (screens, window, shortcuts, idleness).
//! - [`screen`]: the sign-in screen and the main window.
//! - [`model`]: what the screens show, free of the toolkit and the network.
//! - [`style`], [`clock`]: the look, and local time for people.
//! - [`idle`]: how long the user has been away from the desktop.
//! - [`notify`]: desktop notifications; [`snapshot`]: what shows, for checks.

pub mod app;
pub mod clock;
pub mod idle;
pub mod model;
pub mod notify;
pub mod screen;
pub mod snapshot;
pub mod style;
