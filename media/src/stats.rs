//! What a receiver measures of a call, a window (about a second) at a
//! time: bitrates, frame rate, loss, glass-to-glass latency, and gaps in
//! the decoded audio. Also the report it sends the sender
//! ([`ReceiverReport`]) for its bitrate.
//!
//! Pure: frames and decoder output in, numbers out.

use crate::jitter::Counts;
use crate::playback::Decoded;
use skein_proto::media::ReceiverReport;

/// A hole in the decoded audio longer than this is a gap.
pub const AUDIO_GAP_US: u64 = 100_000;

/// One window's figures, plus the call's totals so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// Audio received, kbit/s.
    pub audio_kbps: f64,
    /// Video received, kbit/s.
    pub video_kbps: f64,
    /// Pictures decoded a second.
    pub fps: f64,
    /// Frames lost (audio and video together), percent.
    pub loss_pct: f64,
    /// Audio interarrival jitter, ms.
    pub jitter_ms: f64,
    /// Median glass-to-glass latency of the window's audio, ms.
    pub audio_latency_ms: Option<f64>,
    /// Median glass-to-glass latency of the window's pictures, ms.
    pub video_latency_ms: Option<f64>,
    /// Pictures decoded in the whole call.
    pub frames_received: u64,
    /// Video frames that arrived in the whole call.
    pub video_frames_arrived: u64,
    /// Gaps over [`AUDIO_GAP_US`] in the decoded audio, in the whole call.
    pub audio_gaps: u64,
    /// The longest hole in the decoded audio so far, ms.
    pub longest_audio_gap_ms: f64,
}

/// A receiver's running measurements.
#[derive(Debug, Default)]
pub struct ReceiveStats {
    audio_bytes: u64,
    video_bytes: u64,
    video_arrived: u32,
    video_lost: u32,
    next_video_seq: Option<u32>,
    decoded_pictures: u32,
    audio_latency: Vec<u64>,
    video_latency: Vec<u64>,
    audio_end_us: Option<u64>,
    total_pictures: u64,
    total_video_arrived: u64,
    audio_gaps: u64,
    longest_gap_us: u64,
    /// Every latency sample of the call, for benchmarks (bounded).
    all_audio: Vec<u64>,
    all_video: Vec<u64>,
}

/// Most latency samples kept for the whole call (about 20 minutes of audio).
const MAX_SAMPLES: usize = 60_000;

impl ReceiveStats {
    /// An audio packet of `bytes` arrived.
    pub fn audio_packet(&mut self, bytes: usize) {
        self.audio_bytes += bytes as u64;
    }

    /// A video frame arrived. Returns false when frames before it were
    /// lost (its sequence number skipped some).
    pub fn video_frame(&mut self, seq: u32, bytes: usize) -> bool {
        self.video_bytes += bytes as u64;
        self.video_arrived += 1;
        self.total_video_arrived += 1;
        let whole = match self.next_video_seq {
            Some(next) if seq > next => {
                self.video_lost = self.video_lost.saturating_add(seq - next);
                false
            }
            _ => true,
        };
        if self.next_video_seq.is_none_or(|n| seq >= n) {
            self.next_video_seq = Some(seq.saturating_add(1));
        }
        whole
    }

    /// Frames that arrived but could not be used (a group given up).
    pub fn video_dropped(&mut self, frames: u32) {
        self.video_lost += frames;
    }

    /// A frame came out of a decoder.
    pub fn decoded(&mut self, d: Decoded) {
        match d {
            Decoded::Audio { capture_us, duration_us, at_us } => {
                if let Some(end) = self.audio_end_us {
                    let hole = capture_us.saturating_sub(end);
                    self.longest_gap_us = self.longest_gap_us.max(hole);
                    if hole > AUDIO_GAP_US {
                        self.audio_gaps += 1;
                    }
                }
                let end = capture_us + duration_us;
                self.audio_end_us = Some(self.audio_end_us.map_or(end, |e| e.max(end)));
                let latency = at_us.saturating_sub(capture_us);
                self.audio_latency.push(latency);
                if self.all_audio.len() < MAX_SAMPLES {
                    self.all_audio.push(latency);
                }
            }
            Decoded::Video { capture_us, at_us } => {
                self.decoded_pictures += 1;
                self.total_pictures += 1;
                let latency = at_us.saturating_sub(capture_us);
                self.video_latency.push(latency);
                if self.all_video.len() < MAX_SAMPLES {
                    self.all_video.push(latency);
                }
            }
        }
    }

    /// Closes a window of `period_ms` with the jitter buffer's counts:
    /// its figures, and the report for the sender.
    pub fn window(&mut self, period_ms: u32, audio: Counts, jitter_us: u32) -> (Snapshot, ReceiverReport) {
        let secs = f64::from(period_ms.max(1)) / 1000.0;
        let audio_expected = audio.played.saturating_add(audio.lost);
        let video_expected = self.video_arrived.saturating_add(self.video_lost);
        let expected = audio_expected.saturating_add(video_expected);
        let lost = audio.lost.saturating_add(self.video_lost);
        let snapshot = Snapshot {
            audio_kbps: self.audio_bytes as f64 * 8.0 / 1000.0 / secs,
            video_kbps: self.video_bytes as f64 * 8.0 / 1000.0 / secs,
            fps: f64::from(self.decoded_pictures) / secs,
            loss_pct: if expected == 0 { 0.0 } else { f64::from(lost) * 100.0 / f64::from(expected) },
            jitter_ms: f64::from(jitter_us) / 1000.0,
            audio_latency_ms: median_ms(&mut self.audio_latency),
            video_latency_ms: median_ms(&mut self.video_latency),
            frames_received: self.total_pictures,
            video_frames_arrived: self.total_video_arrived,
            audio_gaps: self.audio_gaps,
            longest_audio_gap_ms: self.longest_gap_us as f64 / 1000.0,
        };
        let report = ReceiverReport {
            period_ms,
            video_bytes: self.video_bytes,
            video_expected,
            video_lost: self.video_lost,
            audio_expected,
            audio_lost: audio.lost,
            jitter_us,
        };
        self.audio_bytes = 0;
        self.video_bytes = 0;
        self.video_arrived = 0;
        self.video_lost = 0;
        self.decoded_pictures = 0;
        self.audio_latency.clear();
        self.video_latency.clear();
        (snapshot, report)
    }

    /// Puts the call's totals as they are now into `s`.
    pub fn totals(&self, s: &mut Snapshot) {
        s.frames_received = self.total_pictures;
        s.video_frames_arrived = self.total_video_arrived;
        s.audio_gaps = self.audio_gaps;
        s.longest_audio_gap_ms = self.longest_gap_us as f64 / 1000.0;
    }

    /// Every glass-to-glass latency of the call so far, µs: audio, video.
    pub fn latencies(&self) -> (&[u64], &[u64]) {
        (&self.all_audio, &self.all_video)
    }
}

fn median_ms(v: &mut [u64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2] as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_adds_up_what_came_and_what_was_lost() {
        let mut s = ReceiveStats::default();
        for seq in [0, 1, 2, 5] {
            s.video_frame(seq, 1000);
        }
        for i in 0..50u64 {
            s.audio_packet(100);
            s.decoded(Decoded::Audio { capture_us: i * 20_000, duration_us: 20_000, at_us: i * 20_000 + 30_000 });
        }
        for i in 0..3u64 {
            s.decoded(Decoded::Video { capture_us: i * 33_000, at_us: i * 33_000 + 50_000 });
        }
        let (snap, report) = s.window(1000, Counts { played: 48, lost: 2, late: 0 }, 1500);
        assert_eq!(snap.video_kbps, 32.0);
        assert_eq!(snap.audio_kbps, 40.0);
        assert_eq!(snap.fps, 3.0);
        // 2 of 50 audio and 2 of 6 video.
        assert!((snap.loss_pct - 4.0 * 100.0 / 56.0).abs() < 1e-9);
        assert_eq!(snap.audio_latency_ms, Some(30.0));
        assert_eq!(snap.video_latency_ms, Some(50.0));
        assert_eq!(snap.audio_gaps, 0);
        assert_eq!(report.video_expected, 6);
        assert_eq!(report.video_lost, 2);
        assert_eq!(report.audio_lost, 2);
        let (next, _) = s.window(1000, Counts::default(), 0);
        assert_eq!(next.frames_received, 3, "totals carry over");
        assert_eq!(next.fps, 0.0, "window figures do not");
    }

    #[test]
    fn a_hole_in_the_decoded_audio_over_100_ms_is_a_gap() {
        let mut s = ReceiveStats::default();
        s.decoded(Decoded::Audio { capture_us: 0, duration_us: 20_000, at_us: 0 });
        s.decoded(Decoded::Audio { capture_us: 100_000, duration_us: 20_000, at_us: 0 });
        s.decoded(Decoded::Audio { capture_us: 240_000, duration_us: 20_000, at_us: 0 });
        let (snap, _) = s.window(1000, Counts::default(), 0);
        assert_eq!(snap.audio_gaps, 1, "an 80 ms hole is not a gap; a 120 ms one is");
        assert_eq!(snap.longest_audio_gap_ms, 120.0);
    }
}
