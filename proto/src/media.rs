//! Call media on peer streams: each side of a connected call sends its own
//! audio and video to the other over the authenticated peer connection,
//! on raw streams of three protocols.
//!
//! - **Audio** ([`AUDIO_PROTOCOL`]): one stream for the call, one Opus
//!   packet per frame. Audio is never dropped by the sender.
//! - **Video** ([`VIDEO_PROTOCOL`] for VP8, [`VIDEO_H264_PROTOCOL`] for
//!   H.264): as Media over QUIC does it, a new stream per group of pictures
//!   (a keyframe and the frames that depend on it). When the next group
//!   starts while the last one's stream still has frames waiting, that
//!   stream is reset rather than let the new group queue behind it: a loss
//!   never holds the picture up past one group. The protocol names the
//!   codec, so a group is decoded by the right decoder from its first frame.
//! - **Control** ([`CONTROL_PROTOCOL`]): the video codecs the receiver
//!   decodes (its first word), then its reports (what it got and lost, for
//!   the sender's bitrate) and keyframe requests. Video is VP8, which every
//!   node decodes, until the receiver has said it decodes H.264 too.
//!
//! Every stream opens with a [`StreamHead`] naming the call; then come
//! length-prefixed postcard frames ([`crate::frame`]) of [`MediaPacket`]s
//! or [`Feedback`], each at most [`MAX_MEDIA_FRAME`] bytes.

use crate::bytes::CallId;
use serde::{Deserialize, Serialize};

/// The audio stream's protocol.
pub const AUDIO_PROTOCOL: &str = "/skein/call/audio/1";
/// The protocol of the VP8 video streams (one per group of pictures).
pub const VIDEO_PROTOCOL: &str = "/skein/call/video/1";
/// The protocol of the H.264 video streams (one per group of pictures).
pub const VIDEO_H264_PROTOCOL: &str = "/skein/call/video-h264/1";
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
    /// The encoded frame (Opus, VP8, or H.264 access unit in byte-stream form).
    pub data: Vec<u8>,
}

/// What a receiver tells the sender, on the control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Feedback {
    /// What arrived over the last report period.
    Report(ReceiverReport),
    /// Video was lost or could not be decoded: send a keyframe.
    KeyframeRequest,
    /// The video codecs the receiver decodes (VP8 always among them); none
    /// when it takes no video (it answered audio only): send it none.
    Decodes(Vec<VideoCodec>),
}

/// A video codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VideoCodec {
    /// VP8, which every node encodes and decodes.
    Vp8,
    /// H.264 (constrained baseline), where GStreamer has an encoder and decoder.
    H264,
}

impl VideoCodec {
    /// Every codec, VP8 first.
    pub const ALL: [VideoCodec; 2] = [VideoCodec::Vp8, VideoCodec::H264];

    /// The protocol its video streams use.
    pub fn protocol(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => VIDEO_PROTOCOL,
            VideoCodec::H264 => VIDEO_H264_PROTOCOL,
        }
    }

    /// Its name for people: `VP8` or `H.264`.
    pub fn label(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H.264",
        }
    }

    /// Its name in statistics and on the command line: `vp8` or `h264`.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::H264 => "h264",
        }
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for VideoCodec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VideoCodec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s) || (s.eq_ignore_ascii_case("h.264") && *c == VideoCodec::H264))
            .ok_or_else(|| format!("no video codec {s:?}: use vp8 or h264"))
    }
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
