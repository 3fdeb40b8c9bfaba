//! The call as the window shows it: who with, where it stands, the
//! controls' state, the latest statistics, and the newest pictures (the
//! other side's and the self-view). Built from the node's `call` and
//! `call_stats` events and the decoded frames.

use iced::widget::image::Handle;
use serde_json::Value;

/// One call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Its id.
    pub id: String,
    /// The other user.
    pub with: String,
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
    /// The latest `call_stats` event.
    pub stats: Option<Value>,
    /// The statistics show.
    pub show_stats: bool,
    /// The newest picture from the other side.
    pub remote: Option<Handle>,
    /// The newest picture of our own camera.
    pub local: Option<Handle>,
    /// Pictures shown from the other side so far.
    pub remote_frames: u64,
}

impl Call {
    /// A call from its first event.
    pub fn from_event(v: &Value) -> Option<Call> {
        let s = |k: &str| v[k].as_str().map(str::to_owned);
        Some(Call {
            id: s("call")?,
            with: s("with")?,
            state: s("state")?,
            incoming: v["direction"] == "incoming",
            media: s("media").unwrap_or_else(|| "video".into()),
            path: s("path"),
            muted: false,
            camera: v["media"] != "audio",
            stats: None,
            show_stats: false,
            remote: None,
            local: None,
            remote_frames: 0,
        })
    }

    /// A later event about this call.
    pub fn update(&mut self, v: &Value) {
        if let Some(state) = v["state"].as_str() {
            self.state = state.to_owned();
        }
        if let Some(p) = v["path"].as_str() {
            self.path = Some(p.to_owned());
        }
    }

    /// A statistics event.
    pub fn stats(&mut self, v: &Value) {
        if let Some(p) = v["path"].as_str() {
            self.path = Some(p.to_owned());
        }
        self.muted = v["muted"].as_bool().unwrap_or(self.muted);
        self.camera = v["camera"].as_bool().unwrap_or(self.camera);
        self.stats = Some(v.clone());
    }

    /// How long it has been connected, `m:ss`.
    pub fn duration(&self) -> String {
        let secs = self.stats.as_ref().and_then(|s| s["seconds"].as_u64()).unwrap_or(0);
        skein_node::json::duration(secs * 1000)
    }

    /// The statistics as lines for people.
    pub fn stats_lines(&self) -> Vec<String> {
        let Some(s) = &self.stats else { return vec!["Measuring…".into()] };
        let num = |k: &str| s[k].as_f64().map_or("–".to_owned(), |x| format!("{x}"));
        vec![
            format!("Path {} · round trip {} ms", s["path"].as_str().unwrap_or("?"), num("rtt_ms")),
            format!("Loss {}% · jitter {} ms", num("loss_pct"), num("jitter_ms")),
            format!("Audio {} kbit/s · latency {} ms", num("audio_kbps"), num("audio_latency_ms")),
            format!("Video {} kbit/s · {} fps · latency {} ms", num("video_kbps"), num("fps"), num("video_latency_ms")),
            format!("Sending video at {} kbit/s", num("send_video_kbps")),
        ]
    }
}

/// A decoded picture as an image the window can draw.
pub fn picture(f: skein_media::Frame) -> Handle {
    Handle::from_rgba(f.width, f.height, f.rgba)
}
