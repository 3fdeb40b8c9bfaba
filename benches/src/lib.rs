//! Skein's benchmark harness.
//!
//! - `skein-bench` (in `src/bin`) runs the end-to-end scenarios, each next
//!   to its baseline in the same run, and prints a markdown table:
//!   [`scenarios`] (messages and files between two real daemons, against
//!   [`rawquic`]), [`fanout`] (a daemon sending to a group of member
//!   devices running in the harness) and [`load`] (a tracker under many
//!   simulated clients), with [`hops`] (where a message's time goes, hop
//!   by hop) and [`cross`] (two trackers on one PostgreSQL database:
//!   presence across them, failover) and [`calls`] (glass-to-glass
//!   latency of a call, against bare GStreamer).
//! - `skein-load` is the load generator on its own.
//! - `cargo bench -p skein-benches` runs the criterion micro-benchmarks
//!   (`benches/codec.rs`, `benches/seal.rs`).
//!
//! [`cluster`] starts the real `skein-tracker` and `skein` binaries;
//! [`report`] holds the measurements and the table; [`cpu`] reads what the
//! CPU did during a scenario. The harness prints only what it measured in
//! the run; explanations from profiles taken once are in the README.

pub mod calls;
pub mod cluster;
pub mod cpu;
pub mod cross;
pub mod fanout;
pub mod hops;
pub mod load;
pub mod rawquic;
pub mod report;
pub mod scenarios;
