//! Byte counting for the relay: a [`StreamMuxer`] wrapper that counts the
//! bytes of relay substreams per peer and in total.
//!
//! libp2p's relay has no byte hook (its copy loop keeps a private count), so
//! the relay's QUIC transport is mapped through [`CountingMuxer`] right after
//! the handshake, when the remote PeerId is known. Relayed data arrives on
//! the source's connection and leaves on the destination's, so a peer's `rx`
//! is what it sent through the relay and `tx` what it received; the total
//! relayed is the sum of `rx` over all peers.
//!
//! Only HOP and STOP substreams count (see [`super::sniff`]): the relayed
//! data plus the small reservation and circuit set-up messages, a few
//! hundred bytes each. Identify and ping traffic between a node and the
//! relay is not relayed traffic and is left out, as is QUIC's own overhead.

use super::sniff::{Dir, Sniffer};
use libp2p::PeerId;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

/// Running counts for one peer (or for all of them).
#[derive(Debug, Default)]
pub struct Counter {
    /// Bytes read from the peer's connections (peer → relay).
    pub rx: AtomicU64,
    /// Bytes written to the peer's connections (relay → peer).
    pub tx: AtomicU64,
}

impl Counter {
    fn load(&self) -> (u64, u64) {
        (self.rx.load(Ordering::Relaxed), self.tx.load(Ordering::Relaxed))
    }
}

/// The counters of every peer seen, plus the grand total.
///
/// The map is shared with the transport's upgrade closure, which runs for
/// each new connection outside the relay task; a plain mutex suffices because
/// every use is one map operation, never held across an await.
#[derive(Debug, Clone, Default)]
pub struct ByteCounters {
    peers: Arc<Mutex<HashMap<PeerId, Arc<Counter>>>>,
    total: Arc<Counter>,
}

impl ByteCounters {
    fn peers(&self) -> MutexGuard<'_, HashMap<PeerId, Arc<Counter>>> {
        self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The counter for `peer`, created on first use.
    pub fn for_peer(&self, peer: PeerId) -> Arc<Counter> {
        self.peers().entry(peer).or_default().clone()
    }

    /// Wraps a connection's muxer so its substreams count for `peer`.
    pub fn wrap(&self, peer: PeerId, muxer: StreamMuxerBox) -> CountingMuxer {
        CountingMuxer { inner: muxer, peer: self.for_peer(peer), total: self.total.clone() }
    }

    /// Bytes read and written over all peers, ever.
    pub fn total(&self) -> (u64, u64) {
        self.total.load()
    }

    /// `(peer, rx, tx)` for every tracked peer.
    pub fn snapshot(&self) -> Vec<(PeerId, u64, u64)> {
        self.peers().iter().map(|(p, c)| (*p, c.load().0, c.load().1)).collect()
    }

    /// Number of peers tracked.
    pub fn len(&self) -> usize {
        self.peers().len()
    }

    /// Whether no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets peers without a live connection (only the map holds their
    /// counter). Their bytes stay in the total. Returns how many went.
    pub fn forget_disconnected(&self) -> usize {
        let mut peers = self.peers();
        let before = peers.len();
        peers.retain(|_, c| Arc::strong_count(c) > 1);
        before - peers.len()
    }
}

/// A muxer whose substreams count their bytes.
#[derive(Debug)]
pub struct CountingMuxer {
    inner: StreamMuxerBox,
    peer: Arc<Counter>,
    total: Arc<Counter>,
}

impl CountingMuxer {
    fn stream(&self, inner: SubstreamBox) -> CountingStream {
        CountingStream { inner, peer: self.peer.clone(), total: self.total.clone(), sniff: Sniffer::default() }
    }
}

impl StreamMuxer for CountingMuxer {
    type Substream = CountingStream;
    type Error = io::Error;

    fn poll_inbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<CountingStream, io::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner).poll_inbound(cx).map_ok(|s| this.stream(s))
    }

    fn poll_outbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<CountingStream, io::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner).poll_outbound(cx).map_ok(|s| this.stream(s))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, io::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A substream that adds what passes through it to its peer's and the
/// total counters, once it is known to be a relay circuit stream.
#[derive(Debug)]
pub struct CountingStream {
    inner: SubstreamBox,
    peer: Arc<Counter>,
    total: Arc<Counter>,
    sniff: Sniffer,
}

impl CountingStream {
    fn count(&mut self, dir: Dir, bytes: &[u8]) {
        let (rx, tx) = self.sniff.observe(dir, bytes);
        for (c, n) in [(&self.peer.rx, rx), (&self.total.rx, rx), (&self.peer.tx, tx), (&self.total.tx, tx)] {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

impl futures::AsyncRead for CountingStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            let n = *n;
            this.count(Dir::Rx, &buf[..n]);
        }
        r
    }
}

impl futures::AsyncWrite for CountingStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            let n = *n;
            this.count(Dir::Tx, &buf[..n]);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_per_peer_and_forgotten_only_when_unused() {
        let c = ByteCounters::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let held = c.for_peer(a);
        held.rx.fetch_add(10, Ordering::Relaxed);
        c.for_peer(b).tx.fetch_add(5, Ordering::Relaxed);
        assert_eq!(c.len(), 2);
        assert_eq!(c.forget_disconnected(), 1);
        assert_eq!(c.snapshot(), vec![(a, 10, 0)]);
    }
}
