//! JSON shapes of the CLI's `--json` output and the daemon's event lines.
//! Scripts outside the project read these; field names are stable.

use serde_json::{Value, json};
use skein_proto::control::{PresenceEntry, UserEntry};
use skein_proto::file::FileOffer;
use skein_proto::peer::MessageBody;

/// One user's presence.
pub fn presence(e: &PresenceEntry) -> Value {
    json!({
        "user": e.user,
        "status": e.status.as_str(),
        "note": e.note,
        "last_seen_ms": e.last_seen_ms,
        "devices": e.devices,
    })
}

/// A presence-change event line.
pub fn presence_event(e: &PresenceEntry) -> Value {
    let mut v = presence(e);
    v["type"] = json!("presence");
    v
}

/// A department of the tree.
pub fn department(d: &skein_proto::control::Department) -> Value {
    json!({"path": d.path, "parent": d.parent, "members": d.members})
}

/// A directory entry.
pub fn user(u: &UserEntry) -> Value {
    json!({
        "name": u.name,
        "display_name": u.display_name,
        "department": u.department,
        "title": u.title,
        "email": u.email,
        "phone": u.phone,
        "disabled": u.disabled,
        "status": u.status.as_str(),
        "last_seen_ms": u.last_seen_ms,
    })
}

/// Adds a message body's fields: `text` for text; `text` (null) and a
/// `file` or `image` object for offers; `reaction` for a reaction.
pub fn add_body(v: &mut Value, body: &MessageBody) {
    use base64::Engine;
    let offer = |f: &FileOffer| json!({"name": f.name, "size": f.size, "root": f.root.to_hex()});
    match body {
        MessageBody::Text(t) => v["text"] = json!(t),
        MessageBody::File(f) => {
            v["text"] = Value::Null;
            v["file"] = offer(f);
        }
        MessageBody::Image(i) => {
            v["text"] = Value::Null;
            let mut img = offer(&i.file);
            img["format"] = json!(i.format);
            img["width"] = json!(i.width);
            img["height"] = json!(i.height);
            img["thumbnail_jpeg_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&i.thumbnail));
            v["image"] = img;
        }
        MessageBody::Reaction(r) => {
            v["text"] = Value::Null;
            v["reaction"] = json!({"to": r.target.to_hex(), "emoji": r.emoji, "removed": r.remove});
        }
        MessageBody::App(p) => {
            v["text"] = json!(p.text);
            v["app"] = json!({"name": p.app});
            if let Some(c) = &p.card {
                v["card"] = card_json(c);
            }
            if let Some(i) = &p.image {
                v["image"] = json!({
                    "format": i.mime, "width": i.width, "height": i.height, "size": i.bytes.len(),
                    "base64": base64::engine::general_purpose::STANDARD.encode(&i.bytes),
                });
            }
        }
        MessageBody::Card(c) => {
            v["text"] = Value::Null;
            v["card"] = card_json(c);
        }
        MessageBody::Call(r) => {
            v["text"] = json!(call_line(r));
            v["call"] = call_json(r);
        }
    }
}

/// A one-line rendering of a message body for people.
pub fn body_line(body: &MessageBody) -> String {
    match body {
        MessageBody::Text(t) => t.clone(),
        MessageBody::File(f) => format!("[file] {} ({})", f.name, crate::transfer::disk::human(f.size)),
        MessageBody::Image(i) => {
            format!("[image] {} {}×{} ({})", i.file.name, i.width, i.height, crate::transfer::disk::human(i.file.size))
        }
        MessageBody::Reaction(r) => format!("[{} {}]", if r.remove { "took back" } else { "reacted" }, r.emoji),
        MessageBody::App(p) => {
            let mut parts: Vec<String> = p.text.iter().cloned().collect();
            parts.extend(p.card.as_ref().map(card_line));
            if let Some(i) = &p.image {
                parts.push(format!(
                    "[image] {}×{} ({})",
                    i.width,
                    i.height,
                    crate::transfer::disk::human(i.bytes.len() as u64)
                ));
            }
            parts.join(" ")
        }
        MessageBody::Card(c) => card_line(c),
        MessageBody::Call(r) => call_line(r),
    }
}

/// A call's history line: `[call] video call, 2:31`, `[call] missed audio call`…
pub fn call_line(r: &skein_proto::call::CallRecord) -> String {
    use skein_proto::call::{CallOutcome, Media};
    let kind = match r.media {
        Media::Audio => "audio call",
        Media::Video => "video call",
    };
    match r.outcome {
        CallOutcome::Answered { duration_ms } => format!("[call] {kind}, {}", duration(duration_ms)),
        CallOutcome::Missed => format!("[call] missed {kind}"),
        CallOutcome::Declined => format!("[call] {kind} declined"),
        CallOutcome::Busy => format!("[call] {kind} not answered: busy"),
    }
}

/// `m:ss`, or `h:mm:ss` from an hour.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn call_json(r: &skein_proto::call::CallRecord) -> Value {
    use skein_proto::call::{CallOutcome, Media};
    let (outcome, duration_ms) = match r.outcome {
        CallOutcome::Answered { duration_ms } => ("answered", Some(duration_ms)),
        CallOutcome::Missed => ("missed", None),
        CallOutcome::Declined => ("declined", None),
        CallOutcome::Busy => ("busy", None),
    };
    let media = if r.media == Media::Video { "video" } else { "audio" };
    json!({"id": r.call.to_hex(), "media": media, "outcome": outcome, "duration_ms": duration_ms})
}

/// A card as one line: `[card] TITLE — TEXT (NAME: VALUE; …) [LABEL: URL]`.
pub fn card_line(c: &skein_proto::app::Card) -> String {
    let fields: Vec<String> = c.fields.iter().map(|f| format!("{}: {}", f.name, f.value)).collect();
    let mut card = format!("[card] {}", c.title);
    if let Some(t) = &c.text {
        card.push_str(&format!(" — {t}"));
    }
    if !fields.is_empty() {
        card.push_str(&format!(" ({})", fields.join("; ")));
    }
    for b in &c.buttons {
        card.push_str(&format!(" [{}: {}]", b.label, b.url));
    }
    card
}

fn card_json(c: &skein_proto::app::Card) -> Value {
    json!({
        "title": c.title,
        "text": c.text,
        "fields": c.fields.iter().map(|f| json!({"name": f.name, "value": f.value})).collect::<Vec<_>>(),
        "buttons": c.buttons.iter().map(|b| json!({"label": b.label, "url": b.url})).collect::<Vec<_>>(),
    })
}

/// A stored message for `history --json`, with its reactions as
/// (emoji, user) pairs: `"reactions": {"👍": ["bob"]}`.
pub fn stored_message(
    m: &crate::history::StoredMessage,
    reactions: &[(String, String)],
    members: &[(String, String)],
) -> Value {
    let mut by_emoji = serde_json::Map::new();
    for (emoji, user) in reactions {
        let users = by_emoji.entry(emoji.clone()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = users {
            list.push(json!(user));
        }
    }
    let mut v = json!({
        "id": m.id.to_hex(),
        "from": m.from_user,
        "to": m.to_user,
        "sent_at_ms": m.sent_at_ms,
        "outgoing": m.outgoing,
        "state": m.state,
        "path": m.path,
        "delivered_at_ms": m.delivered_at_ms,
        "read_at_ms": m.read_at_ms,
        "reactions": by_emoji,
    });
    if !members.is_empty() {
        // A group message sent from here: where it stands with each member.
        let states: serde_json::Map<String, Value> = members.iter().map(|(u, s)| (u.clone(), json!(s))).collect();
        v["members"] = Value::Object(states);
    }
    add_body(&mut v, &m.body);
    v
}

/// `HH:MM:SS` (UTC) of a timestamp, for the plain-text history.
pub fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// "3 min ago" style rendering of a last-seen time for people.
pub fn ago(last_seen_ms: u64, now_ms: u64) -> String {
    if last_seen_ms == 0 {
        return "never".into();
    }
    let s = now_ms.saturating_sub(last_seen_ms) / 1000;
    match s {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_naturally() {
        assert_eq!(ago(0, 5), "never");
        assert_eq!(ago(1_000, 30_000), "just now");
        assert_eq!(ago(1, 1 + 180_000), "3 min ago");
        assert_eq!(ago(1, 1 + 7_200_000), "2 h ago");
        assert_eq!(ago(1, 1 + 3 * 86_400_000), "3 d ago");
    }
}
