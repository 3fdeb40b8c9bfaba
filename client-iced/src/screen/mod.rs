//! The app's screens, each in the Elm shape: state, message, update, view.
//!
//! - [`login`]: signing in.
//! - [`workspace`]: the main window once signed in.

pub mod login;
pub mod workspace;

#[cfg(test)]
mod login_tests;
