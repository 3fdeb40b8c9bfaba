//! One conversation's messages as the app shows them: in order, grouped
//! by day, with delivery ticks, the path each took and reactions. Loaded a
//! page at a time from the history (older pages as the user scrolls up),
//! then kept current by the node's events.

use super::event::{Body, Incoming};
use skein_node::history::StoredMessage;

/// One message on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Message id (hex).
    pub id: String,
    /// Sender.
    pub from: String,
    /// Sent by this user.
    pub outgoing: bool,
    /// When it was written, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// Content.
    pub body: Body,
    /// `queued`, `sent`, `delivered`, `read` (outgoing), `received`.
    pub state: String,
    /// `direct`, `relayed` or `mailbox`.
    pub path: Option<String>,
    /// Reactions: each emoji with who reacted, in first-seen order.
    pub reactions: Vec<(String, Vec<String>)>,
}

impl Msg {
    /// A message from the history, with its reactions.
    pub fn stored(m: &StoredMessage, reactions: &[(String, String)]) -> Option<Msg> {
        use skein_proto::peer::MessageBody;
        let body = match &m.body {
            MessageBody::Text(t) => Body::Text(t.clone()),
            MessageBody::File(f) => Body::File { name: f.name.clone(), size: f.size },
            MessageBody::Image(i) => Body::Image {
                name: i.file.name.clone(),
                size: i.file.size,
                dims: (i.width, i.height),
                thumbnail: i.thumbnail.clone(),
            },
            MessageBody::Reaction(_) => return None,
            MessageBody::App(p) => match &p.card {
                // Its text and image above its card.
                Some(card) => {
                    let rest = MessageBody::App(Box::new(skein_proto::app::AppPost { card: None, ..(**p).clone() }));
                    let text = Some(skein_node::json::body_line(&rest)).filter(|t| !t.is_empty());
                    Body::Card { text, card: Box::new(card.clone()) }
                }
                None => Body::Text(skein_node::json::body_line(&m.body)),
            },
            MessageBody::Card(c) => Body::Card { text: None, card: c.clone() },
            MessageBody::Call(_) => Body::Text(skein_node::json::body_line(&m.body)),
        };
        let mut msg = Msg {
            id: m.id.to_hex(),
            from: m.from_user.clone(),
            outgoing: m.outgoing,
            sent_at_ms: m.sent_at_ms,
            body,
            state: m.state.clone(),
            path: m.path.clone(),
            reactions: Vec::new(),
        };
        for (emoji, user) in reactions {
            msg.react(emoji, user, true);
        }
        Some(msg)
    }

    /// A message that just came in.
    pub fn incoming(m: &Incoming, me: &str) -> Msg {
        Msg {
            id: m.id.clone(),
            from: m.from.clone(),
            outgoing: m.from == me,
            sent_at_ms: m.sent_at_ms,
            body: m.body.clone(),
            state: "received".into(),
            path: Some(m.path.clone()),
            reactions: Vec::new(),
        }
    }

    /// A group's change line, placed among the messages by its time.
    pub fn line(id: String, at_ms: u64, text: String) -> Msg {
        Msg {
            id,
            from: String::new(),
            outgoing: false,
            sent_at_ms: at_ms,
            body: Body::Line(text),
            state: String::new(),
            path: None,
            reactions: Vec::new(),
        }
    }

    /// Adds (or takes back) `user`'s `emoji`.
    pub fn react(&mut self, emoji: &str, user: &str, add: bool) {
        match self.reactions.iter().position(|(e, _)| e == emoji) {
            Some(i) => {
                let users = &mut self.reactions[i].1;
                users.retain(|u| u != user);
                if add {
                    users.push(user.to_owned());
                }
                if users.is_empty() {
                    self.reactions.remove(i);
                }
            }
            None if add => self.reactions.push((emoji.to_owned(), vec![user.to_owned()])),
            None => {}
        }
    }

    /// The tick shown beside an outgoing message: ✓ delivered, ✓✓ read,
    /// a clock while it waits.
    pub fn tick(&self) -> Option<&'static str> {
        if !self.outgoing {
            return None;
        }
        Some(match self.state.as_str() {
            "read" => "✓✓",
            "delivered" => "✓",
            "failed" => "!",
            _ => "🕓",
        })
    }
}

/// A conversation on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// Its address: a user name or `#groupid`.
    pub id: String,
    /// What it is called.
    pub title: String,
    /// Messages, oldest first.
    pub messages: Vec<Msg>,
    /// The history position of the oldest message loaded (to page back from).
    pub oldest_seq: Option<i64>,
    /// Every older message is loaded.
    pub complete: bool,
}

/// A day's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day<'a> {
    /// Its label: "Today", "Yesterday" or the date.
    pub label: String,
    /// Its messages, oldest first.
    pub messages: &'a [Msg],
}

impl Chat {
    /// An empty conversation.
    pub fn new(id: &str, title: &str) -> Self {
        Self { id: id.to_owned(), title: title.to_owned(), messages: Vec::new(), oldest_seq: None, complete: false }
    }

    /// Adds a page of older messages in front (those already shown are skipped).
    pub fn prepend(&mut self, page: Vec<Msg>, oldest_seq: Option<i64>, complete: bool) {
        let mut page: Vec<Msg> = page.into_iter().filter(|m| !self.messages.iter().any(|x| x.id == m.id)).collect();
        page.append(&mut self.messages);
        self.messages = page;
        if oldest_seq.is_some() {
            self.oldest_seq = oldest_seq;
        }
        self.complete = complete;
    }

    /// Brings the newest page up to date: new messages are added, known
    /// ones take the history's state (ticks, path, reactions).
    pub fn merge(&mut self, page: Vec<Msg>) {
        for m in page {
            match self.messages.iter_mut().find(|x| x.id == m.id) {
                Some(x) => *x = m,
                None => self.push(m),
            }
        }
    }

    /// Adds a new message (once, however often it is reported).
    pub fn push(&mut self, m: Msg) {
        if let Some(x) = self.messages.iter_mut().find(|x| x.id == m.id) {
            if m.outgoing {
                x.state = m.state;
                x.path = m.path.or(x.path.take());
            }
            return;
        }
        // Messages are in time order; one written earlier goes before later ones.
        let at = self.messages.iter().rposition(|x| x.sent_at_ms <= m.sent_at_ms).map_or(0, |i| i + 1);
        self.messages.insert(at, m);
    }

    /// A receipt: our messages `ids` reached `kind` (`delivered`, `read`).
    pub fn receipt(&mut self, kind: &str, ids: &[String]) {
        let rank = |s: &str| match s {
            "read" => 3,
            "delivered" => 2,
            "sent" => 1,
            _ => 0,
        };
        for m in self.messages.iter_mut().filter(|m| m.outgoing && ids.contains(&m.id)) {
            if rank(kind) > rank(&m.state) {
                m.state = kind.to_owned();
            }
        }
    }

    /// A reaction to one of the messages.
    pub fn reaction(&mut self, id: &str, by: &str, emoji: &str, removed: bool) {
        if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
            m.react(emoji, by, !removed);
        }
    }

    /// The messages grouped by local day; `today` is today's local date.
    pub fn days(&self, offset: time::UtcOffset, today: time::Date) -> Vec<Day<'_>> {
        let day_of = |ms: u64| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map(|t| t.to_offset(offset).date())
                .unwrap_or(today)
        };
        let mut days = Vec::new();
        let mut start = 0;
        for i in 1..=self.messages.len() {
            let ends = i == self.messages.len()
                || day_of(self.messages[i].sent_at_ms) != day_of(self.messages[start].sent_at_ms);
            if ends {
                let date = day_of(self.messages[start].sent_at_ms);
                days.push(Day { label: day_label(date, today), messages: &self.messages[start..i] });
                start = i;
            }
        }
        days
    }
}

/// "Today", "Yesterday", a weekday within the week, else the date.
pub fn day_label(date: time::Date, today: time::Date) -> String {
    let ago = (today - date).whole_days();
    match ago {
        0 => "Today".to_owned(),
        1 => "Yesterday".to_owned(),
        2..=6 => date.weekday().to_string(),
        _ if date.year() == today.year() => format!("{} {} {}", date.weekday(), date.day(), date.month()),
        _ => format!("{} {} {}", date.day(), date.month(), date.year()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn msg(id: &str, at: u64, outgoing: bool) -> Msg {
        Msg {
            id: id.into(),
            from: if outgoing { "alice".into() } else { "bob".into() },
            outgoing,
            sent_at_ms: at,
            body: Body::Text(id.into()),
            state: if outgoing { "sent".into() } else { "received".into() },
            path: Some("direct".into()),
            reactions: Vec::new(),
        }
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn messages_group_by_day_and_keep_one_order_whatever_order_they_came_in() {
        let mut c = Chat::new("bob", "Bob");
        let today = date!(2026 - 11 - 30);
        let midnight = 1_795_996_800_000; // 2026-11-30 00:00 UTC
        c.push(msg("b", midnight + 3_600_000, false));
        c.push(msg("a", midnight - DAY + 60_000, true));
        c.push(msg("b", midnight + 3_600_000, false));
        c.prepend(vec![msg("old", midnight - 10 * DAY, false), msg("a", midnight - DAY + 60_000, true)], Some(1), true);
        let ids: Vec<&str> = c.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["old", "a", "b"], "each once, oldest first");
        let days = c.days(time::UtcOffset::UTC, today);
        let labels: Vec<&str> = days.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["Friday 20 November", "Yesterday", "Today"]);
        assert!(c.complete);
    }

    #[test]
    fn receipts_move_ticks_forward_only_and_reactions_toggle() {
        let mut c = Chat::new("bob", "Bob");
        c.push(msg("a", 1, true));
        c.push(msg("b", 2, false));
        assert_eq!(c.messages[0].tick(), Some("🕓"));
        c.receipt("read", &["a".into(), "b".into()]);
        assert_eq!((c.messages[0].tick(), c.messages[1].state.as_str()), (Some("✓✓"), "received"));
        c.receipt("delivered", &["a".into()]);
        assert_eq!(c.messages[0].tick(), Some("✓✓"), "a late delivery receipt does not undo the read");
        c.reaction("b", "alice", "👍", false);
        c.reaction("b", "carol", "👍", false);
        assert_eq!(c.messages[1].reactions, vec![("👍".to_owned(), vec!["alice".to_owned(), "carol".to_owned()])]);
        c.reaction("b", "alice", "👍", true);
        c.reaction("b", "carol", "👍", true);
        assert!(c.messages[1].reactions.is_empty());
    }
}
