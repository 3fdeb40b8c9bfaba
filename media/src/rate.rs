//! The sender's video bitrate: it follows what the receiver reports it got
//! and lost, so a call on a thin or lossy path (a relay, a congested WAN
//! link) sends less instead of piling frames up behind the loss.
//!
//! - Loss over [`HEAVY_LOSS`] cuts the bitrate by 30%, loss over
//!   [`LIGHT_LOSS`] by 10%.
//! - When what arrived falls well short of what was sent, the bitrate drops
//!   to just under what arrived: that is what the path carries.
//! - Otherwise it rises by 8% a report, up to the ceiling.
//! - A sender whose own queue overflowed halves it at once.
//!
//! Pure: reports in, bitrate out.

use skein_proto::media::ReceiverReport;

/// Loss (of video frames) above which the bitrate falls by 30%.
pub const HEAVY_LOSS: f64 = 0.10;
/// Loss above which the bitrate falls by 10%.
pub const LIGHT_LOSS: f64 = 0.02;
/// The least video bitrate, kbit/s.
pub const MIN_KBPS: u32 = 100;

/// The video bitrate of one call's sender.
#[derive(Debug, Clone)]
pub struct RateControl {
    target: u32,
    max: u32,
}

impl RateControl {
    /// Starts at `start` kbit/s, never above `max`.
    pub fn new(start: u32, max: u32) -> Self {
        let max = max.max(MIN_KBPS);
        Self { target: start.clamp(MIN_KBPS, max), max }
    }

    /// The bitrate now, kbit/s.
    pub fn target(&self) -> u32 {
        self.target
    }

    /// A new ceiling (a relayed path gets less than a direct one).
    pub fn set_max(&mut self, max: u32) -> u32 {
        self.max = max.max(MIN_KBPS);
        self.target = self.target.min(self.max);
        self.target
    }

    /// A receiver's report: the new bitrate, kbit/s.
    pub fn on_report(&mut self, r: &ReceiverReport) -> u32 {
        if r.period_ms == 0 || r.video_expected == 0 {
            return self.target;
        }
        let loss = f64::from(r.video_lost) / f64::from(r.video_expected);
        let got_kbps = (r.video_bytes as f64 * 8.0 / f64::from(r.period_ms)) as u32;
        let next = if loss > HEAVY_LOSS {
            f64::from(self.target) * 0.7
        } else if loss > LIGHT_LOSS {
            f64::from(self.target) * 0.9
        } else if got_kbps < self.target * 6 / 10 {
            f64::from(got_kbps) * 0.9
        } else {
            f64::from(self.target) * 1.08
        };
        self.target = (next as u32).clamp(MIN_KBPS, self.max);
        self.target
    }

    /// The sender's own queue overflowed: halve at once.
    pub fn on_backlog(&mut self) -> u32 {
        self.target = (self.target / 2).clamp(MIN_KBPS, self.max);
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(kbps: u64, expected: u32, lost: u32) -> ReceiverReport {
        ReceiverReport {
            period_ms: 1000,
            video_bytes: kbps * 1000 / 8,
            video_expected: expected,
            video_lost: lost,
            audio_expected: 50,
            audio_lost: 0,
            jitter_us: 0,
        }
    }

    #[test]
    fn a_clean_path_climbs_to_the_ceiling_and_stays() {
        let mut r = RateControl::new(300, 1200);
        for _ in 0..40 {
            let t = r.target();
            r.on_report(&report(u64::from(t), 30, 0));
        }
        assert_eq!(r.target(), 1200);
    }

    #[test]
    fn loss_cuts_and_a_thin_path_is_followed() {
        let mut r = RateControl::new(1000, 1500);
        assert_eq!(r.on_report(&report(1000, 30, 6)), 700, "20% loss: −30%");
        assert_eq!(r.on_report(&report(700, 30, 1)), 630, "3% loss: −10%");
        assert_eq!(r.on_report(&report(200, 30, 0)), 180, "only 200 kbit/s arrived");
        assert_eq!(r.on_backlog(), MIN_KBPS, "halved, but never under the floor");
        assert_eq!(r.on_report(&report(0, 0, 0)), MIN_KBPS, "an empty report changes nothing");
    }

    #[test]
    fn a_relayed_path_lowers_the_ceiling() {
        let mut r = RateControl::new(1200, 1500);
        assert_eq!(r.set_max(500), 500);
        for _ in 0..10 {
            let t = r.target();
            r.on_report(&report(u64::from(t), 30, 0));
        }
        assert_eq!(r.target(), 500);
    }
}
