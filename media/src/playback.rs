//! The receiving side: Opus, VP8 and H.264 frames pushed in through
//! `appsrc`s, decoded, played (or, headless, only counted), and reported
//! as [`Decoded`] with the time each was captured, for glass-to-glass
//! latency.
//!
//! ```text
//! appsrc (Opus)  ! opusdec (PLC, FEC) ! audioconvert ! audioresample ! speaker | fakesink
//! appsrc (VP8)   ! vp8dec                 ! funnel ! appsink | RGBA frames for the call window
//! appsrc (H.264) ! h264parse ! avdec_h264 ! funnel
//! ```
//!
//! Buffers carry their capture time as their timestamp (less a fixed
//! epoch), so what comes out of the decoders says when it went in at the
//! other end. A lost audio frame becomes a gap event, which the decoder
//! conceals (from the next packet's forward error correction when it can).
//! A video decoder that cannot decode asks for a keyframe
//! ([`Playback::start`]'s `on_keyframe_needed`).

use crate::elements::{MediaError, init, make, pipeline_err};
use crate::watch::BusWatch;
use crate::{Frame, VideoCodec, unix_us};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

/// How much video may wait for the decoder before it counts as behind.
pub const DECODER_BEHIND: gst::ClockTime = gst::ClockTime::from_mseconds(300);

/// How far before the first frame's capture time the timestamps start.
const EPOCH_LEAD_US: u64 = 10_000_000;

/// What to play.
#[derive(Debug, Clone, Default)]
pub struct PlaybackConfig {
    /// Decode video too.
    pub video: bool,
    /// Play audio on the system's speaker (otherwise it is decoded and counted only).
    pub speaker: bool,
    /// Give decoded pictures as RGBA frames of this size.
    pub frames: Option<(u32, u32)>,
    /// The video decoders to run (VP8 when empty).
    pub codecs: Vec<VideoCodec>,
}

/// A frame that came out of a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Decoded (or concealed) audio.
    Audio {
        /// When it was captured, µs since the Unix epoch.
        capture_us: u64,
        /// How long it plays, µs.
        duration_us: u64,
        /// When it came out, µs since the Unix epoch.
        at_us: u64,
    },
    /// A decoded picture.
    Video {
        /// When it was captured, µs since the Unix epoch.
        capture_us: u64,
        /// When it came out, µs since the Unix epoch.
        at_us: u64,
    },
}

/// A running playback pipeline; stops when dropped.
#[derive(Debug)]
pub struct Playback {
    pipeline: gst::Pipeline,
    audio: gst_app::AppSrc,
    video: Vec<(VideoCodec, gst_app::AppSrc)>,
    epoch: Arc<OnceLock<u64>>,
    _watch: BusWatch,
}

impl Playback {
    /// Starts playback. Decoded frames are reported on `decoded`, pictures
    /// sent to `frames`, a decoder's need for a keyframe to
    /// `on_keyframe_needed`, and a pipeline failure to `on_error`.
    pub fn start(
        config: &PlaybackConfig,
        decoded: mpsc::UnboundedSender<Decoded>,
        frames: Option<mpsc::Sender<Frame>>,
        on_keyframe_needed: impl Fn() + Send + Sync + 'static,
        on_error: impl Fn(String) + Send + 'static,
    ) -> Result<Playback, MediaError> {
        init()?;
        let pipeline = gst::Pipeline::new();
        let epoch = Arc::new(OnceLock::new());
        let audio = audio_branch(&pipeline, config, decoded.clone(), epoch.clone())?;
        let video = match config.video {
            true => video_branch(&pipeline, config, decoded, frames, epoch.clone(), on_keyframe_needed)?,
            false => Vec::new(),
        };
        let watch = BusWatch::start(&pipeline, on_error)?;
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            let why = watch.first_error().unwrap_or_else(|| "it would not start".into());
            MediaError::Pipeline(format!("playback: {why}"))
        })?;
        Ok(Playback { pipeline, audio, video, epoch, _watch: watch })
    }

    fn pts(&self, capture_us: u64) -> gst::ClockTime {
        let epoch = *self.epoch.get_or_init(|| capture_us.saturating_sub(EPOCH_LEAD_US));
        gst::ClockTime::from_useconds(capture_us.saturating_sub(epoch))
    }

    /// Plays an Opus frame.
    pub fn push_audio(&self, capture_us: u64, duration_us: u32, data: &[u8]) {
        let buffer = buffer(data, self.pts(capture_us), duration_us, false);
        if let Err(e) = self.audio.push_buffer(buffer) {
            tracing::debug!(error = ?e, "the audio decoder took no more");
        }
    }

    /// An Opus frame that was lost: the decoder conceals it.
    pub fn conceal_audio(&self, capture_us: u64, duration_us: u32) {
        let gap = gst::event::Gap::builder(self.pts(capture_us))
            .duration(gst::ClockTime::from_useconds(u64::from(duration_us)))
            .build();
        self.audio.send_event(gap);
    }

    /// The video codecs this playback decodes.
    pub fn codecs(&self) -> Vec<VideoCodec> {
        self.video.iter().map(|(c, _)| *c).collect()
    }

    /// Decodes a video frame in `codec` (one it has no decoder for is
    /// dropped). Returns false when the decoder is behind (more than
    /// [`DECODER_BEHIND`] of pictures wait for it): the caller should skip
    /// to the next keyframe rather than let the picture fall further back.
    pub fn push_video(
        &self,
        codec: VideoCodec,
        capture_us: u64,
        duration_us: u32,
        keyframe: bool,
        data: &[u8],
    ) -> bool {
        let Some((_, src)) = self.video.iter().find(|(c, _)| *c == codec) else {
            tracing::debug!(%codec, "no decoder for this video; dropped");
            return true;
        };
        let buffer = buffer(data, self.pts(capture_us), duration_us, !keyframe);
        if let Err(e) = src.push_buffer(buffer) {
            tracing::debug!(error = ?e, "the video decoder took no more");
        }
        src.current_level_time() <= DECODER_BEHIND
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn buffer(data: &[u8], pts: gst::ClockTime, duration_us: u32, delta: bool) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_mut_slice(data.to_vec());
    if let Some(b) = buffer.get_mut() {
        b.set_pts(pts);
        if duration_us > 0 {
            b.set_duration(gst::ClockTime::from_useconds(u64::from(duration_us)));
        }
        if delta {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
    }
    buffer
}

fn app_src(caps: gst::Caps) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .is_live(true)
        .do_timestamp(false)
        .max_bytes(4 * 1024 * 1024)
        .build()
}

fn capture_of(epoch: &OnceLock<u64>, pts: Option<gst::ClockTime>) -> Option<u64> {
    Some(epoch.get()? + pts?.useconds())
}

fn audio_branch(
    pipeline: &gst::Pipeline,
    config: &PlaybackConfig,
    decoded: mpsc::UnboundedSender<Decoded>,
    epoch: Arc<OnceLock<u64>>,
) -> Result<gst_app::AppSrc, MediaError> {
    let caps = gst::Caps::builder("audio/x-opus")
        .field("rate", 48_000i32)
        .field("channels", 1i32)
        .field("channel-mapping-family", 0i32)
        .build();
    let src = app_src(caps);
    let dec = make("opusdec")?;
    dec.set_property("plc", true);
    dec.set_property("use-inband-fec", true);
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    // With no audio output at all (a server, a virtual display), the call's
    // audio is decoded and measured but not played.
    let sink = if config.speaker && crate::devices::has_speaker() {
        make("autoaudiosink")?
    } else {
        let s = make("fakesink")?;
        s.set_property("sync", false);
        s
    };
    let pad = sink.static_pad("sink").ok_or_else(|| MediaError::Pipeline("the audio sink has no pad".into()))?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(b)) = &info.data
            && let Some(capture_us) = capture_of(&epoch, b.pts())
        {
            let duration_us = b.duration().map_or(0, |d| d.useconds());
            let _ = decoded.send(Decoded::Audio { capture_us, duration_us, at_us: unix_us() });
        }
        gst::PadProbeReturn::Ok
    });
    let chain = [src.upcast_ref(), &dec, &convert, &resample, &sink];
    pipeline.add_many(chain).map_err(pipeline_err)?;
    gst::Element::link_many(chain).map_err(pipeline_err)?;
    Ok(src)
}

fn video_branch(
    pipeline: &gst::Pipeline,
    config: &PlaybackConfig,
    decoded: mpsc::UnboundedSender<Decoded>,
    frames: Option<mpsc::Sender<Frame>>,
    epoch: Arc<OnceLock<u64>>,
    on_keyframe_needed: impl Fn() + Send + Sync + 'static,
) -> Result<Vec<(VideoCodec, gst_app::AppSrc)>, MediaError> {
    // Every decoder's pictures meet in one funnel, so a codec can change
    // mid-call (a group call's new member decodes only VP8, say).
    let funnel = make("funnel")?;
    pipeline.add(&funnel).map_err(pipeline_err)?;
    let on_keyframe_needed = Arc::new(on_keyframe_needed);
    let codecs = crate::codecs::or_vp8(&config.codecs);
    let mut sources = Vec::new();
    for &codec in codecs {
        let needed = on_keyframe_needed.clone();
        sources.push((codec, decode_branch(pipeline, codec, &funnel, move || needed())?));
    }
    let report = move |pts: Option<gst::ClockTime>| {
        if let Some(capture_us) = capture_of(&epoch, pts) {
            let _ = decoded.send(Decoded::Video { capture_us, at_us: unix_us() });
        }
    };
    match (config.frames, frames) {
        (Some((w, h)), Some(frames)) => {
            let branch = crate::frames::rgba_branch(pipeline, w, h, frames, report)?;
            funnel.link(&branch).map_err(pipeline_err)?;
        }
        _ => {
            // Not async: with no video coming (the peer has no camera, or
            // answered audio only), a sink waiting to preroll would hold
            // the whole pipeline, audio too, at its first frame.
            let sink = gst_app::AppSink::builder()
                .sync(false)
                .async_(false)
                .callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            report(sample.buffer().and_then(|b| b.pts()));
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                )
                .build();
            pipeline.add(&sink).map_err(pipeline_err)?;
            funnel.link(&sink).map_err(pipeline_err)?;
        }
    }
    Ok(sources)
}

/// `appsrc ! decoder ! funnel` for one codec. A frame the decoder cannot
/// decode is dropped, and it asks for a keyframe (`on_keyframe_needed`).
fn decode_branch(
    pipeline: &gst::Pipeline,
    codec: VideoCodec,
    funnel: &gst::Element,
    on_keyframe_needed: impl Fn() + Send + Sync + 'static,
) -> Result<gst_app::AppSrc, MediaError> {
    let (src, mut chain) = match codec {
        VideoCodec::Vp8 => (app_src(gst::Caps::builder("video/x-vp8").build()), vec![make("vp8dec")?]),
        VideoCodec::H264 => {
            let caps = gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build();
            let dec = make("avdec_h264")?;
            // Frame threads would hold each picture back by a frame per thread.
            dec.set_property("max-threads", 1i32);
            dec.set_property("output-corrupt", false);
            (app_src(caps), vec![make("h264parse")?, dec])
        }
    };
    let dec = chain.last().cloned().ok_or_else(|| MediaError::Pipeline("no video decoder".into()))?;
    dec.set_property("discard-corrupted-frames", true);
    dec.set_property("automatic-request-sync-points", true);
    let src_pad = src.static_pad("src").ok_or_else(|| MediaError::Pipeline("the video source has no pad".into()))?;
    src_pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(e)) = &info.data
            && gstreamer_video::UpstreamForceKeyUnitEvent::parse(e).is_ok()
        {
            on_keyframe_needed();
        }
        gst::PadProbeReturn::Ok
    });
    chain.insert(0, src.clone().upcast());
    chain.push(funnel.clone());
    pipeline.add_many(&chain[..chain.len() - 1]).map_err(pipeline_err)?;
    gst::Element::link_many(&chain).map_err(pipeline_err)?;
    Ok(src)
}
