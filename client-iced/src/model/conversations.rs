//! The conversation list in the sidebar: newest first, with unread
//! counts, the last message and its time. Loaded from the history, then
//! kept current by the node's events.

use super::event::Incoming;

/// One row of the sidebar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The conversation's address: a user name or `#groupid`.
    pub id: String,
    /// What to call it: the user's display name, or the group's name.
    pub title: String,
    /// Messages not read yet.
    pub unread: u64,
    /// The last message, in one line.
    pub last_text: String,
    /// When the last message was written, ms since the Unix epoch.
    pub last_at_ms: u64,
    /// Notifications are off for it.
    pub muted: bool,
}

impl Row {
    /// Whether it is a group's conversation.
    pub fn is_group(&self) -> bool {
        self.id.starts_with('#')
    }
}

/// The list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversations {
    rows: Vec<Row>,
}

impl Conversations {
    /// A list from rows in any order.
    pub fn new(mut rows: Vec<Row>) -> Self {
        rows.sort_by(|a, b| b.last_at_ms.cmp(&a.last_at_ms).then_with(|| a.id.cmp(&b.id)));
        Self { rows }
    }

    /// Brings the list up to date with rows read from the history. Rows
    /// this list already shows keep what it knows (their unread counts,
    /// titles and muting, kept current by events) and take only a newer
    /// last message; rows the history does not have yet (a group just
    /// made) stay.
    pub fn merge(&mut self, loaded: Vec<Row>) {
        for row in loaded {
            match self.take(&row.id) {
                Some(mut known) => {
                    if row.last_at_ms > known.last_at_ms && !row.last_text.is_empty() {
                        known.last_at_ms = row.last_at_ms;
                        known.last_text = row.last_text;
                    }
                    self.put(known);
                }
                None => self.put(row),
            }
        }
    }

    /// The rows, newest first.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// A row by address.
    pub fn get(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.id == id)
    }

    /// Unread messages in all conversations.
    pub fn total_unread(&self) -> u64 {
        self.rows.iter().map(|r| r.unread).sum()
    }

    /// A message arrived; `open` is the conversation on screen (whose
    /// messages are read as they come while the window has focus).
    pub fn incoming(&mut self, m: &Incoming, me: &str, seen: bool) {
        let title = m.group.clone().unwrap_or_else(|| m.conversation.clone());
        let mut row = self.take(&m.conversation).unwrap_or(Row {
            id: m.conversation.clone(),
            title,
            unread: 0,
            last_text: String::new(),
            last_at_ms: 0,
            muted: m.muted,
        });
        if m.from != me && !seen {
            row.unread += 1;
        }
        if m.sent_at_ms >= row.last_at_ms {
            row.last_at_ms = m.sent_at_ms;
            row.last_text = if m.group.is_some() && m.from != me {
                format!("{}: {}", m.from, m.body.summary())
            } else {
                m.body.summary()
            };
        }
        row.muted = m.muted;
        self.put(row);
    }

    /// This user sent something to `id` (a new conversation appears).
    pub fn outgoing(&mut self, id: &str, title: &str, summary: String, at_ms: u64) {
        let mut row = self.take(id).unwrap_or(Row {
            id: id.to_owned(),
            title: title.to_owned(),
            unread: 0,
            last_text: String::new(),
            last_at_ms: 0,
            muted: false,
        });
        row.last_text = summary;
        row.last_at_ms = row.last_at_ms.max(at_ms);
        self.put(row);
    }

    /// The conversation was read: no unread messages left.
    pub fn read(&mut self, id: &str) {
        if let Some(r) = self.rows.iter_mut().find(|r| r.id == id) {
            r.unread = 0;
        }
    }

    /// Sets what a conversation is called (a display name learnt later).
    pub fn set_title(&mut self, id: &str, title: &str) {
        if let Some(r) = self.rows.iter_mut().find(|r| r.id == id) {
            r.title = title.to_owned();
        }
    }

    fn take(&mut self, id: &str) -> Option<Row> {
        let i = self.rows.iter().position(|r| r.id == id)?;
        Some(self.rows.remove(i))
    }

    fn put(&mut self, row: Row) {
        let i = self.rows.iter().position(|r| r.last_at_ms <= row.last_at_ms).unwrap_or(self.rows.len());
        self.rows.insert(i, row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::Body;

    fn msg(from: &str, conversation: &str, at: u64, text: &str) -> Incoming {
        Incoming {
            id: format!("{at}"),
            from: from.into(),
            conversation: conversation.into(),
            group: None,
            sent_at_ms: at,
            path: "direct".into(),
            body: Body::Text(text.into()),
            muted: false,
            mentions_me: false,
        }
    }

    #[test]
    fn an_incoming_message_raises_the_unread_count_and_moves_its_conversation_to_the_top() {
        let mut c = Conversations::new(vec![
            Row {
                id: "bob".into(),
                title: "Bob".into(),
                unread: 0,
                last_text: "old".into(),
                last_at_ms: 10,
                muted: false,
            },
            Row {
                id: "carol".into(),
                title: "Carol".into(),
                unread: 1,
                last_text: "x".into(),
                last_at_ms: 20,
                muted: false,
            },
        ]);
        assert_eq!(c.rows()[0].id, "carol");
        c.incoming(&msg("bob", "bob", 30, "hello\nsecond line"), "alice", false);
        assert_eq!(c.rows()[0].id, "bob");
        assert_eq!((c.rows()[0].unread, c.rows()[0].last_text.as_str()), (1, "hello"));
        assert_eq!(c.total_unread(), 2);
        // Seen as it came (the conversation is open and focused): not unread.
        c.incoming(&msg("bob", "bob", 31, "more"), "alice", true);
        assert_eq!(c.get("bob").map(|r| r.unread), Some(1));
        // A copy of our own message from another device is never unread.
        c.incoming(&msg("alice", "dave", 32, "to dave"), "alice", false);
        assert_eq!((c.rows()[0].id.as_str(), c.rows()[0].unread), ("dave", 0));
        c.read("bob");
        assert_eq!(c.total_unread(), 1);
        // Rows read from the history again: what is shown here stays, a
        // newer last message comes in, and unknown rows join.
        let row = |id: &str, unread, text: &str, at| Row {
            id: id.into(),
            title: id.into(),
            unread,
            last_text: text.into(),
            last_at_ms: at,
            muted: false,
        };
        c.merge(vec![row("bob", 3, "older", 1), row("carol", 1, "newer", 99), row("erin", 2, "hi", 50)]);
        assert_eq!(c.get("bob").map(|r| (r.unread, r.last_text.as_str())), Some((0, "more")));
        assert_eq!(c.get("carol").map(|r| (r.title.as_str(), r.last_text.as_str())), Some(("Carol", "newer")));
        assert_eq!(c.get("erin").map(|r| r.unread), Some(2));
        assert_eq!(c.rows()[0].id, "carol", "newest first");
    }
}
