//! The Skein tracker: login, presence, the organisation directory and
//! connection brokering for Skein nodes.
//!
//! - [`server`] starts and stops a tracker ([`Tracker::start`]).
//! - [`connection`] serves one client; [`requests`] answers its requests.
//! - [`hub`] owns live sessions and [`presence`]; [`presence_sync`] shares
//!   presence with the other trackers of a PostgreSQL store; [`throttle`]
//!   limits failed logins.
//! - [`relay`] runs the libp2p circuit relay for nodes that cannot hole-punch.
//! - [`store`] keeps users, sessions, devices and the mailbox in SQLite or PostgreSQL.
//! - [`admin`] holds the administrator operations; [`admin_watch`] applies
//!   changes made by other processes to live sessions.
//! - [`init`] prepares a data directory on first run, [`join`] one for a
//!   further tracker of the organisation; [`lock`] keeps a data directory
//!   to one tracker; [`roster`] keeps the list of the organisation's
//!   trackers; [`cli`] is the command line.

pub mod admin;
pub mod admin_watch;
pub mod api;
pub mod apps;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connection;
pub mod enrol;
pub mod hub;
pub mod init;
pub mod join;
pub mod lock;
pub mod login_guard;
pub mod metrics;
pub mod org;
pub mod passwords;
pub mod presence;
pub mod presence_sync;
pub mod rate;
pub mod relay;
pub mod relay_role;
pub mod requests;
pub mod roles;
pub mod roster;
pub mod server;
pub mod state;
pub mod store;
pub mod strangers;
#[cfg(feature = "test-utils")]
pub mod test_utils;
pub mod throttle;
pub mod tls;

pub use config::TrackerConfig;
pub use server::{RunningTracker, Tracker};
