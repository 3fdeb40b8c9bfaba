//! State snapshots for checking the app from outside (tests, support):
//! with `SKEIN_DESK_SNAPSHOTS=DIR`, what the window shows is kept in
//! `DIR/state.json` (the screen, the conversation list, the open
//! conversation's messages, the composer, who is online, the focus, the
//! plugins' commands and answers),
//! rewritten within 200 ms of a change. Pictures of the window are taken
//! from the display (`import -window`): iced's own screenshot leaves out
//! the composer's text.

use crate::app::{App, Screen};
use crate::model::event::Body;
use serde_json::{Value, json};
use std::path::Path;

/// What the app shows, as JSON.
pub fn state(app: &App) -> Value {
    match &app.screen {
        Screen::Work(w) => {
            let conversations: Vec<Value> = w
                .conversations
                .rows()
                .iter()
                .map(|r| json!({"id": r.id, "title": r.title, "unread": r.unread, "last_text": r.last_text}))
                .collect();
            let chat = w.chat.as_ref().map(|c| {
                let messages: Vec<Value> = c
                    .messages
                    .iter()
                    .map(|m| {
                        let (kind, text) = match &m.body {
                            Body::Text(t) => ("text", t.clone()),
                            Body::File { name, .. } => ("file", name.clone()),
                            Body::Image { name, .. } => ("image", name.clone()),
                            Body::Line(t) => ("line", t.clone()),
                            Body::Card { .. } => ("card", m.body.line()),
                        };
                        let transfer =
                            w.transfers.get(&m.id).map(|t| json!({"state": t.state, "done": t.done, "size": t.size}));
                        json!({"id": m.id, "from": m.from, "kind": kind, "text": text, "state": m.state, "path": m.path,
                            "reactions": m.reactions, "transfer": transfer})
                    })
                    .collect();
                json!({"id": c.id, "title": c.title, "messages": messages})
            });
            json!({"screen": app.screen_name(), "me": w.me, "status": w.status, "connection": format!("{:?}", w.connection),
                "conversations": conversations, "chat": chat, "focused": w.focused, "error": w.error,
                "online": w.directory.people_by_department("").values().flatten()
                    .filter(|p| p.status != "offline").map(|p| p.name.clone()).collect::<Vec<_>>(),
                "composer": w.composer.text(), "query": w.query, "marked": w.marked, "results_for": w.results_for(),
                "results": w.results.iter().map(|h| json!({"conversation": h.conversation, "id": h.id.to_hex(), "text": h.text})).collect::<Vec<_>>(),
                "groups": w.groups,
                "commands": w.plugins.commands.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                "completions": w.plugins.completing(w.composer.text().trim_end_matches('\n')).iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                "plugin_reply": w.plugin_reply.as_ref().map(|(p, t)| json!({"plugin": p, "text": t})),
                "devices": w.devices.as_ref().map(|d| json!({"loaded": d.loaded, "microphone": d.microphone,
                    "camera": d.camera, "microphones": d.microphones, "cameras": d.cameras, "test_source": d.test_source})),
                "call": w.call.as_ref().map(|c| json!({"id": c.id, "with": c.with, "state": c.state, "path": c.path,
                    "incoming": c.incoming, "remote_frames": c.remote_frames(), "self_view": c.local.is_some(),
                    "muted": c.muted, "camera": c.camera, "group": c.group,
                    "participants": c.participants.iter().map(|p| json!({"user": p.user, "state": p.state,
                        "frames": c.frames_from.get(&p.user).copied().unwrap_or(0)})).collect::<Vec<_>>()}))})
        }
        Screen::Login(l) => json!({"screen": "login", "tracker": l.tracker, "user": l.user,
            "failure": l.failure.as_ref().map(|f| f.message.clone()),
            "fingerprint": l.presented.as_ref().map(|c| c.fingerprint.clone())}),
        Screen::Starting => json!({"screen": "starting"}),
        Screen::Failed(e) => json!({"screen": "failed", "error": e}),
    }
}

/// Writes `state` to `dir/state.json`, whole (through a temporary file), so
/// a reader never sees half of it.
pub async fn save(dir: &Path, state: Value) -> Result<(), String> {
    let (json, partial) = (dir.join("state.json"), dir.join("state.json.partial"));
    tokio::fs::create_dir_all(dir).await.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    tokio::fs::write(&partial, state.to_string()).await.map_err(|e| format!("cannot save {}: {e}", json.display()))?;
    tokio::fs::rename(&partial, &json).await.map_err(|e| format!("cannot save {}: {e}", json.display()))
}
