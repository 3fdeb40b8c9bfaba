//! Wall-clock time as the wire carries it: milliseconds since the Unix epoch.

pub use skein_proto::time::now_ms;
