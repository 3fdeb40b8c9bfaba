//! A connected call's media, carried on peer streams of the same
//! authenticated connection as everything else ([`skein_proto::media`]).
//!
//! Each side captures and encodes ([`skein_media::capture`]), and sends:
//! - audio on one stream, every frame, never dropped here;
//! - video on a new stream per group of pictures. When a new group starts,
//!   the last group's writer is abandoned with whatever it had not yet
//!   written, and the receiver, on the first frame of a newer group, stops
//!   reading the older one (QUIC's STOP_SENDING resets it), so a loss or a
//!   slow path never holds the picture up past one group. A writer whose
//!   queue overflows drops the rest of its group, halves the bitrate and
//!   asks the encoder for a keyframe: video yields, audio goes on. A
//!   group's stream protocol names its codec (VP8 or H.264); a change of
//!   codec starts a new group at the new codec's first keyframe.
//!
//! The receiver first says on the control stream which codecs it decodes
//! (the call's capture picks the best every peer takes). It puts audio
//! through the jitter buffer ([`skein_media::jitter`]) into the decoder,
//! conceals what was lost, decodes video as it comes (asking for a keyframe
//! when a group arrived incomplete or would not decode), measures
//! everything ([`skein_media::stats`]) and reports once a second on the
//! control stream, from which the sender sets its bitrate
//! ([`skein_media::rate`]).

use super::capture::Feed;
use crate::mesh::codec::{read_frame, write_frame};
use crate::mesh::{Mesh, Path};
use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use serde_json::{Value, json};
use skein_media::capture::{CaptureConfig, Encoded};
use skein_media::jitter::{JitterBuffer, Out, Packet};
use skein_media::playback::{Decoded, Playback, PlaybackConfig};
use skein_media::rate::RateControl;
use skein_media::stats::{ReceiveStats, Snapshot};
use skein_media::{Frame, Kind, MediaError, VideoCodec, unix_us};
use skein_proto::bytes::CallId;
use skein_proto::call::Media;
use skein_proto::media::{AUDIO_PROTOCOL, CONTROL_PROTOCOL, Feedback, MAX_MEDIA_FRAME, MediaPacket, StreamHead};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The most video a direct path gets, kbit/s.
pub const MAX_DIRECT_KBPS: u32 = 1500;
/// The most video a relayed path gets, kbit/s (the relay is shared).
pub const MAX_RELAYED_KBPS: u32 = 500;
/// Video frames a group's writer may hold before it gives the group up.
const GROUP_QUEUE: usize = 45;
/// How long a new stream may take to bring its head.
const HEAD_WITHIN: Duration = Duration::from_secs(5);
/// How often the jitter buffer is asked for what is due.
const PLAYOUT_TICK: Duration = Duration::from_millis(5);
/// How often the receiver reports.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The least time between two keyframe requests.
const KEYFRAME_EVERY: Duration = Duration::from_millis(500);

/// Pictures for a window: the other participants' and our own camera's.
#[derive(Debug, Clone)]
pub struct Pictures {
    /// Decoded remote video, each picture with whose it is.
    pub remote: mpsc::Sender<RemoteFrame>,
    /// The self-view.
    pub local: mpsc::Sender<Frame>,
}

/// A decoded picture from another participant.
#[derive(Debug)]
pub struct RemoteFrame {
    /// The participant's user name.
    pub from: String,
    /// The picture.
    pub frame: Frame,
}

/// Where a node's call media comes from and goes.
#[derive(Debug, Clone, Default)]
pub struct MediaConfig {
    /// GStreamer's test sources instead of the microphone and camera.
    pub test_source: bool,
    /// The microphone, by name.
    pub microphone: Option<String>,
    /// The camera, by name.
    pub camera: Option<String>,
    /// Play the other side's audio on the speaker.
    pub speaker: bool,
    /// The video codecs to use (empty: every one this machine encodes and
    /// decodes; H.264 where the other side does too, VP8 otherwise).
    pub video_codecs: Vec<VideoCodec>,
    /// Pictures for the desktop app's call window.
    pub pictures: Option<Pictures>,
}

/// What a session is for.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// The call.
    pub call: CallId,
    /// The other device.
    pub peer: PeerId,
    /// The other device's user.
    pub with: String,
    /// What it carries.
    pub media: Media,
    /// Devices and outputs.
    pub config: MediaConfig,
}

/// Which stream a peer opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// The audio stream.
    Audio,
    /// One group of pictures, in this codec.
    Video(VideoCodec),
    /// Reports and keyframe requests.
    Control,
}

/// A media stream a verified peer opened, with its head read.
pub struct IncomingStream {
    /// The peer.
    pub peer: PeerId,
    /// Which stream.
    pub kind: StreamKind,
    /// Its head.
    pub head: StreamHead,
    /// The stream, after the head.
    pub stream: libp2p::Stream,
}

impl std::fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingStream").field("peer", &self.peer).field("kind", &self.kind).finish()
    }
}

/// Accepts the media protocols from verified peers for as long as
/// the node runs; each stream's head is read (within [`HEAD_WITHIN`])
/// before it is handed on.
pub fn accept_all(mesh: &Mesh) -> mpsc::Receiver<IncomingStream> {
    let (tx, rx) = mpsc::channel(64);
    let mut streams = mesh.streams();
    let video = VideoCodec::ALL.map(|c| (c.protocol(), StreamKind::Video(c)));
    for (protocol, kind) in
        [(AUDIO_PROTOCOL, StreamKind::Audio), (CONTROL_PROTOCOL, StreamKind::Control)].into_iter().chain(video)
    {
        let mut incoming = match streams.accept(StreamProtocol::new(protocol)) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(protocol, error = %e, "cannot take call media streams");
                continue;
            }
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some((peer, mut stream)) = incoming.next().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let head = tokio::time::timeout(HEAD_WITHIN, read_frame::<_, StreamHead>(&mut stream, 64)).await;
                    match head {
                        Ok(Ok(head)) => {
                            let _ = tx.send(IncomingStream { peer, kind, head, stream }).await;
                        }
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "a media stream opened without a valid head"),
                        Err(_) => tracing::info!(%peer, "a media stream brought no head in time"),
                    }
                });
            }
        });
    }
    rx
}

/// What the tasks of a session share.
struct Shared {
    call: CallId,
    peer: PeerId,
    feed: Feed,
    playback: Playback,
    stats: Mutex<ReceiveStats>,
    jitter: Mutex<JitterBuffer>,
    rate: Mutex<RateControl>,
    last: Mutex<Option<Snapshot>>,
    keyframe_needed: AtomicBool,
    /// The newest group of pictures being read.
    newest_group: tokio::sync::watch::Sender<u32>,
    /// The codec of the video coming in.
    receiving: Mutex<Option<VideoCodec>>,
    sent_kbps: AtomicU32,
    frames_sent: AtomicU32,
    audio_sent: AtomicU32,
    feedback: mpsc::Sender<Feedback>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connected call's media; stops when [`Session::stop`]ped or dropped.
pub struct Session {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("call", &self.shared.call).finish_non_exhaustive()
    }
}

impl Session {
    /// Starts playback and the streams to `params.peer`, sending the
    /// `encoded` frames of `feed`, the call's capture (which checked that
    /// every element a call needs is there). A failure later (a pipeline
    /// error, a broken stream) goes to `on_failure`.
    pub fn start(
        params: SessionParams,
        (feed, encoded): (Feed, mpsc::Receiver<Encoded>),
        mesh: Mesh,
        on_failure: Box<dyn Fn(String) + Send + Sync>,
    ) -> Result<Session, MediaError> {
        let on_failure: Arc<dyn Fn(String) + Send + Sync> = Arc::from(on_failure);
        let video = params.media == Media::Video;
        let config = &params.config;
        let keyframe_needed = Arc::new(AtomicBool::new(false));
        let (decoded_tx, decoded) = mpsc::unbounded_channel();
        let needed = keyframe_needed.clone();
        let fail = on_failure.clone();
        let size = CaptureConfig::default();
        let mut tasks = JoinSet::new();
        // The window learns whose each picture is.
        let frames = config.pictures.as_ref().map(|p| {
            let (tx, mut rx) = mpsc::channel::<Frame>(2);
            let (remote, from) = (p.remote.clone(), params.with.clone());
            tasks.spawn(async move {
                while let Some(frame) = rx.recv().await {
                    // A window that is behind misses a picture, not the call.
                    let _ = remote.try_send(RemoteFrame { from: from.clone(), frame });
                }
            });
            tx
        });
        let playback = Playback::start(
            &PlaybackConfig {
                video,
                speaker: config.speaker,
                frames: config.pictures.as_ref().map(|_| (size.width, size.height)),
                codecs: feed.capture().codecs().to_vec(),
            },
            decoded_tx,
            frames,
            move || needed.store(true, Ordering::Relaxed),
            move |e| fail(format!("playback: {e}")),
        )?;
        let (feedback_tx, feedback) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            call: params.call,
            peer: params.peer,
            feed,
            playback,
            stats: Mutex::new(ReceiveStats::default()),
            jitter: Mutex::new(JitterBuffer::new()),
            rate: Mutex::new(RateControl::new(super::capture::START_KBPS, MAX_DIRECT_KBPS)),
            last: Mutex::new(None),
            keyframe_needed: AtomicBool::new(false),
            newest_group: tokio::sync::watch::Sender::new(0),
            receiving: Mutex::new(None),
            sent_kbps: AtomicU32::new(super::capture::START_KBPS),
            frames_sent: AtomicU32::new(0),
            audio_sent: AtomicU32::new(0),
            feedback: feedback_tx,
        });
        // The sender's encoder waits for this word before it leaves VP8;
        // without video (answered audio only), it says to send none.
        let decodes = if video { shared.playback.codecs() } else { Vec::new() };
        let _ = shared.feedback.try_send(Feedback::Decodes(decodes));
        // The decoder's requests and the receiver's own go out the same way.
        tasks.spawn(send_media(shared.clone(), mesh.clone(), encoded, on_failure.clone()));
        tasks.spawn(send_feedback(shared.clone(), mesh.clone(), feedback));
        tasks.spawn(playout(shared.clone()));
        tasks.spawn(count_decoded(shared.clone(), decoded));
        tasks.spawn(report(shared.clone(), mesh, keyframe_needed));
        Ok(Session { shared, tasks })
    }

    /// The other device.
    pub fn peer(&self) -> PeerId {
        self.shared.peer
    }

    /// The call.
    pub fn call(&self) -> CallId {
        self.shared.call
    }

    /// Takes a stream the peer opened for this call.
    pub fn take_stream(&mut self, s: IncomingStream) {
        if s.peer != self.shared.peer || s.head.call != self.shared.call {
            tracing::info!(peer = %s.peer, "refusing a media stream for another call");
            return;
        }
        let shared = self.shared.clone();
        match s.kind {
            StreamKind::Audio => self.tasks.spawn(read_audio(shared, s.stream)),
            StreamKind::Video(codec) => self.tasks.spawn(read_video(shared, codec, s.head.group, s.stream)),
            StreamKind::Control => self.tasks.spawn(read_feedback(shared, s.stream)),
        };
    }

    /// The last second's figures, as `call_stats` shows them (without the
    /// path and round-trip time, which the mesh knows).
    pub fn stats(&self) -> Value {
        let last = *lock(&self.shared.last);
        let mut s = last.unwrap_or_default();
        // The call's totals as they are now, not as of the last window.
        let (audio, video) = {
            let stats = lock(&self.shared.stats);
            stats.totals(&mut s);
            let (a, v) = stats.latencies();
            (percentiles(a), percentiles(v))
        };
        let round = |x: f64| (x * 10.0).round() / 10.0;
        json!({
            "loss_pct": round(s.loss_pct),
            "audio_kbps": round(s.audio_kbps),
            "video_kbps": round(s.video_kbps),
            "fps": round(s.fps),
            "frames_received": s.frames_received,
            "audio_gaps": s.audio_gaps,
            "longest_audio_gap_ms": round(s.longest_audio_gap_ms),
            "jitter_ms": round(s.jitter_ms),
            "audio_latency_ms": s.audio_latency_ms.map(round),
            "video_latency_ms": s.video_latency_ms.map(round),
            "send_video_kbps": self.shared.sent_kbps.load(Ordering::Relaxed),
            "frames_sent": self.shared.frames_sent.load(Ordering::Relaxed),
            "audio_sent": self.shared.audio_sent.load(Ordering::Relaxed),
            "muted": self.shared.feed.capture().muted(),
            "camera": self.shared.feed.capture().camera(),
            "video_codec": lock(&self.shared.receiving).map(VideoCodec::name),
            "send_video_codec": self.shared.feed.takes_video().then(|| self.shared.feed.capture().codec().name()),
            "call_latency_ms": {"audio": audio, "video": video},
        })
    }

    /// Stops the media: the tasks end, the streams close, the pipelines stop.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// The p50 and p99 of latencies in µs, as ms, over the whole call.
fn percentiles(samples: &[u64]) -> Value {
    if samples.is_empty() {
        return Value::Null;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let at = |p: f64| v[((p / 100.0) * (v.len() - 1) as f64).round() as usize] as f64 / 1000.0;
    json!({"p50": at(50.0), "p99": at(99.0), "samples": v.len()})
}

async fn open(mesh: &Mesh, shared: &Shared, protocol: &'static str, group: u32) -> std::io::Result<libp2p::Stream> {
    let mut stream = mesh
        .streams()
        .open_stream(shared.peer, StreamProtocol::new(protocol))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    write_frame(&mut stream, &StreamHead { call: shared.call, group }, 64).await?;
    stream.flush().await?;
    Ok(stream)
}

fn packet(seq: u32, e: Encoded) -> MediaPacket {
    MediaPacket { seq, capture_us: e.capture_us, duration_us: e.duration_us, keyframe: e.keyframe, data: e.data }
}

/// Sends what the encoders make: audio on its stream, video a group of
/// pictures to a stream.
async fn send_media(
    shared: Arc<Shared>,
    mesh: Mesh,
    mut encoded: mpsc::Receiver<Encoded>,
    on_failure: Arc<dyn Fn(String) + Send + Sync>,
) {
    let (audio_tx, audio_rx) = mpsc::channel::<MediaPacket>(256);
    let audio = tokio::spawn(write_audio(shared.clone(), mesh.clone(), audio_rx, on_failure));
    let (mut audio_seq, mut video_seq, mut group) = (0u32, 0u32, 0u32);
    let mut writer: Option<(VideoCodec, mpsc::Sender<MediaPacket>, tokio::task::JoinHandle<()>)> = None;
    // After an overflow, frames wait for the next keyframe.
    let mut skipping = false;
    while let Some(e) = encoded.recv().await {
        match e.kind {
            Kind::Audio => {
                let p = packet(audio_seq, e);
                audio_seq += 1;
                shared.audio_sent.fetch_add(1, Ordering::Relaxed);
                if audio_tx.send(p).await.is_err() {
                    break;
                }
            }
            Kind::Video(codec) => {
                let seq = video_seq;
                video_seq += 1;
                if e.keyframe {
                    skipping = false;
                    // The last group is given up, with what it had not written.
                    if let Some((_, _, task)) = writer.take() {
                        task.abort();
                    }
                    let (tx, rx) = mpsc::channel(GROUP_QUEUE);
                    let task = tokio::spawn(write_group(shared.clone(), mesh.clone(), codec, group, rx));
                    group += 1;
                    writer = Some((codec, tx, task));
                }
                if skipping {
                    continue;
                }
                // After a change of codec, the new one's frames wait for its first keyframe.
                let Some((_, tx, _)) = writer.as_ref().filter(|(c, _, _)| *c == codec) else { continue };
                shared.frames_sent.fetch_add(1, Ordering::Relaxed);
                if tx.try_send(packet(seq, e)).is_err() {
                    // The path cannot keep up: the rest of this group goes,
                    // the bitrate halves, and a keyframe starts the next.
                    skipping = true;
                    let kbps = lock(&shared.rate).on_backlog();
                    shared.feed.set_video_kbps(kbps);
                    shared.sent_kbps.store(kbps, Ordering::Relaxed);
                    shared.feed.request_keyframe();
                    tracing::info!(kbps, "video fell behind; skipping to the next keyframe");
                }
            }
        }
    }
    audio.abort();
    if let Some((_, _, task)) = writer {
        task.abort();
    }
}

/// Writes each packet from `rx` to `stream` as it comes, until `rx` ends
/// (`Ok`) or a write fails.
async fn write_packets(stream: &mut libp2p::Stream, rx: &mut mpsc::Receiver<MediaPacket>) -> std::io::Result<()> {
    while let Some(p) = rx.recv().await {
        write_frame(stream, &p, MAX_MEDIA_FRAME).await?;
        stream.flush().await?;
    }
    Ok(())
}

async fn write_audio(
    shared: Arc<Shared>,
    mesh: Mesh,
    mut rx: mpsc::Receiver<MediaPacket>,
    on_failure: Arc<dyn Fn(String) + Send + Sync>,
) {
    let mut stream = match open(&mesh, &shared, AUDIO_PROTOCOL, 0).await {
        Ok(s) => s,
        Err(e) => {
            on_failure(format!("cannot open the audio stream: {e}"));
            return;
        }
    };
    if let Err(e) = write_packets(&mut stream, &mut rx).await {
        on_failure(format!("the audio stream broke: {e}"));
    }
}

async fn write_group(
    shared: Arc<Shared>,
    mesh: Mesh,
    codec: VideoCodec,
    group: u32,
    mut rx: mpsc::Receiver<MediaPacket>,
) {
    let mut stream = match open(&mesh, &shared, codec.protocol(), group).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(group, error = %e, "cannot open a video stream");
            return;
        }
    };
    match write_packets(&mut stream, &mut rx).await {
        Ok(()) => {
            let _ = stream.close().await;
        }
        // The receiver stopped reading this group (a newer one came).
        Err(e) => tracing::debug!(group, error = %e, "a video group ended early"),
    }
}

async fn send_feedback(shared: Arc<Shared>, mesh: Mesh, mut rx: mpsc::Receiver<Feedback>) {
    let mut stream: Option<libp2p::Stream> = None;
    while let Some(f) = rx.recv().await {
        if stream.is_none() {
            match open(&mesh, &shared, CONTROL_PROTOCOL, 0).await {
                Ok(s) => stream = Some(s),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot open the call's control stream");
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let sent = async {
            write_frame(s, &f, MAX_MEDIA_FRAME).await?;
            s.flush().await
        };
        if sent.await.is_err() {
            stream = None;
        }
    }
}

/// The longest an Opus frame plays, µs.
const MAX_AUDIO_FRAME_US: u32 = 120_000;
/// The longest a picture is said to show, µs.
const MAX_VIDEO_FRAME_US: u32 = 1_000_000;

/// A peer's word for how long an Opus frame plays, within what Opus allows
/// (20 ms when it says nothing sensible), so a lie cannot make the decoder
/// conceal minutes of audio.
fn audio_duration(us: u32) -> u32 {
    if us == 0 || us > MAX_AUDIO_FRAME_US { 20_000 } else { us }
}

/// Reads the peer's audio into the jitter buffer.
async fn read_audio(shared: Arc<Shared>, mut stream: libp2p::Stream) {
    loop {
        let p: MediaPacket = match read_frame(&mut stream, MAX_MEDIA_FRAME).await {
            Ok(p) => p,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::info!(error = %e, "the call's audio stream ended with an error");
                }
                return;
            }
        };
        lock(&shared.stats).audio_packet(p.data.len());
        let packet =
            Packet { seq: p.seq, capture_us: p.capture_us, duration_us: audio_duration(p.duration_us), data: p.data };
        lock(&shared.jitter).push(unix_us(), packet);
    }
}

/// Reads one group of pictures into the decoder, until a newer group
/// starts (then this one is dropped, which resets it at the sender).
async fn read_video(shared: Arc<Shared>, codec: VideoCodec, group: u32, mut stream: libp2p::Stream) {
    shared.newest_group.send_modify(|g| *g = (*g).max(group));
    *lock(&shared.receiving) = Some(codec);
    let mut newer = shared.newest_group.subscribe();
    let mut whole = true;
    let mut first = true;
    loop {
        let p = tokio::select! {
            read = read_frame::<_, MediaPacket>(&mut stream, MAX_MEDIA_FRAME) => match read {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = newer.wait_for(|g| *g > group) => return,
        };
        let arrived_whole = lock(&shared.stats).video_frame(p.seq, p.data.len());
        whole &= arrived_whole && (p.keyframe || !first);
        first = false;
        if !whole {
            // Frames that depend on a missing one would only smear: they
            // count as lost, and the next group is asked for now.
            lock(&shared.stats).video_dropped(1);
            shared.keyframe_needed.store(true, Ordering::Relaxed);
            continue;
        }
        let duration_us = p.duration_us.min(MAX_VIDEO_FRAME_US);
        if !shared.playback.push_video(codec, p.capture_us, duration_us, p.keyframe, &p.data) {
            // The decoder is behind (a busy CPU): the rest of this group
            // is skipped, and the next one asked for now.
            tracing::debug!(group, "the video decoder is behind; skipping to the next group");
            whole = false;
            shared.keyframe_needed.store(true, Ordering::Relaxed);
        }
    }
}

/// Applies the peer's reports to our bitrate, its keyframe requests, and
/// the codecs it decodes to our choice of codec.
async fn read_feedback(shared: Arc<Shared>, mut stream: libp2p::Stream) {
    let mut last_keyframe: Option<tokio::time::Instant> = None;
    while let Ok(f) = read_frame::<_, Feedback>(&mut stream, MAX_MEDIA_FRAME).await {
        match f {
            Feedback::Report(r) => {
                let kbps = lock(&shared.rate).on_report(&r);
                shared.feed.set_video_kbps(kbps);
                shared.sent_kbps.store(kbps, Ordering::Relaxed);
            }
            Feedback::KeyframeRequest if last_keyframe.is_none_or(|t| t.elapsed() >= KEYFRAME_EVERY) => {
                last_keyframe = Some(tokio::time::Instant::now());
                shared.feed.request_keyframe();
            }
            Feedback::KeyframeRequest => {}
            Feedback::Decodes(codecs) => shared.feed.set_decodes(&codecs),
        }
    }
}

/// Moves audio from the jitter buffer into the decoder as it falls due.
async fn playout(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PLAYOUT_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = unix_us();
        loop {
            let out = lock(&shared.jitter).pop(now);
            match out {
                None => break,
                Some(Out::Play(p)) => shared.playback.push_audio(p.capture_us, p.duration_us, &p.data),
                Some(Out::Lost { capture_us, duration_us, .. }) => {
                    shared.playback.conceal_audio(capture_us, duration_us)
                }
            }
        }
    }
}

async fn count_decoded(shared: Arc<Shared>, mut decoded: mpsc::UnboundedReceiver<Decoded>) {
    while let Some(d) = decoded.recv().await {
        lock(&shared.stats).decoded(d);
    }
}

/// Once a second: the window's figures, a report to the sender, and the
/// ceiling for the path (a relayed path gets less); and a keyframe
/// request whenever video was lost.
async fn report(shared: Arc<Shared>, mesh: Mesh, decoder_needs: Arc<AtomicBool>) {
    // The first window is a whole second too: an interval's first tick
    // comes at once, and a window of a few milliseconds made the first
    // figures (and the first report the sender sets its bitrate from) wild.
    let mut last = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(last + REPORT_EVERY, REPORT_EVERY);
    let mut keyframes = tokio::time::interval(KEYFRAME_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let period = last.elapsed().as_millis() as u32;
                last = tokio::time::Instant::now();
                let (counts, jitter) = {
                    let mut j = lock(&shared.jitter);
                    (j.take_counts(), j.jitter_us())
                };
                let (snapshot, report) = lock(&shared.stats).window(period, counts, jitter);
                *lock(&shared.last) = Some(snapshot);
                let _ = shared.feedback.try_send(Feedback::Report(report));
                let relayed = mesh.peers().await.iter().any(|p| p.peer == shared.peer && p.path == Path::Relayed);
                let max = if relayed { MAX_RELAYED_KBPS } else { MAX_DIRECT_KBPS };
                let kbps = lock(&shared.rate).set_max(max);
                shared.feed.set_video_kbps(kbps);
                shared.sent_kbps.store(kbps, Ordering::Relaxed);
            }
            _ = keyframes.tick() => {
                let ours = shared.keyframe_needed.swap(false, Ordering::Relaxed);
                let decoder = decoder_needs.swap(false, Ordering::Relaxed);
                if ours || decoder {
                    let _ = shared.feedback.try_send(Feedback::KeyframeRequest);
                }
            }
        }
    }
}
