//! Local time for people: the offset is read once at start (before any
//! thread exists, the only time it can be read safely), then times are
//! shown as "14:05", "Yesterday" or a date.

use std::sync::OnceLock;
use time::{OffsetDateTime, UtcOffset};

static OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local offset; call first thing in `main`.
pub fn init() {
    let _ = OFFSET.set(UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC));
}

/// The local offset (UTC if it was never read).
pub fn offset() -> UtcOffset {
    OFFSET.get().copied().unwrap_or(UtcOffset::UTC)
}

/// `ms` since the Unix epoch, in local time.
pub fn local(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset())
}

/// Today's local date.
pub fn today() -> time::Date {
    local(skein_node::now_ms()).date()
}

/// "14:05".
pub fn hm(ms: u64) -> String {
    let t = local(ms);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// For a list: the time today, "Yesterday", the weekday this week, else the date.
pub fn short(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    let (date, today) = (local(ms).date(), today());
    match (today - date).whole_days() {
        0 => hm(ms),
        1 => "Yesterday".to_owned(),
        2..=6 => date.weekday().to_string()[..3].to_owned(),
        _ => format!("{} {}", date.day(), &date.month().to_string()[..3]),
    }
}
