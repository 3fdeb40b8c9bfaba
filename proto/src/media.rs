//! Call media on peer streams: each side of a connected call sends its own
//! audio and video to the other over the authenticated peer connection,
//! on raw streams of three protocols.
//!
//! - **Audio** ([`AUDIO_PROTOCOL`]): one stream for the call, one Opus
//!   packet per frame. Audio is never dropped by the sender.
//! - **Video** ([`VIDEO_PROTOCOL`]): as Media over QUIC does it, a new
//!   stream per group of pictures (a keyframe and the frames that depend on
//!   it). When the next group starts while the last one's stream still
//!   has frames waiting, that stream is reset rather than let the new group
//!   queue behind it: a loss never holds the picture up past one group.
//! - **Control** ([`CONTROL_PROTOCOL`]): the receiver's reports (what it
//!   got and lost, for the sender's bitrate) and keyframe requests.
//!
//! Every stream opens with a [`StreamHead`] naming the call; then come
//! length-prefixed postcard frames ([`crate::frame`]) of [`MediaPacket`]s
//! or [`Feedback`], each at most [`MAX_MEDIA_FRAME`] bytes.

use crate::bytes::CallId;
use serde::{Deserialize, Serialize};

/// The audio stream's protocol.
pub const AUDIO_PROTOCOL: &str = "/skein/call/audio/1";
/// The protocol of the video streams (one per group of pictures).
pub const VIDEO_PROTOCOL: &str = "/skein/call/video/1";
/// The control stream's protocol.
pub const CONTROL_PROTOCOL: &str = "/skein/call/control/1";
/// The largest frame on a media stream (a keyframe at the highest
/// resolution and bitrate fits with room to spare).
pub const MAX_MEDIA_FRAME: usize = 512 * 1024;

/// The first frame of every media stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHead {
    /// The call the stream belongs to.
    pub call: CallId,
    /// For a video stream, the group of pictures' number, from 0; 0 on others.
    pub group: u32,
}

/// One encoded frame of audio or video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaPacket {
    /// The sender's number for this frame, per kind, from 0, one more per frame.
    pub seq: u32,
    /// When the frame was captured, µs since the Unix epoch (the receiver
    /// measures glass-to-glass latency from it).
    pub capture_us: u64,
    /// How long it plays, µs.
    pub duration_us: u32,
    /// A keyframe (video), which a decoder can start from.
    pub keyframe: bool,
    /// The encoded frame (Opus or VP8).
    pub data: Vec<u8>,
}

/// What a receiver tells the sender, on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Feedback {
    /// What arrived over the last report period.
    Report(ReceiverReport),
    /// Video was lost or could not be decoded: send a keyframe.
    KeyframeRequest,
}

/// A receiver's report over one period (about a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverReport {
    /// How long the period was, ms.
    pub period_ms: u32,
    /// Video bytes received in it.
    pub video_bytes: u64,
    /// Video frames expected in it (by sequence number).
    pub video_expected: u32,
    /// Video frames that did not arrive (or came too late to decode).
    pub video_lost: u32,
    /// Audio packets expected in it.
    pub audio_expected: u32,
    /// Audio packets that did not arrive in time.
    pub audio_lost: u32,
    /// Interarrival jitter of audio, µs.
    pub jitter_us: u32,
}
