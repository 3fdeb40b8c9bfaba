//! Device certificates: the tracker's signed statement that a libp2p PeerId
//! and an X25519 sealing key belong to one device of one user.
//!
//! The body is signed with the organisation's ed25519 signing key over
//! [`DeviceCertBody::signing_bytes`]: a domain-separation tag followed by the
//! body's postcard encoding. Signing and verification live in `skein-certs`;
//! this module only defines the bytes.

use crate::bytes::{DeviceId, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// Domain-separation tag prefixed to the signed bytes.
pub const DEVICE_CERT_DOMAIN: &[u8] = b"skein/device-cert/v1\0";

/// What a device certificate asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCertBody {
    /// Format version of this body; currently 1.
    pub version: u8,
    /// Serial number, unique per organisation, for revocation.
    pub serial: u64,
    /// Organisation name, as in the org CA.
    pub org: String,
    /// The user this device belongs to.
    pub user: String,
    /// The device's identifier.
    pub device_id: DeviceId,
    /// The device's libp2p PeerId, in its binary multihash form.
    pub peer_id: Vec<u8>,
    /// The device's X25519 public key, used to seal offline mail to it.
    pub x25519: PublicKey,
    /// Issue time, milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
    /// Expiry time, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

impl DeviceCertBody {
    /// The exact bytes the organisation signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = DEVICE_CERT_DOMAIN.to_vec();
        // Encoding a plain struct of strings, bytes and integers cannot fail.
        let body = postcard::to_stdvec(self).unwrap_or_default();
        out.extend_from_slice(&body);
        out
    }
}

/// A device certificate: body plus the organisation's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCert {
    /// The signed statement.
    pub body: DeviceCertBody,
    /// ed25519 signature over [`DeviceCertBody::signing_bytes`].
    pub signature: Signature,
}
