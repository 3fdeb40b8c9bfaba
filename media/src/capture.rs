//! The sending side: capture (microphone and camera, or GStreamer's test
//! sources), then Opus and VP8 or H.264 encoding, out through `appsink`s
//! as [`Encoded`] frames, each with the time it was captured.
//!
//! ```text
//! mic | audiotestsrc ! audioconvert ! audioresample ! 48 kHz mono ! volume (mute) ! opusenc (FEC) ! appsink
//! cam | videotestsrc ! videoconvert ! videoscale ! I420 W×H ! tee ! valve ! vp8enc (real time) ! appsink
//!                                                               tee ! valve ! x264enc (zero latency) ! appsink
//!                                                               tee ! small RGBA ! appsink (self-view)
//! ```
//!
//! One valve is open at a time: the codec in use, unless the camera is
//! off. The bitrate, keyframes and codec are the caller's to steer:
//! [`Capture::set_video_kbps`], [`Capture::request_keyframe`],
//! [`Capture::set_codec`].

use crate::elements::{MediaError, init, make, pipeline_err};
use crate::watch::BusWatch;
use crate::{Frame, Kind, VideoCodec, unix_us};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// What to capture, and how to encode it.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Send video too.
    pub video: bool,
    /// Use GStreamer's test sources (a tone and moving colour bars).
    pub test_source: bool,
    /// The microphone, by name (default: the system's).
    pub microphone: Option<String>,
    /// The camera, by name (default: the system's).
    pub camera: Option<String>,
    /// Video width.
    pub width: u32,
    /// Video height.
    pub height: u32,
    /// Frames a second.
    pub fps: u32,
    /// The starting video bitrate, kbit/s.
    pub video_kbps: u32,
    /// The Opus bitrate, kbit/s.
    pub audio_kbps: u32,
    /// Also give a small RGBA self-view of the camera.
    pub self_view: bool,
    /// The video encoders to run, the first in use at the start (VP8 when
    /// empty); [`Capture::set_codec`] switches between them.
    pub codecs: Vec<VideoCodec>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            video: true,
            test_source: false,
            microphone: None,
            camera: None,
            width: 640,
            height: 360,
            fps: 30,
            video_kbps: 600,
            audio_kbps: 32,
            self_view: false,
            codecs: vec![VideoCodec::Vp8],
        }
    }
}

/// One encoded frame.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Audio or video.
    pub kind: Kind,
    /// When it was captured, µs since the Unix epoch.
    pub capture_us: u64,
    /// How long it plays, µs.
    pub duration_us: u32,
    /// A keyframe (every audio frame is one).
    pub keyframe: bool,
    /// The Opus frame, VP8 frame or H.264 access unit.
    pub data: Vec<u8>,
}

/// One video encoder of a capture, behind its valve.
#[derive(Debug)]
struct Encoder {
    codec: VideoCodec,
    enc: gst::Element,
    sink: gst::Element,
    valve: gst::Element,
}

/// Which encoder is in use, and whether the camera is on.
#[derive(Debug, Clone, Copy)]
struct VideoState {
    codec: VideoCodec,
    camera: bool,
}

/// A running capture pipeline; stops when dropped.
#[derive(Debug)]
pub struct Capture {
    pipeline: gst::Pipeline,
    volume: gst::Element,
    encoders: Vec<Encoder>,
    state: Mutex<VideoState>,
    _watch: BusWatch,
}

impl Capture {
    /// Starts capturing; encoded frames go to `out` (dropped when it is
    /// full: the sender is behind), the self-view to `self_view`, and a
    /// pipeline failure to `on_error`.
    pub fn start(
        config: &CaptureConfig,
        out: mpsc::Sender<Encoded>,
        self_view: Option<mpsc::Sender<Frame>>,
        on_error: impl Fn(String) + Send + 'static,
    ) -> Result<Capture, MediaError> {
        init()?;
        let pipeline = gst::Pipeline::new();
        let volume = audio_branch(&pipeline, config, out.clone())?;
        let encoders = if config.video { video_branch(&pipeline, config, out, self_view)? } else { Vec::new() };
        let state = VideoState { codec: encoders.first().map_or(VideoCodec::Vp8, |e| e.codec), camera: true };
        open_valves(&encoders, state);
        let watch = BusWatch::start(&pipeline, on_error)?;
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            let why = watch.first_error().unwrap_or_else(|| "it would not start".into());
            MediaError::Pipeline(format!("capture: {why}"))
        })?;
        Ok(Capture { pipeline, volume, encoders, state: Mutex::new(state), _watch: watch })
    }

    /// Sets the video bitrate, kbit/s.
    pub fn set_video_kbps(&self, kbps: u32) {
        for e in &self.encoders {
            match e.codec {
                VideoCodec::Vp8 => e.enc.set_property("target-bitrate", (kbps * 1000) as i32),
                VideoCodec::H264 => e.enc.set_property("bitrate", kbps.max(1)),
            }
        }
    }

    /// Makes the next video frame a keyframe.
    pub fn request_keyframe(&self) {
        let codec = self.state().codec;
        if let Some(e) = self.encoders.iter().find(|e| e.codec == codec) {
            let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
            e.sink.send_event(event);
        }
    }

    /// Encodes video in `codec` from the next (key)frame on (a codec this
    /// capture has no encoder for is ignored).
    pub fn set_codec(&self, codec: VideoCodec) {
        if !self.encoders.iter().any(|e| e.codec == codec) {
            return;
        }
        let state = {
            let mut s = lock(&self.state);
            s.codec = codec;
            *s
        };
        open_valves(&self.encoders, state);
        self.request_keyframe();
    }

    /// The codec video is encoded in.
    pub fn codec(&self) -> VideoCodec {
        self.state().codec
    }

    /// Mutes (sends silence) or unmutes the microphone.
    pub fn set_muted(&self, muted: bool) {
        self.volume.set_property("mute", muted);
    }

    /// Turns the camera off (no video is sent) or on.
    pub fn set_camera(&self, on: bool) {
        let state = {
            let mut s = lock(&self.state);
            s.camera = on;
            *s
        };
        open_valves(&self.encoders, state);
        if on {
            self.request_keyframe();
        }
    }

    fn state(&self) -> VideoState {
        *lock(&self.state)
    }
}

/// Opens the valve of the encoder in use when the camera is on, and
/// closes every other: an idle encoder costs nothing.
fn open_valves(encoders: &[Encoder], state: VideoState) {
    for e in encoders {
        e.valve.set_property("drop", !(state.camera && e.codec == state.codec));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn caps_filter(caps: gst::Caps) -> Result<gst::Element, MediaError> {
    let f = make("capsfilter")?;
    f.set_property("caps", caps);
    Ok(f)
}

fn audio_branch(
    pipeline: &gst::Pipeline,
    config: &CaptureConfig,
    out: mpsc::Sender<Encoded>,
) -> Result<gst::Element, MediaError> {
    let src = match (&config.microphone, config.test_source) {
        (_, true) => {
            let s = make("audiotestsrc")?;
            s.set_property("is-live", true);
            s.set_property("freq", 440.0f64);
            s.set_property("volume", 0.2f64);
            s
        }
        (Some(name), false) => crate::devices::source("microphone", name)?,
        (None, false) => make("autoaudiosrc")?,
    };
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    let caps = caps_filter(gst::Caps::builder("audio/x-raw").field("rate", 48_000i32).field("channels", 1i32).build())?;
    let volume = make("volume")?;
    let enc = make("opusenc")?;
    enc.set_property("bitrate", (config.audio_kbps * 1000) as i32);
    enc.set_property("inband-fec", true);
    enc.set_property("packet-loss-percentage", 10i32);
    enc.set_property_from_str("frame-size", "20");
    enc.set_property_from_str("audio-type", "voice");
    let sink = encoded_sink(Kind::Audio, out)?;
    let chain = [&src, &convert, &resample, &caps, &volume, &enc, &sink];
    pipeline.add_many(chain).map_err(pipeline_err)?;
    gst::Element::link_many(chain).map_err(pipeline_err)?;
    Ok(volume)
}

fn video_branch(
    pipeline: &gst::Pipeline,
    config: &CaptureConfig,
    out: mpsc::Sender<Encoded>,
    self_view: Option<mpsc::Sender<Frame>>,
) -> Result<Vec<Encoder>, MediaError> {
    let src = match (&config.camera, config.test_source) {
        (_, true) => {
            let s = make("videotestsrc")?;
            s.set_property("is-live", true);
            s.set_property_from_str("pattern", "smpte");
            s.set_property("horizontal-speed", 4i32);
            s
        }
        (Some(name), false) => crate::devices::source("camera", name)?,
        (None, false) => make("autovideosrc")?,
    };
    let convert = make("videoconvert")?;
    let scale = make("videoscale")?;
    let rate = make("videorate")?;
    let caps = caps_filter(
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", config.width as i32)
            .field("height", config.height as i32)
            .field("framerate", gst::Fraction::new(config.fps as i32, 1))
            .build(),
    )?;
    let tee = make("tee")?;
    let chain = [&src, &convert, &scale, &rate, &caps, &tee];
    pipeline.add_many(chain).map_err(pipeline_err)?;
    gst::Element::link_many(chain).map_err(pipeline_err)?;
    let mut encoders = Vec::new();
    for &codec in crate::codecs::or_vp8(&config.codecs) {
        encoders.push(encode_branch(pipeline, &tee, config, codec, out.clone())?);
    }
    if let Some(frames) = self_view.filter(|_| config.self_view) {
        let branch = crate::frames::rgba_branch(pipeline, 320, 180, frames, |_| ())?;
        tee.link(&branch).map_err(pipeline_err)?;
    }
    Ok(encoders)
}

/// `tee ! queue ! valve ! encoder ! appsink`, for one codec.
fn encode_branch(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    config: &CaptureConfig,
    codec: VideoCodec,
    out: mpsc::Sender<Encoded>,
) -> Result<Encoder, MediaError> {
    // An encoder that falls behind (a busy CPU) skips pictures rather than
    // letting them wait: the oldest waiting picture is dropped.
    let queue = make("queue")?;
    queue.set_property_from_str("leaky", "downstream");
    queue.set_property("max-size-buffers", 2u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    let valve = make("valve")?;
    let enc = match codec {
        VideoCodec::Vp8 => {
            let enc = make("vp8enc")?;
            enc.set_property("deadline", 1i64);
            enc.set_property("cpu-used", 8i32);
            enc.set_property_from_str("end-usage", "cbr");
            enc.set_property("target-bitrate", (config.video_kbps * 1000) as i32);
            enc.set_property("keyframe-max-dist", (config.fps * 2) as i32);
            enc.set_property("lag-in-frames", 0i32);
            // One thread: VP8's threads wait for each other by spinning, and
            // two calls' encoders (or an encoder and anything else) on two
            // cores then starve each other; one thread encodes 640×360 at
            // 30 fps in about a tenth of a core.
            enc.set_property("threads", 1i32);
            enc
        }
        VideoCodec::H264 => {
            let enc = make("x264enc")?;
            // No B-frames and no look-ahead: each picture leaves as soon as
            // it is encoded.
            enc.set_property_from_str("tune", "zerolatency");
            enc.set_property_from_str("speed-preset", "ultrafast");
            enc.set_property("bitrate", config.video_kbps);
            enc.set_property("key-int-max", config.fps * 2);
            enc.set_property("threads", 1u32);
            enc
        }
    };
    let sink = encoded_sink(Kind::Video(codec), out)?;
    let mut branch = vec![queue, valve.clone(), enc.clone()];
    if codec == VideoCodec::H264 {
        // Annex B access units with the parameter sets before each
        // keyframe, in the profile every decoder takes.
        branch.push(caps_filter(
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .field("profile", "constrained-baseline")
                .build(),
        )?);
    }
    branch.push(sink.clone());
    pipeline.add_many(&branch).map_err(pipeline_err)?;
    gst::Element::link_many(&branch).map_err(pipeline_err)?;
    tee.link(&branch[0]).map_err(pipeline_err)?;
    Ok(Encoder { codec, enc, sink, valve })
}

/// An `appsink` that stamps each encoded buffer with its capture time.
fn encoded_sink(kind: Kind, out: mpsc::Sender<Encoded>) -> Result<gst::Element, MediaError> {
    // Not async: the sink of an encoder behind a closed valve never
    // prerolls, and must not hold the pipeline's move to PLAYING.
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .async_(false)
        .max_buffers(64)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else { return Ok(gst::FlowSuccess::Ok) };
                    // The buffer's time in the stream, as running time: an
                    // encoder may shift its timestamps (x264enc starts its
                    // segment 1,000 hours in, to leave room for decoding
                    // times) and the segment undoes that.
                    let pts = sample
                        .segment()
                        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
                        .and_then(|s| s.to_running_time(buffer.pts()));
                    let capture_us = capture_time(sink.upcast_ref(), pts);
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let frame = Encoded {
                        kind,
                        capture_us,
                        duration_us: buffer.duration().map_or(0, |d| d.useconds() as u32),
                        keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                        data: map.as_slice().to_vec(),
                    };
                    // A full queue means the network is behind: this frame is dropped.
                    let _ = out.try_send(frame);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    Ok(sink.upcast())
}

/// The wall-clock time a buffer with running time `running_pts` was
/// captured: now, less how long ago (in the pipeline's running time) that
/// was.
fn capture_time(element: &gst::Element, running_pts: Option<gst::ClockTime>) -> u64 {
    let now = unix_us();
    match (element.current_running_time(), running_pts) {
        (Some(running), Some(pts)) => now.saturating_sub(running.saturating_sub(pts).useconds()),
        _ => now,
    }
}
