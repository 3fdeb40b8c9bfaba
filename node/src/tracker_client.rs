//! The node's side of the control plane: one QUIC connection to a tracker,
//! verified against the organisation CA.
//!
//! [`TrackerClient`] is a cloneable handle to a task that owns the stream.
//! [`TrackerClient::request`] sends a numbered request and waits for its
//! answer; pushed events arrive on the receiver returned by
//! [`TrackerClient::connect`]. When the connection ends, pending requests
//! fail with [`ClientError::Closed`] and the event receiver ends.

use skein_proto::control::{ClientFrame, Event, Hello, Request, Response, ServerFrame, Welcome};
use skein_proto::io::{read_frame, write_frame};
use skein_proto::limits::MAX_CONTROL_FRAME;
use skein_proto::{CONTROL_ALPN, ErrorBody, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How to reach a tracker.
#[derive(Debug, Clone)]
pub struct TrackerTarget {
    /// `HOST:PORT` as the user gave it.
    pub address: String,
    /// The organisation CA certificate file.
    pub ca: PathBuf,
    /// How long to wait for the connection.
    pub connect_timeout: Duration,
    /// How long to wait for each answer.
    pub request_timeout: Duration,
}

impl TrackerTarget {
    /// A target with default timeouts.
    pub fn new(address: impl Into<String>, ca: impl Into<PathBuf>) -> Self {
        Self {
            address: address.into(),
            ca: ca.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// Why talking to a tracker failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address is not `HOST:PORT` or does not resolve.
    #[error("invalid tracker address {address:?}: {reason}")]
    Address {
        /// As given.
        address: String,
        /// Why.
        reason: String,
    },
    /// The CA file is missing or unusable.
    #[error(transparent)]
    Ca(#[from] skein_certs::CertError),
    /// The tracker's certificate was not issued by the given CA.
    #[error("the tracker at {address} presented a certificate not signed by the CA in {ca}; check the --ca file")]
    UntrustedTracker {
        /// Tracker address.
        address: String,
        /// CA file.
        ca: String,
    },
    /// No answer from the tracker.
    #[error("cannot reach the tracker at {address}: {reason}; is it running and is UDP port {port} reachable?")]
    Unreachable {
        /// Tracker address.
        address: String,
        /// Port, for the hint.
        port: u16,
        /// What happened.
        reason: String,
    },
    /// The tracker refused the hello or the request.
    #[error("{0}")]
    Refused(ErrorBody),
    /// The connection ended.
    #[error("the connection to the tracker was lost")]
    Closed,
    /// No answer in time.
    #[error("the tracker did not answer within {0:?}")]
    Timeout(Duration),
    /// The tracker sent something that is not valid protocol.
    #[error("the tracker broke the protocol: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The tracker's error body, if the tracker answered with one.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Self::Refused(b) => Some(b),
            _ => None,
        }
    }
}

type Pending = oneshot::Sender<Result<Response, ErrorBody>>;

struct Command {
    req: Request,
    reply: Pending,
}

/// A connected, version-negotiated tracker session.
#[derive(Debug, Clone)]
pub struct TrackerClient {
    tx: mpsc::Sender<Command>,
    welcome: Welcome,
    connection: quinn::Connection,
    request_timeout: Duration,
    _endpoint: quinn::Endpoint,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tracker command")
    }
}

pub(crate) fn resolve(address: &str) -> Result<(SocketAddr, String, u16), ClientError> {
    let bad = |reason: &str| ClientError::Address { address: address.to_owned(), reason: reason.to_owned() };
    let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("expected HOST:PORT, such as 127.0.0.1:7400"))?;
    let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| bad(&format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| bad("the name has no address"))?;
    Ok((addr, host.to_owned(), port))
}

/// Client configurations by the CA certificates they trust, kept for the
/// life of the process. Each holds the TLS session tickets trackers gave
/// its connections, so a reconnection (the daemon's, after a network
/// change or a lost connection) resumes its session instead of a full
/// handshake, which spares the tracker a certificate signature. rustls
/// resumes a session only under the configuration (the same certificate
/// verifier) that made it, hence one configuration per CA rather than one
/// per connection.
static CONFIGS: std::sync::LazyLock<std::sync::Mutex<Vec<CaConfig>>> = std::sync::LazyLock::new(Default::default);

/// A CA certificate's bytes and the client configuration that trusts it.
type CaConfig = (Vec<u8>, quinn::ClientConfig);

/// The client configuration trusting the CA in the file `ca`.
fn client_config(ca: &Path) -> Result<quinn::ClientConfig, ClientError> {
    let Ok(pem) = std::fs::read(ca) else {
        // Unreadable: building names the file and why.
        return new_client_config(ca);
    };
    let mut configs = CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, config)) = configs.iter().find(|(p, _)| *p == pem) {
        return Ok(config.clone());
    }
    let config = new_client_config(ca)?;
    configs.push((pem, config.clone()));
    Ok(config)
}

fn new_client_config(ca: &Path) -> Result<quinn::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in skein_certs::rustls_io::load_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| ClientError::Protocol(format!("CA certificate {} is unusable: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![CONTROL_ALPN.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(SILENT_FOR).map_err(|e| ClientError::Protocol(e.to_string()))?,
    ));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// How often the connection to the tracker carries a QUIC keep-alive (one
/// small packet, answered by the tracker's QUIC stack alone).
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// How long the connection may hear nothing before the tracker is taken
/// for gone (killed, or its link cut): the connection closes, and the
/// daemon resumes on another tracker of the organisation.
pub const SILENT_FOR: Duration = Duration::from_secs(3);

impl TrackerClient {
    /// Connects, verifies the tracker against the CA, and negotiates the
    /// protocol version. Returns the handle and the event stream.
    pub async fn connect(
        target: &TrackerTarget,
        agent: &str,
    ) -> Result<(TrackerClient, mpsc::Receiver<Event>), ClientError> {
        let (addr, host, port) = resolve(&target.address)?;
        let cfg = client_config(&target.ca)?;
        let bind: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| ClientError::Unreachable {
            address: target.address.clone(),
            port,
            reason: format!("cannot open a UDP socket: {e}"),
        })?;
        endpoint.set_default_client_config(cfg);
        let unreachable = |reason: String| ClientError::Unreachable { address: target.address.clone(), port, reason };
        let connecting = endpoint.connect(addr, &host).map_err(|e| unreachable(e.to_string()))?;
        let connection = match tokio::time::timeout(target.connect_timeout, connecting).await {
            Err(_) => return Err(unreachable(format!("no answer within {:?}", target.connect_timeout))),
            Ok(Err(e)) => {
                let text = e.to_string();
                if text.contains("UnknownIssuer")
                    || text.contains("invalid peer certificate")
                    || text.contains("BadSignature")
                {
                    return Err(ClientError::UntrustedTracker {
                        address: target.address.clone(),
                        ca: target.ca.display().to_string(),
                    });
                }
                return Err(unreachable(text));
            }
            Ok(Ok(c)) => c,
        };
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| unreachable(e.to_string()))?;
        let hello = ClientFrame::Hello(Hello {
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            agent: agent.to_owned(),
        });
        write_frame(&mut send, &hello, MAX_CONTROL_FRAME).await.map_err(|e| unreachable(e.to_string()))?;
        let first =
            tokio::time::timeout(target.request_timeout, read_frame::<ServerFrame, _>(&mut recv, MAX_CONTROL_FRAME))
                .await
                .map_err(|_| ClientError::Timeout(target.request_timeout))?
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let welcome = match first {
            Some(ServerFrame::Welcome(w)) => w,
            Some(ServerFrame::Reject(body)) => return Err(ClientError::Refused(body)),
            Some(other) => return Err(ClientError::Protocol(format!("expected a welcome, got {other:?}"))),
            None => return Err(ClientError::Closed),
        };
        let (tx, rx) = mpsc::channel(64);
        let (events_tx, events_rx) = mpsc::channel(1024);
        let (frames_tx, frames_rx) = mpsc::channel(64);
        tokio::spawn(read_loop(recv, frames_tx));
        // Keep-alives follow the tracker's idle timeout, whatever it is configured to.
        let keep_alive = Duration::from_millis(u64::from(welcome.idle_timeout_ms) / 3)
            .clamp(Duration::from_millis(200), Duration::from_secs(10));
        tokio::spawn(actor(send, rx, frames_rx, events_tx, keep_alive));
        let client =
            TrackerClient { tx, welcome, connection, request_timeout: target.request_timeout, _endpoint: endpoint };
        Ok((client, events_rx))
    }

    /// The tracker's welcome.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The tracker's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.connection.remote_address()
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, req: Request) -> Result<Response, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command { req, reply }).await.map_err(|_| ClientError::Closed)?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Err(_) => Err(ClientError::Timeout(self.request_timeout)),
            Ok(Err(_)) => Err(ClientError::Closed),
            Ok(Ok(Err(body))) => Err(ClientError::Refused(body)),
            Ok(Ok(Ok(resp))) => Ok(resp),
        }
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.connection.close(0u32.into(), b"bye");
    }

    /// Closes the connection and waits (at most `limit`) until the tracker
    /// has been told, so it marks this device offline at once rather than
    /// after its idle time-out. For a process about to exit.
    pub async fn close_and_wait(&self, limit: Duration) {
        self.close();
        let _ = tokio::time::timeout(limit, self._endpoint.wait_idle()).await;
    }

    /// Resolves when the connection has ended, with the reason.
    pub async fn closed(&self) -> String {
        self.connection.closed().await.to_string()
    }
}

async fn read_loop(mut recv: quinn::RecvStream, frames: mpsc::Sender<Result<ServerFrame, String>>) {
    loop {
        let item = match read_frame::<ServerFrame, _>(&mut recv, MAX_CONTROL_FRAME).await {
            Ok(Some(f)) => Ok(f),
            Ok(None) => return,
            Err(e) => Err(e.to_string()),
        };
        let stop = item.is_err();
        if frames.send(item).await.is_err() || stop {
            return;
        }
    }
}

async fn actor(
    mut send: quinn::SendStream,
    mut commands: mpsc::Receiver<Command>,
    mut frames: mpsc::Receiver<Result<ServerFrame, String>>,
    events: mpsc::Sender<Event>,
    keep_alive: Duration,
) {
    let mut pending: HashMap<u32, Pending> = HashMap::new();
    let mut next_id: u32 = 1;
    let mut tick = tokio::time::interval(keep_alive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // A ping nobody waits for; its answer is dropped below.
                let id = next_id;
                next_id = next_id.wrapping_add(1);
                let ping = ClientFrame::Request { id, req: Request::Ping { nonce: u64::from(id) } };
                if write_frame(&mut send, &ping, MAX_CONTROL_FRAME).await.is_err() {
                    break;
                }
            }
            cmd = commands.recv() => {
                let Some(Command { req, reply }) = cmd else { break };
                let id = next_id;
                next_id = next_id.wrapping_add(1);
                if write_frame(&mut send, &ClientFrame::Request { id, req }, MAX_CONTROL_FRAME).await.is_err() {
                    break;
                }
                pending.insert(id, reply);
            }
            frame = frames.recv() => match frame {
                Some(Ok(ServerFrame::Response { id, result })) => {
                    if let Some(reply) = pending.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                Some(Ok(ServerFrame::Event(ev))) => {
                    if events.try_send(ev).is_err() {
                        tracing::warn!("dropping a tracker event: the event queue is full");
                    }
                }
                Some(Ok(ServerFrame::Reject(body))) => {
                    let _ = events.try_send(Event::SessionEnded(body));
                    break;
                }
                Some(Ok(ServerFrame::Welcome(_))) | Some(Err(_)) | None => break,
            },
        }
    }
    let _ = send.finish();
}
