//! Raw streams (bulk content) bound to the hello.
//!
//! Raw streams are opened and accepted outside the mesh task, by
//! `libp2p-stream`, which takes a stream from any connected peer. The mesh
//! hands out [`Streams`] instead: an incoming stream from a peer that has
//! not passed the hello is dropped the moment it arrives (the peer sees it
//! end at once), so a stranger gets nothing to hold open and nothing read.

use super::Command;
use futures::{Stream, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// Opens raw streams to peers and accepts them from verified peers.
#[derive(Clone)]
pub struct Streams {
    control: libp2p_stream::Control,
    mesh: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").finish_non_exhaustive()
    }
}

impl Streams {
    pub(super) fn new(control: libp2p_stream::Control, mesh: mpsc::Sender<Command>) -> Self {
        Self { control, mesh }
    }

    /// Opens a stream for `protocol` to `peer`, on a connection that exists.
    pub async fn open_stream(
        &mut self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<libp2p::Stream, libp2p_stream::OpenStreamError> {
        self.control.open_stream(peer, protocol).await
    }

    /// Accepts streams for `protocol` from peers that passed the hello;
    /// any other peer's stream is dropped at once.
    pub fn accept(&mut self, protocol: StreamProtocol) -> Result<VerifiedStreams, libp2p_stream::AlreadyRegistered> {
        let incoming = self.control.accept(protocol.clone())?;
        let mesh = self.mesh.clone();
        let gated = futures::stream::unfold((incoming, mesh), move |(mut incoming, mesh)| {
            let protocol = protocol.clone();
            async move {
                loop {
                    let (peer, stream) = incoming.next().await?;
                    if is_verified(&mesh, peer).await {
                        return Some(((peer, stream), (incoming, mesh)));
                    }
                    tracing::debug!(%peer, %protocol, "refusing a stream from a peer that has not passed the hello");
                    drop(stream);
                }
            }
        });
        Ok(VerifiedStreams { inner: Box::pin(gated) })
    }
}

/// Asks the mesh whether `peer` passed the hello; `false` once it stopped.
async fn is_verified(mesh: &mpsc::Sender<Command>, peer: PeerId) -> bool {
    let (reply, rx) = oneshot::channel();
    if mesh.send(Command::IsVerified { peer, reply }).await.is_err() {
        return false;
    }
    rx.await.unwrap_or(false)
}

/// Incoming streams from verified peers: `(peer, stream)`.
pub struct VerifiedStreams {
    inner: Pin<Box<dyn Stream<Item = (PeerId, libp2p::Stream)> + Send>>,
}

impl std::fmt::Debug for VerifiedStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedStreams").finish_non_exhaustive()
    }
}

impl Stream for VerifiedStreams {
    type Item = (PeerId, libp2p::Stream);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Whether a stream failed because the peer answered that it does not
/// serve the protocol asked for. Streams are negotiated lazily (the
/// request goes with the first data), so that answer comes as the first
/// read's error rather than from opening the stream.
pub fn is_not_supported(e: &std::io::Error) -> bool {
    use libp2p::core::upgrade::NegotiationError;
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<NegotiationError>())
        .is_some_and(|n| matches!(n, NegotiationError::Failed))
}
