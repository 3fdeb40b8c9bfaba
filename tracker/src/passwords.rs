//! Password hashing with a bound on the work in flight.
//!
//! argon2id costs about 19 MiB and tens of milliseconds per run (at the
//! default cost). Run on tokio's blocking pool without a bound, a burst of
//! logins would start one run per request, hundreds at once, and take
//! gigabytes. Here at most `parallel` runs (one per core by default) go at
//! a time; the rest wait their turn, for at most `max_wait`, and are then
//! told the tracker is busy and when to retry.

use crate::auth::{AuthError, PasswordCost, hash_password_blocking, verify_password_blocking};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Why a password could not be checked or hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Every hashing slot stayed taken for the longest wait.
    #[error("the tracker is busy checking other passwords; retry in {} s", .0.as_secs().max(1))]
    Busy(Duration),
    /// Hashing itself failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// The tracker's password hasher: argon2id at the configured cost, a few
/// runs at a time.
#[derive(Debug)]
pub struct Passwords {
    cost: PasswordCost,
    slots: Arc<Semaphore>,
    max_wait: Duration,
    runs: Arc<AtomicU64>,
    in_flight: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
    dummy: Arc<OnceLock<String>>,
}

impl Passwords {
    /// A hasher running at most `parallel` hashes at a time (at least one),
    /// queueing others for up to `max_wait`.
    pub fn new(cost: PasswordCost, parallel: usize, max_wait: Duration) -> Self {
        Self {
            cost,
            slots: Arc::new(Semaphore::new(parallel.max(1))),
            max_wait,
            runs: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::new(AtomicU64::new(0)),
            peak: Arc::new(AtomicU64::new(0)),
            dummy: Arc::new(OnceLock::new()),
        }
    }

    /// One hashing slot per available core.
    pub fn per_core(cost: PasswordCost) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(cost, cores, Duration::from_secs(5))
    }

    /// How many argon2 runs this hasher has started (verifications and
    /// hashes alike), for tests and metrics.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// The most hashes that ever ran at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Checks `password` against a stored PHC string. With `phc: None` (no
    /// such user) a dummy hash of the configured cost is checked instead,
    /// so the answer takes as long either way and does not reveal which
    /// names exist.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, PasswordError> {
        let (cost, dummy) = (self.cost.clone(), self.dummy.clone());
        self.run(move || match phc {
            Some(phc) => verify_password_blocking(&password, &phc),
            None => {
                let dummy =
                    dummy.get_or_init(|| hash_password_blocking("not a real password", &cost).unwrap_or_default());
                let _ = verify_password_blocking(&password, dummy);
                Ok(false)
            }
        })
        .await
    }

    /// Hashes a new password at the configured cost.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let cost = self.cost.clone();
        self.run(move || hash_password_blocking(&password, &cost)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let slot = match tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(AuthError::Worker.into()),
            Err(_) => return Err(PasswordError::Busy(Duration::from_secs(2))),
        };
        self.runs.fetch_add(1, Ordering::Relaxed);
        let (in_flight, peak) = (self.in_flight.clone(), self.peak.clone());
        tokio::task::spawn_blocking(move || {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let result = work();
            in_flight.fetch_sub(1, Ordering::SeqCst);
            drop(slot);
            result
        })
        .await
        .map_err(|_| PasswordError::Auth(AuthError::Worker))?
        .map_err(PasswordError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordCost {
        PasswordCost { m_cost: 256, t_cost: 1, p_cost: 1 }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_the_slots_run_at_once_and_the_rest_are_told_to_retry() {
        // A cost slow enough that 40 runs cannot fit one slot's wait.
        let cost = PasswordCost { m_cost: 8 * 1024, t_cost: 3, p_cost: 1 };
        let passwords = Arc::new(Passwords::new(cost, 1, Duration::from_millis(50)));
        let tries: Vec<_> = (0..40)
            .map(|_| {
                let p = passwords.clone();
                tokio::spawn(async move { p.hash("a new password".into()).await })
            })
            .collect();
        let mut busy = 0;
        for t in tries {
            if let Err(PasswordError::Busy(_)) = t.await.expect("task") {
                busy += 1;
            }
        }
        assert!(busy > 0, "waiters beyond the longest wait are refused");
        assert_eq!(passwords.runs() + busy, 40);
        assert_eq!(passwords.peak(), 1, "one slot, one hash at a time");
    }

    #[tokio::test]
    async fn unknown_users_cost_a_hash_at_the_configured_cost() {
        let passwords = Passwords::new(cheap(), 2, Duration::from_secs(5));
        assert!(!passwords.verify("guess".into(), None).await.expect("verify"));
        let dummy = passwords.dummy.get().expect("the dummy was made");
        assert!(dummy.contains("m=256,t=1,p=1"), "dummy at the configured cost: {dummy}");
        let real = passwords.hash("a good password".into()).await.expect("hash");
        assert!(passwords.verify("a good password".into(), Some(real)).await.expect("verify"));
        assert_eq!(passwords.runs(), 3);
    }
}
