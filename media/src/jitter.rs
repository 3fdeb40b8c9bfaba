//! The receiver's audio jitter buffer: packets arrive out of order and
//! with varying delay; this releases them in order, each at its capture
//! time plus the path's base delay plus a playout delay that follows the
//! measured jitter. A packet that has not come by its turn is released as
//! lost, so the decoder conceals it (or recovers it from the next
//! packet's forward error correction) instead of the audio stopping.
//!
//! Pure: time comes in as µs, nothing here reads a clock.

use std::collections::BTreeMap;

/// Least playout delay, µs.
pub const MIN_DELAY_US: u64 = 20_000;
/// Most playout delay, µs.
pub const MAX_DELAY_US: u64 = 200_000;
/// Most packets held (about 2.5 s of 20 ms packets).
pub const MAX_HELD: usize = 128;

/// One audio packet, as the buffer holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The sender's number for it.
    pub seq: u32,
    /// Capture time, µs since the Unix epoch.
    pub capture_us: u64,
    /// How long it plays, µs.
    pub duration_us: u32,
    /// The encoded audio.
    pub data: Vec<u8>,
}

/// What the buffer releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Play this packet.
    Play(Packet),
    /// This packet did not come in time: conceal it.
    Lost {
        /// Its number.
        seq: u32,
        /// When it would have been captured, µs since the Unix epoch.
        capture_us: u64,
        /// How long it would have played, µs.
        duration_us: u32,
    },
}

/// What a push did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Held for its turn.
    Held,
    /// Already held or played.
    Duplicate,
    /// Its turn has passed (it was released as lost).
    Late,
}

/// Counts since the last [`JitterBuffer::take_counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets released to play.
    pub played: u32,
    /// Packets released as lost.
    pub lost: u32,
    /// Packets that came after their turn.
    pub late: u32,
}

/// The jitter buffer of one audio stream.
#[derive(Debug, Default)]
pub struct JitterBuffer {
    held: BTreeMap<u32, Packet>,
    next: Option<u32>,
    /// The capture time and length of the last packet released.
    last: Option<(u64, u32)>,
    /// Least transit time seen (arrival − capture), µs; clocks may differ,
    /// so this may be negative.
    base: Option<i64>,
    last_transit: Option<i64>,
    /// Interarrival jitter (RFC 3550's estimator), µs.
    jitter: f64,
    counts: Counts,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The playout delay now, µs: four times the jitter, within bounds.
    pub fn delay_us(&self) -> u64 {
        ((self.jitter * 4.0) as u64).clamp(MIN_DELAY_US, MAX_DELAY_US)
    }

    /// The interarrival jitter, µs.
    pub fn jitter_us(&self) -> u32 {
        self.jitter as u32
    }

    /// Counts since the last call.
    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// A packet arrived at `now_us`.
    pub fn push(&mut self, now_us: u64, packet: Packet) -> Pushed {
        let transit = now_us as i64 - packet.capture_us as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        self.base = Some(self.base.map_or(transit, |b| b.min(transit)));
        if self.next.is_some_and(|n| packet.seq < n) {
            self.counts.late += 1;
            return Pushed::Late;
        }
        if self.held.contains_key(&packet.seq) {
            return Pushed::Duplicate;
        }
        if self.next.is_none() {
            self.next = Some(packet.seq);
        }
        if self.held.len() >= MAX_HELD {
            // Far behind: the oldest is dropped as lost.
            if let Some((seq, old)) = self.held.pop_first() {
                self.counts.lost += 1;
                self.next = Some(seq.saturating_add(1));
                self.last = Some((old.capture_us, old.duration_us));
            }
        }
        self.held.insert(packet.seq, packet);
        Pushed::Held
    }

    fn due(&self, capture_us: u64) -> u64 {
        (capture_us as i64 + self.base.unwrap_or(0) + self.delay_us() as i64).max(0) as u64
    }

    /// What is due by `now_us`, one at a time; `None` when nothing is.
    pub fn pop(&mut self, now_us: u64) -> Option<Out> {
        let next = self.next?;
        if let Some(p) = self.held.get(&next) {
            if self.due(p.capture_us) > now_us {
                return None;
            }
            let p = self.held.remove(&next)?;
            self.next = Some(next.saturating_add(1));
            self.last = Some((p.capture_us, p.duration_us));
            self.counts.played += 1;
            return Some(Out::Play(p));
        }
        // The next packet is missing: it is lost once a later one is due,
        // or once its own turn (by the last one's timing) has passed.
        let (&later_seq, later) = self.held.first_key_value()?;
        if later_seq - next > MAX_HELD as u32 {
            // A jump no real sender makes (a peer's garbage): skip to what
            // came, counting one loss, rather than conceal every number
            // in between.
            let (capture_us, duration_us) = (later.capture_us, later.duration_us);
            self.next = Some(later_seq);
            self.counts.lost += 1;
            return Some(Out::Lost { seq: next, capture_us, duration_us });
        }
        let (capture_us, duration_us) = match self.last {
            Some((c, d)) => (c + u64::from(d), d),
            None => {
                let d = later.duration_us;
                (later.capture_us.saturating_sub(u64::from(later_seq - next) * u64::from(d)), d)
            }
        };
        if self.due(capture_us) > now_us && self.due(later.capture_us) > now_us {
            return None;
        }
        self.next = Some(next.saturating_add(1));
        self.last = Some((capture_us, duration_us));
        self.counts.lost += 1;
        Some(Out::Lost { seq: next, capture_us, duration_us })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u32) -> Packet {
        Packet { seq, capture_us: 1_000_000 + u64::from(seq) * 20_000, duration_us: 20_000, data: vec![seq as u8] }
    }

    fn drain(j: &mut JitterBuffer, now: u64) -> Vec<Out> {
        std::iter::from_fn(|| j.pop(now)).collect()
    }

    #[test]
    fn packets_play_in_order_after_the_playout_delay() {
        let mut j = JitterBuffer::new();
        // Transit 5 ms; 1 and 0 swapped on the way.
        assert_eq!(j.push(1_025_000, packet(1)), Pushed::Held);
        assert_eq!(j.push(1_026_000, packet(0)), Pushed::Late, "0 came after 1 started the stream");
        let mut j = JitterBuffer::new();
        j.push(1_005_000, packet(0));
        j.push(1_030_000, packet(2));
        j.push(1_031_000, packet(1));
        assert!(drain(&mut j, 1_005_000).is_empty(), "nothing before the playout delay");
        let out = drain(&mut j, 1_005_000 + MAX_DELAY_US + 40_000);
        let seqs: Vec<u32> = out
            .iter()
            .map(|o| match o {
                Out::Play(p) => p.seq,
                Out::Lost { seq, .. } => panic!("{seq} lost"),
            })
            .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        assert_eq!(j.take_counts(), Counts { played: 3, lost: 0, late: 0 });
    }

    #[test]
    fn a_missing_packet_is_released_as_lost_in_its_turn_and_a_late_one_is_refused() {
        let mut j = JitterBuffer::new();
        for seq in [0, 1, 3, 4] {
            j.push(packet(seq).capture_us + 2_000, packet(seq));
        }
        let out = drain(&mut j, 2_000_000);
        assert_eq!(out.len(), 5);
        assert_eq!(out[2], Out::Lost { seq: 2, capture_us: packet(2).capture_us, duration_us: 20_000 });
        assert!(matches!(&out[3], Out::Play(p) if p.seq == 3));
        assert_eq!(j.push(2_000_000, packet(2)), Pushed::Late);
        assert_eq!(j.take_counts(), Counts { played: 4, lost: 1, late: 1 });
    }

    #[test]
    fn duplicates_are_ignored_and_jitter_raises_the_delay() {
        let mut j = JitterBuffer::new();
        j.push(1_000_000, packet(0));
        assert_eq!(j.push(1_000_000, packet(0)), Pushed::Duplicate);
        assert_eq!(j.delay_us(), MIN_DELAY_US);
        // Transit swinging by 40 ms from packet to packet.
        for seq in 1..60 {
            let swing = if seq % 2 == 0 { 0 } else { 40_000 };
            j.push(packet(seq).capture_us + swing, packet(seq));
            drain(&mut j, packet(seq).capture_us + swing);
        }
        assert!(j.delay_us() > 100_000, "the delay follows the jitter: {}", j.delay_us());
        assert!(j.delay_us() <= MAX_DELAY_US);
    }

    #[test]
    fn a_sequence_jump_is_skipped_in_one_step() {
        let mut j = JitterBuffer::new();
        j.push(1_000_000, packet(0));
        let wild = Packet { seq: u32::MAX, capture_us: 0, duration_us: 20_000, data: vec![] };
        j.push(1_000_000, wild);
        let out = drain(&mut j, 10_000_000);
        assert_eq!(out.len(), 3, "0, one loss for the jump, then the far packet: {out:?}");
        assert!(matches!(out[2], Out::Play(ref p) if p.seq == u32::MAX));
        assert_eq!(j.push(10_000_000, packet(5)), Pushed::Late);
    }

    #[test]
    fn a_flood_is_bounded() {
        let mut j = JitterBuffer::new();
        for seq in 0..(MAX_HELD as u32 + 50) {
            j.push(0, packet(seq));
        }
        assert!(j.held.len() <= MAX_HELD);
    }
}
