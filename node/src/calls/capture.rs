//! One call's capture, shared by every peer it is sent to.
//!
//! A microphone or camera opens once per call, however many participants
//! a group call has: one [`Capture`] encodes, and a fan-out task hands
//! each encoded frame to every [`Feed`] (a peer's sender), dropping it for
//! a feed that is behind rather than holding the others up. The encoder
//! runs at the lowest bitrate any feed asked for, so the slowest path
//! sets the pace; a feed that joins, or loses a picture, asks for a
//! keyframe, which every feed then gets. Likewise the codec is the best
//! every feed's peer decodes: H.264 when all of them say they do, VP8
//! until then. A peer that decodes no video (it answered audio only) is
//! sent none, and neither its path's bitrate nor its codecs count.

use skein_media::capture::{Capture, CaptureConfig, Encoded};
use skein_media::{Frame, Kind, MediaError, VideoCodec};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Encoded frames a feed may hold before it misses some.
const FEED_QUEUE: usize = 256;

/// Where a call's media comes from, and what it sends.
#[derive(Debug, Clone)]
pub struct CaptureParams {
    /// Send video too (false: audio only, or no camera).
    pub video: bool,
    /// Test sources instead of the devices.
    pub test_source: bool,
    /// The microphone, by name.
    pub microphone: Option<String>,
    /// The camera, by name.
    pub camera: Option<String>,
    /// Where the self-view goes.
    pub self_view: Option<mpsc::Sender<Frame>>,
    /// The video codecs this node encodes and decodes, VP8 first.
    pub codecs: Vec<VideoCodec>,
}

struct Feeds {
    next: u64,
    senders: BTreeMap<u64, mpsc::Sender<Encoded>>,
    kbps: BTreeMap<u64, u32>,
    /// What each feed's peer decodes (VP8 only until it says).
    decodes: BTreeMap<u64, Vec<VideoCodec>>,
}

/// A call's running capture; stops when the last handle is dropped.
pub struct SharedCapture {
    capture: Capture,
    feeds: Arc<Mutex<Feeds>>,
    video: bool,
    codecs: Vec<VideoCodec>,
    muted: AtomicBool,
    camera: AtomicBool,
    /// The bitrate the encoder runs at now.
    kbps: AtomicU64,
    fan_out: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SharedCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCapture").field("video", &self.video).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The bitrate a call's video starts at, kbit/s.
pub const START_KBPS: u32 = 600;

impl SharedCapture {
    /// Starts capturing; a pipeline failure later goes to `on_error`.
    pub fn start(
        params: CaptureParams,
        on_error: impl Fn(String) + Send + 'static,
    ) -> Result<SharedCapture, MediaError> {
        let config = CaptureConfig {
            video: params.video,
            test_source: params.test_source,
            microphone: params.microphone,
            camera: params.camera,
            video_kbps: START_KBPS,
            self_view: params.self_view.is_some(),
            codecs: params.codecs.clone(),
            ..CaptureConfig::default()
        };
        let (tx, mut rx) = mpsc::channel::<Encoded>(FEED_QUEUE);
        let capture = Capture::start(&config, tx, params.self_view, on_error)?;
        let feeds = Arc::new(Mutex::new(Feeds {
            next: 0,
            senders: BTreeMap::new(),
            kbps: BTreeMap::new(),
            decodes: BTreeMap::new(),
        }));
        let to = feeds.clone();
        let fan_out = tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let f = lock(&to);
                for (id, s) in &f.senders {
                    // A peer that takes no video (it answered audio only) is sent none.
                    if matches!(e.kind, Kind::Video(_)) && f.decodes.get(id).is_some_and(Vec::is_empty) {
                        continue;
                    }
                    // A feed 256 frames behind misses this one: its picture
                    // may smear until the next keyframe (2 s at most).
                    let _ = s.try_send(e.clone());
                }
            }
        });
        Ok(SharedCapture {
            capture,
            feeds,
            video: params.video,
            codecs: skein_media::codecs::or_vp8(&params.codecs).to_vec(),
            muted: AtomicBool::new(false),
            camera: AtomicBool::new(params.video),
            kbps: AtomicU64::new(u64::from(START_KBPS)),
            fan_out,
        })
    }

    /// A new feed: its handle, and every encoded frame from a keyframe on.
    pub fn subscribe(self: &Arc<Self>) -> (Feed, mpsc::Receiver<Encoded>) {
        let (tx, rx) = mpsc::channel(FEED_QUEUE);
        let id = {
            let mut f = lock(&self.feeds);
            let id = f.next;
            f.next += 1;
            f.senders.insert(id, tx);
            id
        };
        // Until the new peer says what it decodes, everyone gets VP8.
        self.choose_codec();
        self.capture.request_keyframe();
        (Feed { id, capture: self.clone() }, rx)
    }

    /// Mutes (sends silence) or unmutes the microphone.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
        self.capture.set_muted(muted);
    }

    /// Turns the camera off or on (a call without video stays without).
    pub fn set_camera(&self, on: bool) {
        if self.video {
            self.camera.store(on, Ordering::Relaxed);
            self.capture.set_camera(on);
        }
    }

    /// The video codecs this capture encodes (and its node decodes).
    pub fn codecs(&self) -> &[VideoCodec] {
        &self.codecs
    }

    /// The codec video is sent in now.
    pub fn codec(&self) -> VideoCodec {
        self.capture.codec()
    }

    /// Switches to the best codec every feed's peer decodes.
    fn choose_codec(&self) {
        let best = {
            let f = lock(&self.feeds);
            let theirs: Vec<&[VideoCodec]> =
                f.senders.keys().map(|id| f.decodes.get(id).map_or(&[VideoCodec::Vp8][..], |d| &d[..])).collect();
            skein_media::codecs::choose(&self.codecs, &theirs)
        };
        if self.video && best != self.capture.codec() {
            tracing::info!(codec = %best, "video codec");
            self.capture.set_codec(best);
        }
    }

    /// Whether the microphone is muted.
    pub fn muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    /// Whether the camera is on.
    pub fn camera(&self) -> bool {
        self.camera.load(Ordering::Relaxed)
    }

    fn set_kbps(&self, id: u64, kbps: Option<u32>) {
        let least = {
            let mut f = lock(&self.feeds);
            match kbps {
                Some(k) => f.kbps.insert(id, k),
                None => f.kbps.remove(&id),
            };
            f.kbps.values().copied().min()
        };
        if let Some(least) = least
            && self.kbps.swap(u64::from(least), Ordering::Relaxed) != u64::from(least)
        {
            self.capture.set_video_kbps(least);
        }
    }
}

impl Drop for SharedCapture {
    fn drop(&mut self) {
        self.fan_out.abort();
    }
}

/// One peer's share of a call's capture; leaves it when dropped.
pub struct Feed {
    id: u64,
    capture: Arc<SharedCapture>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Feed {
    /// The bitrate this peer's path can take, kbit/s; the encoder runs at
    /// the least of every feed's that takes video.
    pub fn set_video_kbps(&self, kbps: u32) {
        if self.takes_video() {
            self.capture.set_kbps(self.id, Some(kbps));
        }
    }

    /// The video codecs this peer decodes (none: it takes no video).
    pub fn set_decodes(&self, codecs: &[VideoCodec]) {
        lock(&self.capture.feeds).decodes.insert(self.id, codecs.to_vec());
        if codecs.is_empty() {
            self.capture.set_kbps(self.id, None);
        }
        self.capture.choose_codec();
    }

    /// Whether this peer is sent video: the call has it, and the peer has
    /// not said it takes none.
    pub fn takes_video(&self) -> bool {
        self.capture.video && lock(&self.capture.feeds).decodes.get(&self.id).is_none_or(|d| !d.is_empty())
    }

    /// Asks the encoder for a keyframe.
    pub fn request_keyframe(&self) {
        self.capture.capture.request_keyframe();
    }

    /// The call's capture.
    pub fn capture(&self) -> &SharedCapture {
        &self.capture
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        {
            let mut f = lock(&self.capture.feeds);
            f.senders.remove(&self.id);
            f.decodes.remove(&self.id);
        }
        self.capture.set_kbps(self.id, None);
        self.capture.choose_codec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_media::Kind;
    use std::time::Duration;

    /// The next video frame's codec and whether it is a keyframe.
    async fn next_video(rx: &mut mpsc::Receiver<Encoded>) -> (VideoCodec, bool) {
        let next = async {
            loop {
                match rx.recv().await.expect("frames") {
                    Encoded { kind: Kind::Video(codec), keyframe, .. } => return (codec, keyframe),
                    _ => continue,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), next).await.expect("a video frame in time")
    }

    /// Waits for a keyframe in `codec` (frames in flight may be in the last one).
    async fn keyframe_in(rx: &mut mpsc::Receiver<Encoded>, codec: VideoCodec) {
        for _ in 0..150 {
            if next_video(rx).await == (codec, true) {
                return;
            }
        }
        panic!("no {codec} keyframe in 150 pictures");
    }

    /// A capture of the test sources that encodes VP8 and H.264.
    fn test_capture() -> Arc<SharedCapture> {
        if let Err(e) = skein_media::codecs::usable(&[VideoCodec::H264]) {
            panic!("this test encodes H.264: {e} (scripts/test installs it)");
        }
        let params = CaptureParams {
            video: true,
            test_source: true,
            microphone: None,
            camera: None,
            self_view: None,
            codecs: vec![VideoCodec::Vp8, VideoCodec::H264],
        };
        Arc::new(SharedCapture::start(params, |e| panic!("capture failed: {e}")).expect("capture"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_codec_is_the_best_every_feed_decodes() {
        let capture = test_capture();
        let (alice, mut to_alice) = capture.subscribe();
        let (bob, _to_bob) = capture.subscribe();
        keyframe_in(&mut to_alice, VideoCodec::Vp8).await;

        alice.set_decodes(&[VideoCodec::Vp8, VideoCodec::H264]);
        assert_eq!(capture.codec(), VideoCodec::Vp8, "bob has not said he decodes H.264");
        bob.set_decodes(&[VideoCodec::Vp8, VideoCodec::H264]);
        assert_eq!(capture.codec(), VideoCodec::H264, "everyone decodes H.264");
        keyframe_in(&mut to_alice, VideoCodec::H264).await;

        // Someone new is sent VP8 until they say otherwise; then H.264 again.
        let (carol, mut to_carol) = capture.subscribe();
        assert_eq!(capture.codec(), VideoCodec::Vp8);
        keyframe_in(&mut to_carol, VideoCodec::Vp8).await;
        carol.set_decodes(&[VideoCodec::Vp8]);
        drop(bob);
        assert_eq!(capture.codec(), VideoCodec::Vp8, "carol takes only VP8");
        drop(carol);
        assert_eq!(capture.codec(), VideoCodec::H264, "the one left decodes H.264");
        keyframe_in(&mut to_alice, VideoCodec::H264).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_that_takes_no_video_gets_audio_alone_and_has_no_say() {
        let capture = test_capture();
        let (alice, mut to_alice) = capture.subscribe();
        let (dave, mut to_dave) = capture.subscribe();
        alice.set_decodes(&[VideoCodec::Vp8, VideoCodec::H264]);
        dave.set_video_kbps(100);
        // Dave answered audio only.
        dave.set_decodes(&[]);
        assert!(alice.takes_video() && !dave.takes_video());
        assert_eq!(capture.codec(), VideoCodec::H264, "dave does not hold alice to VP8");
        dave.set_video_kbps(50);
        alice.set_video_kbps(900);
        assert_eq!(capture.kbps.load(Ordering::Relaxed), 900, "dave's path does not set alice's bitrate");
        keyframe_in(&mut to_alice, VideoCodec::H264).await;

        // What was queued for dave before he said so goes; then audio alone.
        while to_dave.try_recv().is_ok() {}
        let (mut audio, mut video) = (0, 0);
        let listen = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Some(e)) = tokio::time::timeout_at(listen, to_dave.recv()).await {
            match e.kind {
                Kind::Audio => audio += 1,
                Kind::Video(_) => video += 1,
            }
        }
        assert!(audio >= 25 && video == 0, "dave got {audio} audio frames and {video} pictures in a second");
    }
}
