//! Desktop notifications over the freedesktop D-Bus interface: one for a
//! message that arrives while the window is unfocused (not for a muted
//! conversation unless it mentions the user). Clicking it opens the
//! conversation.

use crate::screen::workspace::Notice;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Notifications waiting for a click at once; each waits on a thread of
/// its own, so beyond these a notification is shown without waiting.
const MAX_WAITING: usize = 4;
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Shows `notice`; resolves to its conversation when the user clicks it,
/// or `None` when it is dismissed or no notification service runs.
pub async fn show(notice: Notice) -> Option<String> {
    let shown = notify_rust::Notification::new()
        .appname("Skein")
        .summary(&notice.title)
        .body(&notice.body)
        .action("default", "Open")
        .hint(notify_rust::Hint::Category("im.received".to_owned()))
        .show_async()
        .await;
    let handle = match shown {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(error = %e, "no desktop notification service answered");
            return None;
        }
    };
    if WAITING.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
        WAITING.fetch_sub(1, Ordering::SeqCst);
        return None;
    }
    let conversation = notice.conversation;
    let clicked = tokio::task::spawn_blocking(move || {
        let mut clicked = false;
        handle.wait_for_action(|action| clicked = action == "default");
        clicked.then_some(conversation)
    })
    .await
    .ok()
    .flatten();
    WAITING.fetch_sub(1, Ordering::SeqCst);
    clicked
}
