//! A token bucket: at most `burst` actions at once, refilled at `per_sec`.
//! A pure type (callers pass `now`) for per-connection limits such as
//! presence changes.

use std::time::{Duration, Instant};

/// One bucket.
#[derive(Debug, Clone)]
pub struct RateLimit {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl RateLimit {
    /// A full bucket of `burst` tokens refilled at `per_sec` tokens a second.
    pub fn new(burst: u32, per_sec: f64) -> Self {
        let burst = f64::from(burst.max(1));
        Self { burst, per_sec: per_sec.max(f64::MIN_POSITIVE), tokens: burst, at: None }
    }

    /// Takes a token at `now`, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.per_sec;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let mut r = RateLimit::new(3, 0.5);
        let now = Instant::now();
        for _ in 0..3 {
            r.take(now).expect("the burst");
        }
        let wait = r.take(now).expect_err("empty");
        assert_eq!(wait, Duration::from_secs(2));
        assert!(r.take(now + Duration::from_millis(1900)).is_err());
        r.take(now + Duration::from_secs(2)).expect("refilled one");
        assert!(r.take(now + Duration::from_secs(2)).is_err());
        r.take(now + Duration::from_secs(60)).expect("refilled");
    }
}
