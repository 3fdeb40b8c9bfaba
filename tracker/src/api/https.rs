//! HTTPS for the HTTP API (`--api-tls`): the tracker's own certificate,
//! which the organisation CA signed, so a company system trusts the
//! organisation's `ca.pem` (`curl --cacert ca.pem https://…`).
//!
//! TCP connections are accepted in one task and their TLS handshakes run
//! each in a task of its own, at most [`MAX_HANDSHAKES`] at once and each
//! within [`HANDSHAKE_WITHIN`], so a client that connects and says nothing
//! holds up no one else. Finished ones are handed to axum as a
//! [`Listener`].

use axum::serve::Listener;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Handshakes under way at once, at most.
pub const MAX_HANDSHAKES: usize = 256;
/// How long a client has to finish its handshake.
pub const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// TLS connections, handshakes done.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` with `tls` until `shutdown`.
    pub fn new(tcp: TcpListener, tls: Arc<rustls::ServerConfig>, shutdown: CancellationToken) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept(tcp, TlsAcceptor::from(tls), tx, shutdown));
        Ok(TlsListener { ready, local })
    }
}

async fn accept(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "the HTTP API cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, remote)).await;
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "an HTTPS handshake failed"),
                Err(_) => tracing::debug!(%remote, "an HTTPS handshake took too long"),
            }
            drop(slot);
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The acceptor stopped (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
