//! Call media for Skein: GStreamer pipelines that capture and encode
//! ([`capture`]) and decode and play ([`playback`]), the capture devices
//! ([`devices`]) and video codecs ([`codecs`]), and the logic between them and the network, free of IO:
//! the receiver's jitter buffer ([`jitter`]) and measurements ([`stats`]),
//! and the sender's bitrate control ([`rate`]).
//!
//! The node carries the encoded frames between devices on peer streams
//! (`skein_node::calls`); nothing here touches the network.

pub mod capture;
pub mod codecs;
pub mod devices;
pub mod elements;
mod frames;
pub mod jitter;
pub mod playback;
pub mod rate;
pub mod stats;
mod watch;

pub use codecs::VideoCodec;
pub use elements::MediaError;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Opus audio.
    Audio,
    /// Video in this codec.
    Video(VideoCodec),
}

/// A decoded picture, as RGBA rows.
#[derive(Clone)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height × 4` bytes.
    pub rgba: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}×{})", self.width, self.height)
    }
}

/// The elements a call needs, for a check before one starts.
pub const NEEDED: &[&str] = &[
    "appsrc",
    "appsink",
    "opusenc",
    "opusdec",
    "vp8enc",
    "vp8dec",
    "audioconvert",
    "audioresample",
    "videoconvert",
    "videoscale",
    "videorate",
    "volume",
    "valve",
    "tee",
    "funnel",
    "queue",
    "capsfilter",
    "fakesink",
];

/// Now, µs since the Unix epoch.
pub fn unix_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}
