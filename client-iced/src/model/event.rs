//! The node's events (the JSON objects `skein daemon` prints), parsed into
//! what the app acts on. Anything else is ignored.

use serde_json::Value;

/// A message body as an event or the history carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Text.
    Text(String),
    /// A file offer.
    File {
        /// File name.
        name: String,
        /// Size in bytes.
        size: u64,
    },
    /// A line about the conversation itself ("alice added carol").
    Line(String),
    /// An image offer with its inline thumbnail (JPEG).
    Image {
        /// File name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// Width and height in pixels.
        dims: (u32, u32),
        /// The thumbnail, JPEG bytes.
        thumbnail: Vec<u8>,
    },
    /// A card (from an app, or a user's plugin), with the text posted beside it.
    Card {
        /// The text above the card.
        text: Option<String>,
        /// The card.
        card: Box<skein_proto::app::Card>,
    },
}

impl Body {
    /// A one-line summary for the conversation list.
    pub fn summary(&self) -> String {
        match self {
            Self::Text(t) => t.lines().next().unwrap_or_default().to_owned(),
            Self::File { name, .. } => format!("📎 {name}"),
            Self::Image { .. } => "🖼 Image".to_owned(),
            Self::Line(t) => t.clone(),
            Self::Card { text: Some(t), .. } => t.lines().next().unwrap_or_default().to_owned(),
            Self::Card { card, .. } => card.title.clone(),
        }
    }

    /// The whole body as one line of text, as the history shows it.
    pub fn line(&self) -> String {
        match self {
            Self::Text(t) | Self::Line(t) => t.clone(),
            Self::File { name, .. } | Self::Image { name, .. } => name.clone(),
            Self::Card { text, card } => {
                let card = skein_node::json::card_line(card);
                text.as_ref().map_or(card.clone(), |t| format!("{t} {card}"))
            }
        }
    }
}

/// A message that came in (or a copy of one sent from another device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Message id (hex).
    pub id: String,
    /// Sender.
    pub from: String,
    /// Conversation address: the other user, or `#groupid`.
    pub conversation: String,
    /// The group's name, for a group message.
    pub group: Option<String>,
    /// When it was written, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// `direct`, `relayed` or `mailbox`.
    pub path: String,
    /// Content.
    pub body: Body,
    /// The conversation is muted.
    pub muted: bool,
    /// It mentions this user.
    pub mentions_me: bool,
}

/// One event of the node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    /// Connected to the tracker.
    Connected {
        /// The tracker's address.
        tracker: String,
        /// Our status.
        status: String,
    },
    /// The tracker connection is gone; retrying.
    Disconnected {
        /// Why.
        reason: String,
        /// When the next attempt is, in ms.
        retry_in_ms: u64,
    },
    /// The session ended (signed out elsewhere, disabled, revoked).
    SessionEnded {
        /// Why.
        message: String,
    },
    /// A user's presence changed.
    Presence {
        /// The user.
        user: String,
        /// `online`, `away`, `busy` or `offline`.
        status: String,
        /// Their note.
        note: Option<String>,
    },
    /// A message came in.
    Message(Incoming),
    /// This device sent a message (from any face of the node).
    Sent {
        /// Its conversation.
        conversation: String,
    },
    /// Messages we sent were delivered or read.
    Receipt {
        /// `delivered` or `read`.
        kind: String,
        /// The reader.
        by: String,
        /// Message ids (hex).
        ids: Vec<String>,
    },
    /// A reaction was added or taken back.
    Reaction {
        /// The message (hex id).
        id: String,
        /// Who reacted.
        by: String,
        /// The emoji.
        emoji: String,
        /// Taken back.
        removed: bool,
    },
    /// A transfer moved on.
    Transfer(Value),
    /// A group changed.
    GroupChanged {
        /// The change, as a line ("alice added carol").
        text: String,
    },
    /// A plugin started, failed and is started again, or was disabled.
    Plugin {
        /// The plugin.
        plugin: String,
        /// `running`, `restarting` or `disabled`.
        state: String,
        /// Why it failed.
        reason: Option<String>,
    },
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

/// A message body from an event or a `history --json` entry.
pub fn body(v: &Value) -> Option<Body> {
    // A card, from an app or a user's plugin, with what was posted beside it.
    let card = v.get("card").filter(|c| c.is_object());
    if let Some(card) = card.and_then(|c| serde_json::from_value::<skein_proto::app::Card>(c.clone()).ok()) {
        let text = Some(app_line(v)).filter(|t| !t.is_empty());
        return Some(Body::Card { text, card: Box::new(card) });
    }
    if v.get("app").is_some_and(Value::is_object) {
        return Some(Body::Text(app_line(v)));
    }
    if let Some(t) = v["text"].as_str() {
        return Some(Body::Text(t.to_owned()));
    }
    if let Some(i) = v.get("image").filter(|i| i.is_object()) {
        use base64::Engine;
        let thumbnail = i["thumbnail_jpeg_base64"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        let dim = |k: &str| u32::try_from(i[k].as_u64().unwrap_or(0)).unwrap_or(0);
        return Some(Body::Image {
            name: s(i, "name"),
            size: i["size"].as_u64().unwrap_or(0),
            dims: (dim("width"), dim("height")),
            thumbnail,
        });
    }
    let f = v.get("file").filter(|f| f.is_object())?;
    Some(Body::File { name: s(f, "name"), size: f["size"].as_u64().unwrap_or(0) })
}

/// An app's text and image, as one line (its card is shown apart).
fn app_line(v: &Value) -> String {
    let mut parts: Vec<String> = v["text"].as_str().map(str::to_owned).into_iter().collect();
    if let Some(i) = v.get("image").filter(|i| i.is_object()) {
        parts.push(format!("[image] {}×{}", i["width"].as_u64().unwrap_or(0), i["height"].as_u64().unwrap_or(0)));
    }
    parts.join(" ")
}

/// Parses one event line; `None` for events the app does not act on.
pub fn parse(v: &Value) -> Option<NodeEvent> {
    Some(match v["type"].as_str()? {
        "connected" => NodeEvent::Connected { tracker: s(v, "tracker"), status: s(v, "status") },
        "disconnected" => {
            NodeEvent::Disconnected { reason: s(v, "reason"), retry_in_ms: v["retry_in_ms"].as_u64().unwrap_or(0) }
        }
        "session_ended" => NodeEvent::SessionEnded { message: s(v, "message") },
        "presence" => NodeEvent::Presence {
            user: s(v, "user"),
            status: s(v, "status"),
            note: v["note"].as_str().map(str::to_owned),
        },
        "message" => NodeEvent::Message(Incoming {
            id: s(v, "id"),
            from: s(v, "from"),
            conversation: s(v, "conversation"),
            group: v["group"].as_str().map(str::to_owned),
            sent_at_ms: v["sent_at_ms"].as_u64().unwrap_or(0),
            path: s(v, "path"),
            body: body(v)?,
            muted: v["muted"].as_bool().unwrap_or(false),
            mentions_me: v["mentions_me"].as_bool().unwrap_or(false),
        }),
        "sent" => NodeEvent::Sent { conversation: s(v, "conversation") },
        "receipt" => NodeEvent::Receipt {
            kind: s(v, "kind"),
            by: s(v, "by"),
            ids: v["ids"].as_array().into_iter().flatten().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        },
        "reaction" => NodeEvent::Reaction {
            id: s(v, "id"),
            by: s(v, "by"),
            emoji: s(v, "emoji"),
            removed: v["removed"].as_bool().unwrap_or(false),
        },
        "transfer" => NodeEvent::Transfer(v.clone()),
        "group_changed" => NodeEvent::GroupChanged { text: s(v, "text") },
        "plugin" => NodeEvent::Plugin {
            plugin: s(v, "plugin"),
            state: s(v, "state"),
            reason: v["reason"].as_str().map(str::to_owned),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_events_parse_with_their_body_and_unknown_ones_are_ignored() {
        let v = json!({"type": "message", "id": "ab", "from": "bob", "to": "alice", "conversation": "bob",
            "sent_at_ms": 5, "path": "direct", "text": "hi 👋"});
        let Some(NodeEvent::Message(m)) = parse(&v) else { panic!("a message") };
        assert_eq!((m.from.as_str(), m.body), ("bob", Body::Text("hi 👋".into())));
        let v = json!({"type": "message", "id": "ac", "from": "bob", "conversation": "bob", "text": null,
            "file": {"name": "a.pdf", "size": 10, "root": "00"}});
        let Some(NodeEvent::Message(m)) = parse(&v) else { panic!("a file") };
        assert_eq!(m.body, Body::File { name: "a.pdf".into(), size: 10 });
        assert_eq!(parse(&json!({"type": "hole_punch"})), None);
        assert_eq!(parse(&json!({"no": "type"})), None);
    }
}
