//! Conversations: which conversation a message belongs to, the list with
//! unread counts, and marking a conversation read.

use super::{History, HistoryError, db_time, fixed, stored_time};
use skein_proto::bytes::MailId;
use skein_proto::peer::{ChatMessage, Conversation};
use sqlx::Row;

/// One conversation in the list, as [`History::conversations`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// For a direct conversation, the other user's name.
    pub id: String,
    /// Time of the latest message, ms since the Unix epoch.
    pub last_at_ms: u64,
    /// Incoming messages not yet read.
    pub unread: u64,
    /// Text of the latest message, if it has text.
    pub last_text: Option<String>,
}

/// The id of the conversation `msg` belongs to, from the point of view of
/// the user `me`.
///
/// A direct conversation is named after the other user: the sender of a
/// message to me, the recipient of a message from me (including a copy of
/// my own message synced from another of my devices). A group's is its
/// address, `#` and its id.
pub fn conversation_of(me: &str, msg: &ChatMessage) -> String {
    match &msg.conversation {
        Conversation::Group { group, .. } => skein_proto::peer::group_address(group),
        Conversation::Direct => {
            if msg.from_user == me {
                msg.to_user.clone()
            } else {
                msg.from_user.clone()
            }
        }
    }
}

/// An event line of a conversation, such as "alice added carol".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationEvent {
    /// Clock reading that places it among the messages.
    pub hlc: u64,
    /// Who made the change.
    pub actor: String,
    /// The line.
    pub text: String,
}

impl History {
    /// Keeps an event line of `conversation`; `id` makes a line learnt
    /// twice kept once. Returns whether it was new.
    pub async fn add_event(
        &self,
        id: [u8; 16],
        conversation: &str,
        event: &ConversationEvent,
    ) -> Result<bool, HistoryError> {
        let done = sqlx::query(
            "INSERT INTO conversation_events (id, conversation, hlc, actor, text) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id[..])
        .bind(conversation)
        .bind(i64::try_from(event.hlc).unwrap_or(i64::MAX))
        .bind(&event.actor)
        .bind(&event.text)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The event lines of `conversation` from clock reading `since` on, oldest first.
    pub async fn events(&self, conversation: &str, since: u64) -> Result<Vec<ConversationEvent>, HistoryError> {
        let rows = sqlx::query(
            "SELECT hlc, actor, text FROM conversation_events WHERE conversation = $1 AND hlc >= $2 ORDER BY hlc, id",
        )
        .bind(conversation)
        .bind(i64::try_from(since).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConversationEvent {
                    hlc: u64::try_from(r.try_get::<i64, _>("hlc")?).unwrap_or(0),
                    actor: r.try_get("actor")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }

    /// Mutes or unmutes a conversation (a user's name or a group's address).
    pub async fn set_muted(&self, conversation: &str, muted: bool) -> Result<(), HistoryError> {
        let sql = if muted {
            "INSERT INTO muted_conversations (id) VALUES ($1) ON CONFLICT (id) DO NOTHING"
        } else {
            "DELETE FROM muted_conversations WHERE id = $1"
        };
        sqlx::query(sql).bind(conversation).execute(&self.writer).await?;
        self.muted.changed(conversation, muted);
        Ok(())
    }

    /// Whether a conversation is muted. Asked for every message that
    /// arrives, so the answer comes from memory: the muted conversations
    /// are read again at most once per [`super::muted::FRESH_FOR`] (another
    /// process, such as `skein mute`, may change them), and at once after
    /// a change through this history.
    pub async fn is_muted(&self, conversation: &str) -> Result<bool, HistoryError> {
        if let Some(answer) = self.muted.lookup(conversation) {
            return Ok(answer);
        }
        let all: Vec<String> = sqlx::query_scalar("SELECT id FROM muted_conversations").fetch_all(&self.pool).await?;
        self.muted.load(all);
        Ok(self.muted.lookup(conversation).unwrap_or(false))
    }

    /// All conversations, the most recently active first.
    pub async fn conversations(&self) -> Result<Vec<ConversationSummary>, HistoryError> {
        let rows = sqlx::query(
            "SELECT c.id, c.last_at_ms, c.unread, \
                    (SELECT m.text FROM messages m WHERE m.conversation = c.id ORDER BY m.seq DESC LIMIT 1) \
                        AS last_text \
             FROM conversations c ORDER BY c.last_at_ms DESC, c.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let unread: i64 = row.try_get("unread")?;
                Ok(ConversationSummary {
                    id: row.try_get("id")?,
                    last_at_ms: stored_time(row.try_get("last_at_ms")?, "last_at_ms")?,
                    unread: u64::try_from(unread)
                        .map_err(|_| HistoryError::Corrupt(format!("unread count is negative ({unread})")))?,
                    last_text: row.try_get("last_text")?,
                })
            })
            .collect()
    }

    /// Marks every unread incoming message of `conversation` read at
    /// `at_ms` and zeroes its unread count, atomically. Returns the
    /// messages marked, oldest first, with their senders, so the caller can
    /// send read receipts. Reactions are never unread and get no receipts.
    pub async fn mark_read(&self, conversation: &str, at_ms: u64) -> Result<Vec<(MailId, String)>, HistoryError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "UPDATE messages SET state = 'read', read_at_ms = $2 \
             WHERE conversation = $1 AND outgoing = 0 AND state = 'received' AND kind != 'reaction' \
             RETURNING seq, id, from_user",
        )
        .bind(conversation)
        .bind(db_time(at_ms))
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE conversations SET unread = 0 WHERE id = $1").bind(conversation).execute(&mut *tx).await?;
        tx.commit().await?;

        let mut marked = rows
            .iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq")?;
                let id = MailId(fixed(row.try_get("id")?, "message id")?);
                Ok((seq, id, row.try_get::<String, _>("from_user")?))
            })
            .collect::<Result<Vec<_>, HistoryError>>()?;
        // RETURNING gives no order guarantee.
        marked.sort_by_key(|(seq, _, _)| *seq);
        Ok(marked.into_iter().map(|(_, id, from)| (id, from)).collect())
    }
}
