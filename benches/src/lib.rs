//! Skein's benchmark harness.
//!
//! The benchmarks live under `benches/` and run with `cargo bench -p skein-benches`:
//! criterion micro-benchmarks of the wire codec (`codec`) today, and
//! end-to-end scenarios against a raw-QUIC baseline later.
