//! Signing in without the CA file: the tracker sends the organisation CA
//! with its own certificate, and the device shows the CA's fingerprint for
//! the user to confirm (against what the administrator gave out) before it
//! trusts it.
//!
//! [`fetch_ca`] connects without trusting anything yet, takes the chain the
//! tracker presents, and checks that its last certificate is a CA that
//! issued the tracker's certificate for the address asked for. Nothing is
//! sent on that connection. Only the user's confirmation makes the CA
//! trusted; the sign-in that follows then verifies the tracker against it
//! as always.

use crate::tracker_client::{ClientError, resolve};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

/// The organisation CA a tracker presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedCa {
    /// The CA certificate, PEM.
    pub pem: String,
    /// Its SHA-256 fingerprint, for people (`AB:CD:…`).
    pub fingerprint: String,
    /// Who it names itself (`CN=… Root CA, O=…`).
    pub subject: String,
}

/// Accepts any chain (it is checked after the handshake, and only shown),
/// but still checks the handshake's signatures against the presented key.
#[derive(Debug)]
struct Presented {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Presented {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Asks the tracker at `address` for the organisation CA it presents.
pub async fn fetch_ca(address: &str) -> Result<PresentedCa, ClientError> {
    let (addr, host, port) = resolve(address)?;
    let unreachable = |reason: String| ClientError::Unreachable { address: address.to_owned(), port, reason };
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Presented { algorithms: provider.signature_verification_algorithms });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![skein_proto::CONTROL_ALPN.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let bind: std::net::SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let mut endpoint =
        quinn::Endpoint::client(bind).map_err(|e| unreachable(format!("cannot open a UDP socket: {e}")))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = endpoint.connect(addr, &host).map_err(|e| unreachable(e.to_string()))?;
    let connection = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .map_err(|_| unreachable("no answer within 10 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = connection
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|c| *c)
        .unwrap_or_default();
    connection.close(0u32.into(), b"learnt the CA");
    endpoint.wait_idle().await;
    check_chain(&chain, &host, provider)
}

/// Whether a fingerprint someone typed or pasted (any case, with or
/// without colons or spaces) is `expected`.
pub fn same_fingerprint(given: &str, expected: &str) -> bool {
    let norm = |f: &str| f.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_uppercase()).collect::<String>();
    let given = norm(given);
    given.len() == 64 && given == norm(expected)
}

/// The CA at the end of `chain`, once it is known to have issued the
/// tracker's certificate (the first) for `host`.
fn check_chain(
    chain: &[CertificateDer<'static>],
    host: &str,
    provider: Arc<CryptoProvider>,
) -> Result<PresentedCa, ClientError> {
    let refuse =
        |why: &str| ClientError::Protocol(format!("the tracker did not present a usable organisation CA: {why}"));
    let (Some(leaf), Some(ca)) = (chain.first(), chain.last()) else { return Err(refuse("no certificate")) };
    if chain.len() < 2 {
        return Err(refuse("only its own certificate; ask the administrator for the CA file"));
    }
    let info = skein_certs::CertInfo::from_der(std::path::Path::new("the certificate the tracker sent"), ca)
        .map_err(|e| refuse(&e.to_string()))?;
    if !info.is_ca || ca == leaf {
        return Err(refuse("the last certificate it sent is not a certificate authority"));
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| refuse(&e.to_string()))?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| refuse(&e.to_string()))?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| refuse(&e.to_string()))?;
    verifier
        .verify_server_cert(leaf, &chain[1..chain.len() - 1], &name, &[], UnixTime::now())
        .map_err(|e| refuse(&format!("its certificate does not chain to the CA it sent ({e})")))?;
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let pem = pem::encode_config(&pem::Pem::new("CERTIFICATE", ca.to_vec()), config);
    Ok(PresentedCa { pem, fingerprint: skein_certs::fingerprint(ca), subject: info.subject })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_certs::OrgCa;

    fn der(pem_text: &str) -> CertificateDer<'static> {
        CertificateDer::from(pem::parse(pem_text).expect("pem").into_contents())
    }

    #[test]
    fn only_a_ca_that_issued_the_trackers_certificate_for_the_address_is_offered() {
        let provider = || Arc::new(rustls::crypto::ring::default_provider());
        let ca = OrgCa::generate("Acme", 30).expect("ca");
        let other = OrgCa::generate("Mallory", 30).expect("ca");
        let leaf = der(&ca.issue_tracker_cert(&["tracker.acme.test".into()], 30).expect("leaf").cert_pem);
        let offered =
            check_chain(&[leaf.clone(), ca.cert_der().clone()], "tracker.acme.test", provider()).expect("offered");
        assert_eq!(offered.fingerprint, skein_certs::fingerprint(ca.cert_der()));
        assert_eq!(der(&offered.pem), *ca.cert_der(), "the PEM is the CA itself");
        assert_eq!(offered.fingerprint.len(), 32 * 3 - 1);
        let e = check_chain(&[leaf.clone(), other.cert_der().clone()], "tracker.acme.test", provider());
        assert!(e.is_err_and(|e| e.to_string().contains("does not chain")), "another CA is not offered");
        let e = check_chain(&[leaf.clone(), ca.cert_der().clone()], "elsewhere.test", provider());
        assert!(e.is_err(), "a certificate for another name is not accepted");
        let e = check_chain(std::slice::from_ref(&leaf), "tracker.acme.test", provider());
        assert!(e.is_err_and(|e| e.to_string().contains("CA file")), "a tracker that sends no CA");
        // A self-signed tracker certificate sent twice is no CA.
        let (cert, _) = {
            let key = rcgen::KeyPair::generate().expect("key");
            let params = rcgen::CertificateParams::new(vec!["tracker.acme.test".to_owned()]).expect("params");
            (params.self_signed(&key).expect("self-signed"), key)
        };
        let selfish = CertificateDer::from(cert.der().to_vec());
        let e = check_chain(&[selfish.clone(), selfish], "tracker.acme.test", provider());
        assert!(e.is_err_and(|e| e.to_string().contains("not a certificate authority")), "a leaf posing as the CA");
        assert!(offered.subject.contains("Acme"), "{}", offered.subject);
        let plain = offered.fingerprint.replace(':', "").to_lowercase();
        assert!(same_fingerprint(&plain, &offered.fingerprint), "without colons, in lower case");
        assert!(!same_fingerprint(&plain[..60], &offered.fingerprint), "a prefix is not enough");
        assert!(!same_fingerprint(&skein_certs::fingerprint(other.cert_der()), &offered.fingerprint));
    }
}
