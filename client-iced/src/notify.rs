//! Desktop notifications over the freedesktop D-Bus interface: one for a
//! message that arrives while the window is unfocused (not for a muted
//! conversation unless it mentions the user). Clicking it opens the
//! conversation.

use crate::screen::workspace::Notice;

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
    let conversation = notice.conversation;
    tokio::task::spawn_blocking(move || {
        let mut clicked = false;
        handle.wait_for_action(|action| clicked = action == "default");
        clicked.then_some(conversation)
    })
    .await
    .ok()
    .flatten()
}
