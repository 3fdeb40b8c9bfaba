//! The control plane's TLS and QUIC transport settings.

use crate::config::TrackerConfig;
use std::sync::Arc;

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

/// The quinn server configuration for the control plane.
pub fn server_config(config: &TrackerConfig) -> Result<quinn::ServerConfig, TlsError> {
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    tls.alpn_protocols = vec![skein_proto::CONTROL_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(quinn::IdleTimeout::try_from(config.idle_timeout).ok())
        .max_concurrent_bidi_streams(1u8.into())
        .max_concurrent_uni_streams(0u8.into());
    server.transport_config(Arc::new(transport));
    Ok(server)
}
