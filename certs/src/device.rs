//! Device certificates: signing and verification.
//!
//! Device certificates are not X.509. They are [`DeviceCert`]s from
//! `skein_proto::device`: a postcard body signed with the organisation's
//! ed25519 key over [`DeviceCertBody::signing_bytes`] (a domain tag plus the
//! body). The tracker holds an [`OrgSigningKey`] and signs; every node holds
//! the organisation's public key and calls [`verify_device_cert_for`]
//! before trusting a peer. Time comes in as `now_ms`, so verification is
//! pure.

use crate::error::CertError;
use crate::files::{read_file, write_private};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use skein_proto::bytes::{PublicKey, Signature};
use skein_proto::device::{DeviceCert, DeviceCertBody};
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// The only device certificate body version this crate understands.
pub const DEVICE_CERT_VERSION: u8 = 1;
/// How far in the future `issued_at_ms` may be before a certificate counts
/// as not yet valid: tolerated clock skew between tracker and node.
pub const MAX_CLOCK_SKEW_MS: u64 = 60_000;

/// Why a device certificate was rejected, or an org key could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceCertError {
    /// The organisation public key is not a valid ed25519 point.
    #[error("the organisation public key is not a valid ed25519 key")]
    BadKey,
    /// A signing key seed had the wrong length.
    #[error("an ed25519 signing key seed is 32 bytes, got {0}")]
    BadSeedLength(usize),
    /// The signature does not verify under the organisation key.
    #[error("device certificate signature does not verify under the organisation key")]
    BadSignature,
    /// The certificate has expired.
    #[error("device certificate expired at {expired_at_ms} ms since the Unix epoch")]
    Expired {
        /// The certificate's `expires_at_ms`.
        expired_at_ms: u64,
    },
    /// The certificate was issued more than [`MAX_CLOCK_SKEW_MS`] in the future.
    #[error("device certificate is not valid yet (issued in the future; check the clocks)")]
    NotYetValid,
    /// The body has a version this crate does not understand.
    #[error("unsupported device certificate version {0}")]
    UnsupportedVersion(u8),
    /// The certificate belongs to another user.
    #[error("device certificate is for user {actual:?}, expected {expected:?}")]
    WrongUser {
        /// The user the caller expected.
        expected: String,
        /// The user named in the certificate.
        actual: String,
    },
    /// The certificate belongs to another libp2p PeerId.
    #[error("device certificate is for a different PeerId")]
    WrongPeer,
}

/// The organisation's ed25519 device-certificate signing key.
///
/// `Debug` prints only the public key; the secret is zeroed on drop.
#[derive(Clone)]
pub struct OrgSigningKey {
    key: SigningKey,
}

impl fmt::Debug for OrgSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrgSigningKey").field("public", &self.public()).finish_non_exhaustive()
    }
}

impl OrgSigningKey {
    /// A new random key from the operating system's RNG.
    pub fn generate() -> Self {
        Self { key: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// Rebuilds a key from its 32-byte seed.
    pub fn from_bytes(seed: &[u8]) -> Result<Self, DeviceCertError> {
        let seed: &[u8; 32] = seed.try_into().map_err(|_| DeviceCertError::BadSeedLength(seed.len()))?;
        Ok(Self { key: SigningKey::from_bytes(seed) })
    }

    /// The 32-byte seed, zeroed when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The organisation public key that nodes verify with.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs arbitrary bytes (a domain-tagged body) with the organisation key.
    pub(crate) fn sign_bytes(&self, bytes: &[u8]) -> Signature {
        Signature(self.key.sign(bytes).to_bytes())
    }

    /// Signs `body` over [`DeviceCertBody::signing_bytes`].
    pub fn sign(&self, body: DeviceCertBody) -> DeviceCert {
        let signature = self.key.sign(&body.signing_bytes());
        DeviceCert { body, signature: Signature(signature.to_bytes()) }
    }

    /// Reads a key saved by [`OrgSigningKey::save`]: the seed as 64 hex
    /// digits on one line.
    pub fn load(path: &Path) -> Result<Self, CertError> {
        let text = Zeroizing::new(read_file("organisation signing key", path)?);
        let not_a_key = || CertError::NotAPrivateKey { path: path.to_path_buf() };
        let text = std::str::from_utf8(&text).map_err(|_| not_a_key())?;
        let seed = Zeroizing::new(hex::decode(text.trim()).map_err(|_| not_a_key())?);
        Self::from_bytes(&seed).map_err(|_| not_a_key())
    }

    /// Writes the seed as hex with mode 0600. Without `force`, refuses to
    /// replace an existing file.
    pub fn save(&self, path: &Path, force: bool) -> Result<(), CertError> {
        let mut text = Zeroizing::new(hex::encode(*self.to_bytes()));
        text.push('\n');
        write_private(path, text.as_bytes(), force)
    }
}

/// Checks `cert`'s signature under `org_key`, its version, and that it is
/// valid at `now_ms` (allowing [`MAX_CLOCK_SKEW_MS`] for an issue time in
/// the future). Returns the now-trusted body.
pub fn verify_device_cert<'c>(
    org_key: &PublicKey,
    cert: &'c DeviceCert,
    now_ms: u64,
) -> Result<&'c DeviceCertBody, DeviceCertError> {
    let key = VerifyingKey::from_bytes(&org_key.0).map_err(|_| DeviceCertError::BadKey)?;
    let signature = ed25519_dalek::Signature::from_bytes(&cert.signature.0);
    key.verify_strict(&cert.body.signing_bytes(), &signature).map_err(|_| DeviceCertError::BadSignature)?;

    let body = &cert.body;
    if body.version != DEVICE_CERT_VERSION {
        return Err(DeviceCertError::UnsupportedVersion(body.version));
    }
    if body.issued_at_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(DeviceCertError::NotYetValid);
    }
    if now_ms >= body.expires_at_ms {
        return Err(DeviceCertError::Expired { expired_at_ms: body.expires_at_ms });
    }
    Ok(body)
}

/// [`verify_device_cert`], then checks that the certificate names
/// `expected_user` and the binary PeerId `expected_peer_id`.
pub fn verify_device_cert_for<'c>(
    org_key: &PublicKey,
    cert: &'c DeviceCert,
    now_ms: u64,
    expected_user: &str,
    expected_peer_id: &[u8],
) -> Result<&'c DeviceCertBody, DeviceCertError> {
    let body = verify_device_cert(org_key, cert, now_ms)?;
    if body.user != expected_user {
        return Err(DeviceCertError::WrongUser { expected: expected_user.to_string(), actual: body.user.clone() });
    }
    if body.peer_id != expected_peer_id {
        return Err(DeviceCertError::WrongPeer);
    }
    Ok(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use skein_proto::bytes::DeviceId;

    const NOW: u64 = 1_700_000_000_000;
    const DAY: u64 = 86_400_000;

    fn body() -> DeviceCertBody {
        DeviceCertBody {
            version: 1,
            serial: 7,
            org: "Acme".into(),
            user: "alice".into(),
            device_id: DeviceId([3; 16]),
            peer_id: vec![0, 36, 8, 1, 18, 32, 9, 9, 9],
            x25519: PublicKey([5; 32]),
            issued_at_ms: NOW,
            expires_at_ms: NOW + 30 * DAY,
        }
    }

    #[test]
    fn sign_then_verify() {
        let org = OrgSigningKey::generate();
        let cert = org.sign(body());
        assert_eq!(verify_device_cert(&org.public(), &cert, NOW + DAY).unwrap(), &body());
        let peer = body().peer_id;
        verify_device_cert_for(&org.public(), &cert, NOW, "alice", &peer).unwrap();
    }

    #[test]
    fn tampered_body_is_rejected() {
        let org = OrgSigningKey::generate();
        let mut cert = org.sign(body());
        cert.body.user = "mallory".into();
        assert_eq!(verify_device_cert(&org.public(), &cert, NOW), Err(DeviceCertError::BadSignature));
        let mut cert = org.sign(body());
        cert.body.expires_at_ms += 1;
        assert_eq!(verify_device_cert(&org.public(), &cert, NOW), Err(DeviceCertError::BadSignature));
    }

    #[test]
    fn another_org_key_is_rejected() {
        let cert = OrgSigningKey::generate().sign(body());
        let other = OrgSigningKey::generate().public();
        assert_eq!(verify_device_cert(&other, &cert, NOW), Err(DeviceCertError::BadSignature));
    }

    #[test]
    fn invalid_org_key_is_bad_key() {
        let cert = OrgSigningKey::generate().sign(body());
        // y = 2 is not on the curve.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        assert_eq!(verify_device_cert(&PublicKey(bytes), &cert, NOW), Err(DeviceCertError::BadKey));
    }

    #[test]
    fn validity_window() {
        let org = OrgSigningKey::generate();
        let cert = org.sign(body());
        let expires = body().expires_at_ms;
        assert_eq!(
            verify_device_cert(&org.public(), &cert, expires),
            Err(DeviceCertError::Expired { expired_at_ms: expires })
        );
        // Within the skew allowance: fine. Beyond it: not yet valid.
        verify_device_cert(&org.public(), &cert, NOW - MAX_CLOCK_SKEW_MS).unwrap();
        assert_eq!(
            verify_device_cert(&org.public(), &cert, NOW - MAX_CLOCK_SKEW_MS - 1),
            Err(DeviceCertError::NotYetValid)
        );
    }

    #[test]
    fn unsupported_version() {
        let org = OrgSigningKey::generate();
        let cert = org.sign(DeviceCertBody { version: 2, ..body() });
        assert_eq!(verify_device_cert(&org.public(), &cert, NOW), Err(DeviceCertError::UnsupportedVersion(2)));
    }

    #[test]
    fn wrong_user_or_peer() {
        let org = OrgSigningKey::generate();
        let cert = org.sign(body());
        let peer = body().peer_id;
        assert_eq!(
            verify_device_cert_for(&org.public(), &cert, NOW, "bob", &peer),
            Err(DeviceCertError::WrongUser { expected: "bob".into(), actual: "alice".into() })
        );
        assert_eq!(
            verify_device_cert_for(&org.public(), &cert, NOW, "alice", b"other"),
            Err(DeviceCertError::WrongPeer)
        );
    }

    #[test]
    fn key_bytes_round_trip_and_debug_hides_the_secret() {
        let org = OrgSigningKey::generate();
        let again = OrgSigningKey::from_bytes(&*org.to_bytes()).unwrap();
        assert_eq!(org.public(), again.public());
        assert_eq!(OrgSigningKey::from_bytes(&[0; 31]).unwrap_err(), DeviceCertError::BadSeedLength(31));
        let debug = format!("{org:?}");
        assert!(!debug.contains(&hex::encode(*org.to_bytes())));
        assert!(debug.contains(&org.public().to_hex()));
    }

    #[test]
    fn save_and_load() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("org-signing.key");
        let org = OrgSigningKey::generate();
        org.save(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(org.save(&path, false).is_err());
        assert_eq!(OrgSigningKey::load(&path).unwrap().public(), org.public());
        std::fs::write(&path, "zz").unwrap();
        let err = OrgSigningKey::load(&path).unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
