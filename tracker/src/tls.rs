//! The control plane's TLS and QUIC transport settings.

use crate::config::TrackerConfig;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// TLS sessions kept for resumption at most. A device that reconnects
/// (after a network change, or a tracker connection lost) resumes its TLS
/// session with a ticket from its last connection instead of a full
/// handshake (no certificate signature or verification). The least recently
/// used are dropped first; each takes a few hundred bytes.
pub const SESSIONS_KEPT: usize = 50_000;

/// The tracker's TLS sessions kept for resumption, counting the
/// handshakes they shortened.
#[derive(Debug)]
pub struct Sessions {
    cache: Arc<ServerSessionMemoryCache>,
    resumed: AtomicU64,
}

impl Sessions {
    fn new(size: usize) -> Arc<Sessions> {
        Arc::new(Sessions { cache: ServerSessionMemoryCache::new(size), resumed: AtomicU64::new(0) })
    }

    /// Handshakes that resumed a session so far.
    pub fn resumed(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }
}

impl StoresServerSessions for Sessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache.get(key)
    }

    /// Tickets are used once: a resumption takes its session.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let found = self.cache.take(key);
        if found.is_some() {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file is missing or corrupt.
    #[error(transparent)]
    Certs(#[from] skein_certs::CertError),
    /// rustls refused the certificate or key.
    #[error("the tracker certificate or key is unusable: {0}")]
    Rustls(String),
}

/// The quinn server configuration for the control plane, and the sessions
/// it keeps for resumption.
pub fn server_config(config: &TrackerConfig) -> Result<(quinn::ServerConfig, Arc<Sessions>), TlsError> {
    let (chain, key) = chain_and_key(config)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    tls.alpn_protocols = vec![skein_proto::CONTROL_ALPN.to_vec()];
    // One ticket per connection: a device resumes its next connection with
    // it and gets a new one then (rustls sends two by default, and the
    // second only takes room).
    let sessions = Sessions::new(SESSIONS_KEPT);
    tls.session_storage = sessions.clone();
    tls.send_tls13_tickets = 1;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(quinn::IdleTimeout::try_from(config.idle_timeout).ok())
        .max_concurrent_bidi_streams(1u8.into())
        .max_concurrent_uni_streams(0u8.into());
    server.transport_config(Arc::new(transport));
    Ok((server, sessions))
}

/// The HTTP API's HTTPS settings: the tracker's certificate (with the
/// organisation CA, as on the control plane), TLS 1.2 and 1.3, HTTP/1.1.
pub fn https_config(config: &TrackerConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (chain, key) = chain_and_key(config)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// The tracker's certificate chain and key.
fn chain_and_key(
    config: &TrackerConfig,
) -> Result<(Vec<rustls_pki_types::CertificateDer<'static>>, rustls_pki_types::PrivateKeyDer<'static>), TlsError> {
    let mut chain = skein_certs::rustls_io::load_certs(&config.tracker_cert_path())?;
    // The organisation CA goes with the tracker's certificate, so a device
    // signing in for the first time can be shown its fingerprint to confirm
    // (devices that hold the CA already ignore the extra certificate).
    for ca in skein_certs::rustls_io::load_certs(&config.ca_cert_path())? {
        if !chain.contains(&ca) {
            chain.push(ca);
        }
    }
    let key = skein_certs::rustls_io::load_private_key(&config.tracker_key_path())?;
    Ok((chain, key))
}
