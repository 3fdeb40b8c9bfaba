//! Messages from apps, taken from the mailbox.
//!
//! A company system posts through the tracker's HTTP API; the tracker signs
//! each recipient's copy with the organisation's key and seals it into the
//! recipient's devices' mailboxes ([`skein_proto::app`]). Here a node takes
//! one only when the signature is the organisation's and the copy is for
//! this user, stores it in the user's conversation with the app (or in the
//! group's or department's conversation it was posted to) as a message
//! from `app:NAME`, and keeps the app's icon beside the history, where a
//! client finds it by the event's `app.icon`.

use crate::hlc;
use crate::inbox::{Inbox, message_event};
use serde_json::{Value, json};
use skein_proto::app::{AppMessage, app_sender};
use skein_proto::bytes::DeviceId;
use skein_proto::peer::{ChatMessage, Conversation, MessageBody, group_address};
use std::path::{Path, PathBuf};

/// Why an app message from the mailbox was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AppMailError {
    /// This node has no organisation key to check it with yet.
    #[error("no organisation key to check an app message with")]
    NoOrgKey,
    /// The signature is not the organisation's.
    #[error("an app message without the organisation's signature (from {0}): dropped")]
    Forged(String),
    /// It is for another user, or its sender does not match its app.
    #[error("an app message for {to} from {from} is not this user's: dropped")]
    NotMine {
        /// Whom it names.
        to: String,
        /// The mailbox's sender.
        from: String,
    },
    /// Its content breaks the rules for posts.
    #[error("an app message from {from}: {why}")]
    Invalid {
        /// The mailbox's sender.
        from: String,
        /// What is wrong.
        why: String,
    },
    /// The history could not store it; it stays in the mailbox.
    #[error("cannot store an app message: {0}")]
    Store(String),
}

impl AppMailError {
    /// Whether the item should stay in the mailbox for another try.
    pub fn keep(&self) -> bool {
        matches!(self, AppMailError::Store(_) | AppMailError::NoOrgKey)
    }
}

/// Where the icons of apps go, beside the history file.
pub fn icons_dir(history_path: &Path) -> PathBuf {
    history_path.parent().unwrap_or(Path::new(".")).join("app-icons")
}

impl Inbox {
    /// Checks and stores an app message that came from the mailbox as
    /// `from` (the tracker's name for its sender); returns its events
    /// (none when it was stored before).
    pub async fn app_message(&self, from: &str, signed: &AppMessage) -> Result<Vec<Value>, AppMailError> {
        let key = self.groups.as_ref().and_then(|g| g.org_key()).ok_or(AppMailError::NoOrgKey)?;
        let body =
            skein_certs::app::verify_app_message(&key, signed).map_err(|_| AppMailError::Forged(from.to_owned()))?;
        let sender = app_sender(&body.post.app);
        if body.to_user != self.me || sender != from {
            return Err(AppMailError::NotMine { to: body.to_user.clone(), from: from.to_owned() });
        }
        body.post.check().map_err(|why| AppMailError::Invalid { from: from.to_owned(), why })?;
        let (to_user, conversation) = match body.group {
            None => (self.me.clone(), Conversation::Direct),
            Some(group) => {
                // Every member orders it by the same reading: the tracker's time.
                let reading = hlc::reading_at(body.sent_at_ms);
                if let Some(book) = &self.groups {
                    book.observe(reading);
                }
                (group_address(&group), Conversation::Group { group, version: 0, hlc: reading, seq: 0 })
            }
        };
        let msg = ChatMessage {
            id: body.id,
            from_user: sender,
            from_device: DeviceId([0; 16]),
            to_user,
            conversation,
            sent_at_ms: body.sent_at_ms,
            body: MessageBody::App(Box::new(body.post.clone())),
        };
        let fresh = self
            .history
            .insert_incoming(&self.me, &msg, "mailbox")
            .await
            .map_err(|e| AppMailError::Store(e.to_string()))?;
        if !fresh {
            return Ok(Vec::new());
        }
        let mut event = message_event(&self.me, &msg, "mailbox");
        if let Some(png) = &body.icon_png {
            event["app"]["icon"] = json!(self.keep_icon(&body.post.app, png).await);
        }
        Ok(vec![event])
    }

    /// Writes the app's icon beside the history when it changed; its path,
    /// or `None` when it cannot be written (the message is shown without).
    async fn keep_icon(&self, app: &str, png: &[u8]) -> Option<String> {
        // The tracker allows no such names; a file name it must stay all the same.
        if app.is_empty() || app.starts_with('.') || app.contains(['/', '\\', '\0']) {
            return None;
        }
        let dir = icons_dir(self.history.path());
        let path = dir.join(format!("{app}.png"));
        if tokio::fs::read(&path).await.ok().as_deref() != Some(png) {
            let tmp = dir.join(format!(".{app}.png.tmp"));
            let written = async {
                tokio::fs::create_dir_all(&dir).await?;
                tokio::fs::write(&tmp, png).await?;
                tokio::fs::rename(&tmp, &path).await
            };
            if let Err(e) = written.await {
                tracing::warn!(%app, error = %e, "cannot keep an app's icon");
                return None;
            }
        }
        Some(path.display().to_string())
    }
}
