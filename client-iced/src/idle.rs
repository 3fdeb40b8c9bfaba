//! How long the user has been idle: the desktop's own count (the X
//! server's screen-saver extension, which sees input in every window) when
//! there is one, else the time since the last input in this window.

use std::time::Duration;

/// Time since the last input anywhere on the X display, if it can be asked.
pub fn desktop_idle() -> Option<Duration> {
    use x11rb::connection::Connection;
    use x11rb::protocol::screensaver::ConnectionExt;
    let (conn, screen) = x11rb::connect(None).ok()?;
    let root = conn.setup().roots.get(screen)?.root;
    let info = conn.screensaver_query_info(root).ok()?.reply().ok()?;
    Some(Duration::from_millis(u64::from(info.ms_since_user_input)))
}

/// The idle time that counts: the desktop's when known (the user may be
/// busy in another window), else this window's.
pub fn idle(desktop: Option<Duration>, in_window: Duration) -> Duration {
    desktop.unwrap_or(in_window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desktops_idle_time_wins_over_the_windows() {
        let (minute, hour) = (Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(idle(Some(minute), hour), minute, "busy in another window: not idle");
        assert_eq!(idle(Some(hour), minute), hour);
        assert_eq!(idle(None, hour), hour, "no desktop to ask: this window's input counts");
    }
}
