//! How long a request waits for its answer: a vanished peer told from a
//! slow one.
//!
//! A peer that vanished (killed, its cable pulled) leaves connections that
//! look established until their idle timeout, and a send must not wait
//! that long before the mailbox takes over. A peer that is only slow (busy
//! storing, a lossy or loaded link) must not lose its message to the
//! mailbox either. So one attempt waits [`MeshConfig::attempt_timeout`]
//! for the answer, and halfway through, if none came, probes the peer: it
//! asks the peer's connection for a stream of [`PROBE`], a protocol no node
//! serves. The peer's own stream negotiation answering "not supported" (or
//! a node that serves it accepting) shows that the peer is there, without
//! touching its application. At the attempt's end a peer that answered
//! neither the request nor the probe is taken for gone; one that answered
//! the probe is given up to [`MeshConfig::answer_timeout`] in all.
//!
//! [`MeshConfig::attempt_timeout`]: super::MeshConfig::attempt_timeout
//! [`MeshConfig::answer_timeout`]: super::MeshConfig::answer_timeout

use libp2p::StreamProtocol;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The protocol a probe asks for. No node serves it: a live peer answers
/// the negotiation with "not supported".
pub const PROBE: StreamProtocol = StreamProtocol::new("/skein/probe/0");

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt<T> {
    /// The answer came within the attempt.
    Answered(T),
    /// No answer yet, but the peer answered the probe: it is slow, not gone.
    Alive,
    /// Neither the answer nor the probe's came: the peer is gone.
    Silent,
}

/// Waits `attempt` for `answer`, starting `probe` (true when the peer
/// showed it is there) halfway through if no answer came by then. The
/// answer stays pollable after [`Attempt::Alive`], to go on waiting.
pub async fn attempt<F, P>(answer: &mut Pin<Box<F>>, probe: P, attempt: Duration) -> Attempt<F::Output>
where
    F: Future + ?Sized,
    P: Future<Output = bool>,
{
    let half = attempt / 2;
    if let Ok(out) = tokio::time::timeout(half, answer.as_mut()).await {
        return Attempt::Answered(out);
    }
    let rest = tokio::time::sleep(attempt - half);
    tokio::pin!(rest, probe);
    let mut alive = false;
    let mut probing = true;
    loop {
        tokio::select! {
            out = answer.as_mut() => return Attempt::Answered(out),
            seen = &mut probe, if probing => {
                probing = false;
                alive = seen;
            }
            () = &mut rest => return if alive { Attempt::Alive } else { Attempt::Silent },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTEMPT: Duration = Duration::from_millis(200);

    fn after<T: Send + 'static>(d: Duration, v: T) -> Pin<Box<dyn Future<Output = T> + Send>> {
        Box::pin(async move {
            tokio::time::sleep(d).await;
            v
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_within_the_attempt_is_taken_without_a_probe() {
        let mut answer = after(Duration::from_millis(50), 7);
        let probe = async { panic!("no probe is needed when the answer comes in the first half") };
        assert_eq!(attempt(&mut answer, probe, ATTEMPT).await, Attempt::Answered(7));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_the_second_half_is_taken_whatever_the_probe_says() {
        let mut answer = after(Duration::from_millis(150), 7);
        let probe = after(Duration::from_secs(10), false);
        assert_eq!(attempt(&mut answer, probe, ATTEMPT).await, Attempt::Answered(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_the_probe_is_alive_and_its_answer_still_comes() {
        let mut answer = after(Duration::from_millis(900), 7);
        let start = tokio::time::Instant::now();
        assert_eq!(attempt(&mut answer, after(Duration::from_millis(10), true), ATTEMPT).await, Attempt::Alive);
        assert_eq!(start.elapsed(), ATTEMPT, "the attempt runs its whole length");
        assert_eq!(answer.await, 7, "the answer can still be waited for");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_neither_is_silent() {
        let mut answer = after(Duration::from_secs(60), 7);
        let hung_probe = after(Duration::from_secs(60), true);
        assert_eq!(attempt(&mut answer, hung_probe, ATTEMPT).await, Attempt::Silent);
        let mut answer = after(Duration::from_secs(60), 7);
        let failed_probe = after(Duration::from_millis(1), false);
        assert_eq!(attempt(&mut answer, failed_probe, ATTEMPT).await, Attempt::Silent);
    }
}
