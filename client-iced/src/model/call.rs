//! The call as the window shows it: who with, where it stands, the
//! controls' state, the latest statistics, and the newest pictures (each
//! other participant's and the self-view). Built from the node's `call`
//! and `call_stats` events and the decoded frames.

use iced::widget::image::Handle;
use serde_json::Value;
use std::collections::BTreeMap;

/// Someone else in the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Their user name.
    pub user: String,
    /// `calling`, `ringing`, `answering`, `connected` or `ended`.
    pub state: String,
}

/// One call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its id.
    pub id: String,
    /// The other user, or the group's conversation (`#` and its id).
    pub with: String,
    /// A group call.
    pub group: bool,
    /// Everyone else in it (the other user, in a one-to-one call).
    pub participants: Vec<Participant>,
    /// `calling`, `ringing`, `answering`, `connected` or `ended`.
    pub state: String,
    /// It rings here (the other side placed it).
    pub incoming: bool,
    /// `video` or `audio`.
    pub media: String,
    /// `direct` or `relayed`, once connected.
    pub path: Option<String>,
    /// The microphone is muted.
    pub muted: bool,
    /// The camera is on.
    pub camera: bool,
    /// The latest `call_stats` event of each other participant.
    pub stats: BTreeMap<String, Value>,
    /// The statistics show.
    pub show_stats: bool,
    /// The newest picture from each other participant.
    pub remote: BTreeMap<String, Handle>,
    /// The newest picture of our own camera.
    pub local: Option<Handle>,
    /// Pictures shown from each other participant so far.
    pub frames_from: BTreeMap<String, u64>,
}

impl Call {
    /// A call from its first event.
    pub fn from_event(v: &Value) -> Option<Call> {
        let s = |k: &str| v[k].as_str().map(str::to_owned);
        Some(Call {
            id: s("call")?,
            with: s("with")?,
            group: v.get("group").is_some_and(|g| !g.is_null()),
            participants: participants(v),
            state: s("state")?,
            incoming: v["direction"] == "incoming",
            media: s("media").unwrap_or_else(|| "video".into()),
            path: s("path"),
            muted: false,
            camera: v["media"] != "audio",
            stats: BTreeMap::new(),
            show_stats: false,
            remote: BTreeMap::new(),
            local: None,
            frames_from: BTreeMap::new(),
        })
    }

    /// Who placed the call: the first other participant of a call that
    /// rang here.
    pub fn caller(&self) -> Option<&str> {
        self.participants.first().filter(|_| self.incoming).map(|p| p.user.as_str())
    }

    /// Pictures shown from the others so far, in all.
    pub fn remote_frames(&self) -> u64 {
        self.frames_from.values().sum()
    }

    /// The others in the call now (connecting or connected).
    pub fn present(&self) -> impl Iterator<Item = &Participant> {
        self.participants.iter().filter(|p| p.state != "ended")
    }

    /// A picture from `from`.
    pub fn picture_from(&mut self, from: String, picture: Handle) {
        *self.frames_from.entry(from.clone()).or_default() += 1;
        self.remote.insert(from, picture);
    }

    /// A later event about this call.
    pub fn update(&mut self, v: &Value) {
        if let Some(state) = v["state"].as_str() {
            self.state = state.to_owned();
        }
        if let Some(p) = v["path"].as_str() {
            self.path = Some(p.to_owned());
        }
        if v.get("participants").is_some() {
            self.participants = participants(v);
            // Those who left leave the picture.
            let present: Vec<String> = self.present().map(|p| p.user.clone()).collect();
            self.remote.retain(|u, _| present.contains(u));
        }
    }

    /// A statistics event.
    pub fn stats(&mut self, v: &Value) {
        if let Some(p) = v["path"].as_str().filter(|_| !self.group) {
            self.path = Some(p.to_owned());
        }
        self.muted = v["muted"].as_bool().unwrap_or(self.muted);
        self.camera = v["camera"].as_bool().unwrap_or(self.camera);
        if let Some(with) = v["with"].as_str() {
            self.stats.insert(with.to_owned(), v.clone());
        }
    }

    /// How long it has been connected, `m:ss`.
    pub fn duration(&self) -> String {
        let secs = self.stats.values().filter_map(|s| s["seconds"].as_u64()).max().unwrap_or(0);
        skein_node::json::duration(secs * 1000)
    }

    /// The statistics as lines for people: each other participant's, under
    /// their name in a group call.
    pub fn stats_lines(&self) -> Vec<String> {
        if self.stats.is_empty() {
            return vec!["Measuring…".into()];
        }
        let mut lines = Vec::new();
        for (with, s) in &self.stats {
            if self.group {
                lines.push(with.clone());
            }
            lines.extend(stats_lines(s));
        }
        lines
    }
}

/// The others in a call, from its event.
fn participants(v: &Value) -> Vec<Participant> {
    let list = v["participants"].as_array().map_or(&[][..], |p| p.as_slice());
    list.iter()
        .filter_map(|p| {
            Some(Participant { user: p["user"].as_str()?.to_owned(), state: p["state"].as_str()?.to_owned() })
        })
        .collect()
}

/// One participant's figures as lines for people.
fn stats_lines(s: &Value) -> Vec<String> {
    let num = |k: &str| s[k].as_f64().map_or("–".to_owned(), |x| format!("{x}"));
    // "Video H.264 …", when the codec is known.
    let codec = |k: &str| {
        let codec = s[k].as_str().and_then(|c| c.parse::<skein_media::VideoCodec>().ok());
        codec.map_or(String::new(), |c| format!(" {}", c.label()))
    };
    vec![
        format!("Path {} · round trip {} ms", s["path"].as_str().unwrap_or("?"), num("rtt_ms")),
        format!("Loss {}% · jitter {} ms", num("loss_pct"), num("jitter_ms")),
        format!("Audio {} kbit/s · latency {} ms", num("audio_kbps"), num("audio_latency_ms")),
        format!(
            "Video{} {} kbit/s · {} fps · latency {} ms",
            codec("video_codec"),
            num("video_kbps"),
            num("fps"),
            num("video_latency_ms")
        ),
        format!("Sending{} video at {} kbit/s", codec("send_video_codec"), num("send_video_kbps")),
    ]
}

/// A decoded picture as an image the window can draw.
pub fn picture(f: skein_media::Frame) -> Handle {
    Handle::from_rgba(f.width, f.height, f.rgba)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame() -> Handle {
        Handle::from_rgba(1, 1, vec![0, 0, 0, 255])
    }

    #[test]
    fn a_group_call_keeps_each_participants_pictures_and_figures_until_they_leave() {
        let first = json!({"type": "call", "call": "c1", "with": "#ab", "group": "#ab", "state": "ringing",
            "direction": "incoming", "media": "video",
            "participants": [{"user": "alice", "state": "ringing"}]});
        let mut c = Call::from_event(&first).expect("a call");
        assert!(c.group);
        assert_eq!(c.caller(), Some("alice"));
        c.update(&json!({"state": "connected", "participants": [
            {"user": "alice", "state": "connected"}, {"user": "carol", "state": "connected"}]}));
        c.picture_from("alice".into(), frame());
        c.picture_from("carol".into(), frame());
        c.picture_from("carol".into(), frame());
        c.stats(&json!({"with": "alice", "seconds": 3, "path": "direct"}));
        c.stats(&json!({"with": "carol", "seconds": 2, "path": "relayed", "video_codec": "h264",
            "send_video_codec": "vp8", "video_kbps": 480.5}));
        assert_eq!((c.remote.len(), c.remote_frames(), c.frames_from["carol"]), (2, 3, 2));
        assert_eq!(c.duration(), "0:03");
        let lines = c.stats_lines();
        assert_eq!((lines[0].as_str(), lines[6].as_str()), ("alice", "carol"), "{lines:?}");
        assert!(lines[4].starts_with("Video – kbit/s"), "no codec said, none shown: {lines:?}");
        assert!(lines[10].starts_with("Video H.264 480.5 kbit/s") && lines[11] == "Sending VP8 video at – kbit/s");
        // Alice leaves; carol stays.
        c.update(&json!({"state": "connected", "participants": [
            {"user": "alice", "state": "ended"}, {"user": "carol", "state": "connected"}]}));
        assert_eq!(c.present().map(|p| p.user.as_str()).collect::<Vec<_>>(), ["carol"]);
        assert!(!c.remote.contains_key("alice") && c.remote.contains_key("carol"));
    }
}
