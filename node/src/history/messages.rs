//! Messages: storing sent and received messages exactly once, moving an
//! outgoing message's state forward, and reading messages back.
//!
//! States, as stored in the `state` column:
//!
//! ```text
//! outgoing: queued ──▶ sent ──▶ delivered ──▶ read
//!              └────────┴──▶ failed ──┘ (a later receipt still counts)
//! incoming: received ──▶ read
//! ```
//!
//! A copy of one of my own messages synced from my other device is stored
//! as outgoing in state `sent`: it shows as mine, is never resent from this
//! device, and later receipts move it on.

use super::batch::{Move, MoveKind, NewRow};
use super::conversations::conversation_of;
use super::{History, HistoryError, db_time, delivery_path, fixed, now_db, stored_time};
use skein_proto::bytes::{DeviceId, MailId};
use skein_proto::frame::{decode_payload, encode_payload};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// The state of a message this user sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutState {
    /// Written, not yet handed to the recipient or a mailbox.
    Queued,
    /// Handed to the recipient's device or to a tracker mailbox.
    Sent,
    /// Stored on a device of the recipient.
    Delivered,
    /// Seen by the recipient.
    Read,
    /// Given up on.
    Failed,
}

impl OutState {
    /// The name stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            OutState::Queued => "queued",
            OutState::Sent => "sent",
            OutState::Delivered => "delivered",
            OutState::Read => "read",
            OutState::Failed => "failed",
        }
    }

    /// Parses a stored state name.
    pub fn parse(name: &str) -> Option<OutState> {
        [OutState::Queued, OutState::Sent, OutState::Delivered, OutState::Read, OutState::Failed]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// The states a message may move to `self` from. States only move
    /// forward; `failed` is reachable from `queued` and `sent`, and a
    /// delivered or read receipt still moves a failed message on.
    pub fn allowed_from(self) -> &'static [OutState] {
        use OutState::*;
        match self {
            Queued => &[],
            Sent => &[Queued],
            Delivered => &[Queued, Sent, Failed],
            Read => &[Queued, Sent, Delivered, Failed],
            Failed => &[Queued, Sent],
        }
    }
}

/// One message as stored in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in the history: increases with every stored message.
    pub seq: i64,
    /// The sender's message id.
    pub id: MailId,
    /// The conversation (see [`conversation_of`]).
    pub conversation: String,
    /// The sending user.
    pub from_user: String,
    /// The sending device.
    pub from_device: DeviceId,
    /// The addressed user.
    pub to_user: String,
    /// When the sender wrote it.
    pub sent_at_ms: u64,
    /// When this device stored it.
    pub stored_at_ms: u64,
    /// The content.
    pub body: MessageBody,
    /// Whether this user sent it.
    pub outgoing: bool,
    /// `queued`, `sent`, `delivered`, `read` or `failed` when outgoing;
    /// `received` or `read` when incoming.
    pub state: String,
    /// When the recipient stored it (outgoing).
    pub delivered_at_ms: Option<u64>,
    /// When it was read: by the recipient (outgoing) or by this user.
    pub read_at_ms: Option<u64>,
    /// How it travelled: `direct`, `relayed` or `mailbox`.
    pub path: Option<String>,
    /// For a group message, the sender's clock reading that orders it.
    pub hlc: u64,
    /// For a group message, the sending device's number for it.
    pub group_seq: u64,
}

/// Where a group message stands with one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// On none of the member's devices yet (it may wait in the mailbox).
    Queued,
    /// On at least one of the member's devices.
    Delivered,
    /// The member read it.
    Read,
}

impl MemberState {
    /// `queued`, `delivered` or `read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Read => "read",
        }
    }

    /// The member state a receipt's state means.
    fn of(state: OutState) -> Option<Self> {
        match state {
            OutState::Delivered => Some(Self::Delivered),
            OutState::Read => Some(Self::Read),
            _ => None,
        }
    }
}

impl StoredMessage {
    /// The wire message, to send (or resend) exactly as first written.
    pub fn to_chat_message(&self) -> ChatMessage {
        ChatMessage {
            id: self.id,
            from_user: self.from_user.clone(),
            from_device: self.from_device,
            to_user: self.to_user.clone(),
            conversation: match self.conversation.strip_prefix('#').and_then(skein_proto::bytes::GroupId::from_hex) {
                // The version is the receivers' to check against the newest they know.
                Some(group) => Conversation::Group { group, version: 0, hlc: self.hlc, seq: self.group_seq },
                None => Conversation::Direct,
            },
            sent_at_ms: self.sent_at_ms,
            body: self.body.clone(),
        }
    }

    /// The state of an outgoing message; `None` for an incoming one.
    pub fn out_state(&self) -> Option<OutState> {
        if self.outgoing { OutState::parse(&self.state) } else { None }
    }
}

/// `SELECT`s the columns [`from_row`] reads from `messages`, followed by
/// the given clauses, as one static SQL string.
macro_rules! select_messages {
    ($clauses:literal) => {
        concat!(
            "SELECT seq, id, conversation, from_user, from_device, to_user, sent_at_ms, stored_at_ms, body, ",
            "outgoing, state, delivered_at_ms, read_at_ms, path, hlc, group_seq FROM messages ",
            $clauses
        )
    };
}

impl History {
    /// Stores a message that arrived at this device over `path` (`direct`,
    /// `relayed` or `mailbox`), for the user `me`.
    ///
    /// Returns `false`, changing nothing, if a message with its id is
    /// already stored; otherwise stores it and, unless it is a copy of my
    /// own message, counts it unread. Atomic, and safe under concurrent
    /// calls with the same id: exactly one of them returns `true`.
    pub async fn insert_incoming(&self, me: &str, msg: &ChatMessage, path: &str) -> Result<bool, HistoryError> {
        let path = delivery_path(path)?;
        if msg.from_user == me {
            self.insert(me, msg, true, OutState::Sent.as_str(), Some(path)).await
        } else {
            self.insert(me, msg, false, "received", Some(path)).await
        }
    }

    /// Stores a message the user `me` wrote, in `state`. Returns `false`,
    /// changing nothing, if its id is already stored.
    pub async fn insert_outgoing(&self, me: &str, msg: &ChatMessage, state: OutState) -> Result<bool, HistoryError> {
        if msg.from_user != me {
            return Err(HistoryError::InvalidInput(format!(
                "an outgoing message must be from {me:?}, not {:?}",
                msg.from_user
            )));
        }
        self.insert(me, msg, true, state.as_str(), None).await
    }

    /// Stores one message, with others waiting at the same time (see
    /// `batch`); a trigger brings its conversation up to date in the same
    /// statement (migration 3), unread counts included.
    async fn insert(
        &self,
        me: &str,
        msg: &ChatMessage,
        outgoing: bool,
        state: &'static str,
        path: Option<&str>,
    ) -> Result<bool, HistoryError> {
        let conversation = conversation_of(me, msg);
        let body = encode_payload(&msg.body).map_err(|e| HistoryError::InvalidInput(e.to_string()))?;
        let (text, kind) = match &msg.body {
            MessageBody::Text(text) => (Some(text.clone()), "text"),
            MessageBody::File(f) => (Some(f.name.clone()), "file"),
            MessageBody::Image(i) => (Some(i.file.name.clone()), "image"),
            MessageBody::Reaction(_) => (None, "reaction"),
            // Shown and counted as a text; found by its text and card.
            MessageBody::App(p) => (Some(p.searchable()), "text"),
            MessageBody::Card(c) => (Some(c.searchable()), "text"),
            MessageBody::Call(r) => (Some(crate::json::call_line(r)), "text"),
        };
        let now = now_db();
        let row = NewRow {
            id: msg.id.0.to_vec(),
            conversation,
            from_user: msg.from_user.clone(),
            from_device: msg.from_device.0.to_vec(),
            to_user: msg.to_user.clone(),
            sent_at_ms: db_time(msg.sent_at_ms),
            stored_at_ms: now,
            body,
            text,
            outgoing,
            state,
            delivered_at_ms: (outgoing && matches!(state, "delivered" | "read")).then_some(now),
            read_at_ms: (outgoing && state == "read").then_some(now),
            path: path.map(str::to_owned),
            kind,
            hlc: match &msg.conversation {
                Conversation::Group { hlc, .. } => i64::try_from(*hlc).unwrap_or(i64::MAX),
                Conversation::Direct => 0,
            },
            group_seq: match &msg.conversation {
                Conversation::Group { seq, .. } => i64::try_from(*seq).unwrap_or(i64::MAX),
                Conversation::Direct => 0,
            },
        };
        self.batch.insert(row).await
    }

    /// Moves an outgoing message to `state` at `at_ms`, recording how it
    /// travelled if `path` is given. States only move forward (see
    /// [`OutState::allowed_from`]); returns whether the message changed.
    /// Reaching `delivered` or `read` stamps `delivered_at_ms`, reaching
    /// `read` stamps `read_at_ms`.
    pub async fn set_outgoing_state(
        &self,
        id: MailId,
        state: OutState,
        at_ms: u64,
        path: Option<&str>,
    ) -> Result<bool, HistoryError> {
        self.move_outgoing(id, state, at_ms, path, None).await
    }

    /// Applies a receipt from `by_user` to the outgoing message `id`, as
    /// [`History::set_outgoing_state`] does, but only if `by_user` is the
    /// user the message was sent to: nobody else can mark it delivered or
    /// read. Returns whether the message changed, or `None` when `id` is not
    /// a message sent to `by_user` (unknown, incoming, or sent to another).
    pub async fn apply_receipt(
        &self,
        id: MailId,
        by_user: &str,
        state: OutState,
        at_ms: u64,
    ) -> Result<Option<bool>, HistoryError> {
        if self.move_outgoing(id, state, at_ms, None, Some(by_user)).await? {
            return Ok(Some(true));
        }
        let theirs = sqlx::query("SELECT 1 FROM messages WHERE id = $1 AND outgoing = 1 AND to_user = $2")
            .bind(id.0.to_vec())
            .bind(by_user)
            .fetch_optional(&self.pool)
            .await?;
        if theirs.is_some() {
            return Ok(Some(false));
        }
        // A group message: the receipt moves that member's state only.
        if let Some(member_state) = MemberState::of(state)
            && self.move_member(id, by_user, member_state, at_ms).await?
        {
            return Ok(Some(true));
        }
        let member = sqlx::query("SELECT 1 FROM member_states WHERE message_id = $1 AND member = $2")
            .bind(id.0.to_vec())
            .bind(by_user)
            .fetch_optional(&self.pool)
            .await?;
        Ok(member.map(|_| false))
    }

    /// Records that a group message sent from here is waiting for these
    /// members (those already further along keep their state).
    pub async fn members_queued(&self, id: MailId, members: &[String]) -> Result<(), HistoryError> {
        self.move_members(id, members, MemberState::Queued, None).await
    }

    /// [`History::move_member`] for several members in one statement
    /// (500 members at most, well within SQLite's limit of bound values).
    pub async fn move_members(
        &self,
        id: MailId,
        members: &[String],
        state: MemberState,
        at_ms: Option<u64>,
    ) -> Result<(), HistoryError> {
        for chunk in members.chunks(500) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO member_states (message_id, member, state, at_ms) ",
            );
            q.push_values(chunk, |mut b, m| {
                b.push_bind(id.0.to_vec()).push_bind(m).push_bind(state.as_str()).push_bind(at_ms.map(db_time));
            });
            q.push(
                " ON CONFLICT (message_id, member) DO UPDATE SET state = excluded.state, at_ms = excluded.at_ms \
                 WHERE (member_states.state = 'queued' AND excluded.state != 'queued') \
                    OR (member_states.state = 'delivered' AND excluded.state = 'read')",
            );
            q.build().execute(&self.writer).await?;
        }
        Ok(())
    }

    /// Moves a member's state for a group message sent from here forward
    /// (queued, delivered, read; never back). Only a member the message was
    /// sent to has a state to move: anyone else's receipt changes nothing.
    /// Returns whether it changed.
    pub async fn move_member(
        &self,
        id: MailId,
        member: &str,
        state: MemberState,
        at_ms: u64,
    ) -> Result<bool, HistoryError> {
        let done = sqlx::query(
            "UPDATE member_states SET state = $3, at_ms = $4 \
             WHERE message_id = $1 AND member = $2 \
               AND (state = 'queued' AND $3 != 'queued' OR state = 'delivered' AND $3 = 'read')",
        )
        .bind(id.0.to_vec())
        .bind(member)
        .bind(state.as_str())
        .bind(db_time(at_ms))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Each member's state for a group message sent from here, by name.
    pub async fn member_states(&self, id: MailId) -> Result<Vec<(String, String)>, HistoryError> {
        let rows = sqlx::query("SELECT member, state FROM member_states WHERE message_id = $1 ORDER BY member")
            .bind(id.0.to_vec())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("member")?, r.try_get("state")?))).collect()
    }

    /// Moves an outgoing message forward, if sent to `recipient` when given.
    async fn move_outgoing(
        &self,
        id: MailId,
        state: OutState,
        at_ms: u64,
        path: Option<&str>,
        recipient: Option<&str>,
    ) -> Result<bool, HistoryError> {
        let path = path.map(delivery_path).transpose()?;
        let from = state.allowed_from();
        let Some(first) = from.first() else {
            return Ok(false);
        };
        // Four placeholders for the allowed previous states, padded with
        // repeats of the first.
        let from_at = |i: usize| from.get(i).unwrap_or(first).as_str();
        let kind = MoveKind {
            state: state.as_str(),
            from: [from_at(0), from_at(1), from_at(2), from_at(3)],
            to_delivered: matches!(state, OutState::Delivered | OutState::Read),
            to_read: state == OutState::Read,
            path: path.map(str::to_owned),
            recipient: recipient.map(str::to_owned),
        };
        self.batch.move_state(Move { id: id.0.to_vec(), at_ms: db_time(at_ms), kind }).await
    }

    /// Up to `limit` messages of `conversation` older than `before_seq` (or
    /// the newest, without it), oldest first. Page back by passing the
    /// first returned `seq` as the next `before_seq`.
    pub async fn messages(
        &self,
        conversation: &str,
        limit: u32,
        before_seq: Option<i64>,
    ) -> Result<Vec<StoredMessage>, HistoryError> {
        // A group's messages are in the order every member sees: by the
        // sender's clock reading, then sender and id; others as stored.
        let sql = if conversation.starts_with('#') {
            select_messages!(
                "WHERE conversation = $1 AND seq < $2 AND kind != 'reaction' \
                 ORDER BY hlc DESC, from_user DESC, id DESC LIMIT $3"
            )
        } else {
            select_messages!("WHERE conversation = $1 AND seq < $2 AND kind != 'reaction' ORDER BY seq DESC LIMIT $3")
        };
        let rows = sqlx::query(sql)
            .bind(conversation)
            .bind(before_seq.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut messages = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// The highest number `device` gave a message of `conversation` that is
    /// held here (0: none).
    pub async fn max_group_seq(&self, conversation: &str, device: DeviceId) -> Result<u64, HistoryError> {
        let max = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(group_seq) FROM messages WHERE conversation = $1 AND from_device = $2",
        )
        .bind(conversation)
        .bind(device.0.to_vec())
        .fetch_one(&self.pool)
        .await?;
        Ok(max.and_then(|m| u64::try_from(m).ok()).unwrap_or(0))
    }

    /// The messages of `conversation` from `device` numbered after
    /// `after` and before `before`, in order, at most `limit`.
    pub async fn group_messages_between(
        &self,
        conversation: &str,
        device: DeviceId,
        after: u64,
        before: u64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, HistoryError> {
        let sql = select_messages!(
            "WHERE conversation = $1 AND from_device = $2 AND group_seq > $3 AND group_seq < $4 \
             ORDER BY group_seq LIMIT $5"
        );
        let rows = sqlx::query(sql)
            .bind(conversation)
            .bind(device.0.to_vec())
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::try_from(before).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Outgoing messages still queued, oldest first: to send after a
    /// restart, each as its [`StoredMessage::to_chat_message`].
    pub async fn unsent(&self) -> Result<Vec<StoredMessage>, HistoryError> {
        let sql = select_messages!("WHERE outgoing = 1 AND state = 'queued' ORDER BY seq");
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// The message with `id`, if stored.
    pub async fn get(&self, id: MailId) -> Result<Option<StoredMessage>, HistoryError> {
        let sql = select_messages!("WHERE id = $1");
        let row = sqlx::query(sql).bind(id.0.to_vec()).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }
}

/// Decodes one row selected with `select_messages!`.
fn from_row(row: &SqliteRow) -> Result<StoredMessage, HistoryError> {
    let body: Vec<u8> = row.try_get("body")?;
    let optional_time = |column: &str| -> Result<Option<u64>, HistoryError> {
        row.try_get::<Option<i64>, _>(column)?.map(|ms| stored_time(ms, column)).transpose()
    };
    Ok(StoredMessage {
        seq: row.try_get("seq")?,
        id: MailId(fixed(row.try_get("id")?, "message id")?),
        conversation: row.try_get("conversation")?,
        from_user: row.try_get("from_user")?,
        from_device: DeviceId(fixed(row.try_get("from_device")?, "sending device id")?),
        to_user: row.try_get("to_user")?,
        sent_at_ms: stored_time(row.try_get("sent_at_ms")?, "sent_at_ms")?,
        stored_at_ms: stored_time(row.try_get("stored_at_ms")?, "stored_at_ms")?,
        body: decode_payload(&body).map_err(|e| HistoryError::Corrupt(format!("message body: {e}")))?,
        outgoing: row.try_get::<i64, _>("outgoing")? != 0,
        state: row.try_get("state")?,
        delivered_at_ms: optional_time("delivered_at_ms")?,
        read_at_ms: optional_time("read_at_ms")?,
        path: row.try_get("path")?,
        hlc: u64::try_from(row.try_get::<i64, _>("hlc")?).unwrap_or(0),
        group_seq: u64::try_from(row.try_get::<i64, _>("group_seq")?).unwrap_or(0),
    })
}
