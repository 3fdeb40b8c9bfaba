//! Choosing among the organisation's trackers (or relays): the one that
//! answers soonest, with ties broken at random so that devices spread over
//! equally near trackers instead of all piling onto the first listed.
//!
//! The rule is free of IO: callers race their connection attempts and hand
//! over each answer with the time it took ([`Race`]), then ask
//! [`Race::settled`] whether to wait for more and [`Race::pick`] for the
//! winner.

use rand::Rng;
use std::time::Duration;

/// Answers within this fraction of the soonest one (plus [`TIE_SLACK`]) tie
/// with it: the difference is noise in the measurement, not distance.
pub const TIE_FRACTION: f64 = 0.25;
/// The absolute slack of a tie: handshakes on one machine or one LAN
/// differ by this much with no difference in distance.
pub const TIE_SLACK: Duration = Duration::from_millis(3);

/// The answers of a race, in the order they came.
#[derive(Debug)]
pub struct Race<T> {
    answers: Vec<(Duration, T)>,
}

impl<T> Default for Race<T> {
    fn default() -> Self {
        Self { answers: Vec::new() }
    }
}

impl<T> Race<T> {
    /// An empty race.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an answer that took `took` from the start of the race.
    pub fn answered(&mut self, took: Duration, value: T) {
        self.answers.push((took, value));
    }

    /// How many answers came.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// True when no answer came.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// The time until which later answers still tie with the soonest
    /// (`None` before any answer).
    pub fn tie_deadline(&self) -> Option<Duration> {
        let first = self.answers.iter().map(|(d, _)| *d).min()?;
        Some(first + first.mul_f64(TIE_FRACTION) + TIE_SLACK)
    }

    /// True when, `now` after the start, no later answer can tie any more.
    pub fn settled(&self, now: Duration) -> bool {
        self.tie_deadline().is_some_and(|d| now >= d)
    }

    /// The winner: one of the answers that tie with the soonest, chosen
    /// with `rng`; the rest are returned for the caller to close.
    pub fn pick(self, rng: &mut impl Rng) -> Option<(T, Vec<T>)> {
        let deadline = self.tie_deadline()?;
        let tied = self.answers.iter().filter(|(d, _)| *d <= deadline).count();
        let chosen = rng.gen_range(0..tied);
        let mut winner = None;
        let mut rest = Vec::new();
        let mut i = 0;
        for (d, v) in self.answers {
            if d <= deadline {
                if i == chosen {
                    winner = Some(v);
                } else {
                    rest.push(v);
                }
                i += 1;
            } else {
                rest.push(v);
            }
        }
        winner.map(|w| (w, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_clearly_nearer_answer_always_wins() {
        for seed in 0..50 {
            let mut race = Race::new();
            race.answered(ms(4), "near");
            race.answered(ms(40), "far");
            let (w, rest) = race.pick(&mut StdRng::seed_from_u64(seed)).expect("a winner");
            assert_eq!((w, rest), ("near", vec!["far"]));
        }
    }

    #[test]
    fn ties_are_broken_at_random_and_spread() {
        let mut wins = std::collections::HashMap::new();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..400 {
            let mut race = Race::new();
            race.answered(ms(10), "a");
            race.answered(ms(11), "b");
            race.answered(ms(12), "c");
            let (w, rest) = race.pick(&mut rng).expect("a winner");
            assert_eq!(rest.len(), 2);
            *wins.entry(w).or_insert(0) += 1;
        }
        for t in ["a", "b", "c"] {
            let n = wins.get(t).copied().unwrap_or(0);
            assert!((90..=180).contains(&n), "{t} won {n} of 400: {wins:?}");
        }
    }

    #[test]
    fn the_tie_window_grows_with_distance() {
        let mut race = Race::new();
        race.answered(ms(100), 1);
        assert_eq!(race.tie_deadline(), Some(ms(128)));
        assert!(!race.settled(ms(127)));
        assert!(race.settled(ms(128)));
        race.answered(ms(120), 2);
        race.answered(ms(129), 3);
        let (w, rest) = race.pick(&mut StdRng::seed_from_u64(1)).expect("a winner");
        assert!(w == 1 || w == 2);
        assert!(rest.contains(&3));
    }

    #[test]
    fn an_empty_race_has_no_winner() {
        let race: Race<u8> = Race::new();
        assert!(!race.settled(ms(1000)));
        assert!(race.pick(&mut StdRng::seed_from_u64(0)).is_none());
    }
}
