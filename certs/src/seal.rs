//! Sealing offline mail to one device's X25519 public key.
//!
//! A tracker stores mail for devices that are offline. It must learn nothing
//! from an item but its length, and must not be able to move an item to
//! another mail id or device. [`seal`] encrypts to the recipient device's
//! X25519 key with a fresh ephemeral key per item; [`open`] reverses it with
//! the device's secret. Both are pure functions: no IO, no clock.
//!
//! # Construction
//!
//! ```text
//! eph            = fresh X25519 secret           (per item)
//! shared         = X25519(eph, recipient_pub)    (all-zero => refused: low-order key)
//! key            = HKDF-SHA256(ikm  = shared,
//!                              salt = eph_pub || recipient_pub,
//!                              info = "skein/seal/v1")          32 bytes
//! nonce          = 24 random bytes
//! ciphertext+tag = XChaCha20-Poly1305(key, nonce, plaintext, aad)
//! ```
//!
//! The AEAD is **XChaCha20-Poly1305** (24-byte nonce, 16-byte tag). The key
//! is already unique per item, so the random nonce is belt and braces.
//!
//! The salt binds the key to the exact bytes of both public keys. X25519
//! ignores the top bit of a public key and reduces non-canonical encodings,
//! so without this a modified `eph_pub` could decrypt to the same shared
//! secret; with it, any change to the header is [`SealError::Forged`].
//!
//! `aad` is the caller's tracker-visible routing data, such as the mail id and
//! the recipient device. It is authenticated, not stored: the opener passes
//! the same bytes, so a sealed item replayed under another id fails to open.
//!
//! # Format (version 1)
//!
//! ```text
//! offset  len  field
//! 0       1    version = 1
//! 1       32   eph_pub, the ephemeral X25519 public key
//! 33      24   nonce
//! 57      n+16 ciphertext of the n-byte plaintext, then the Poly1305 tag
//! ```
//!
//! A sealed item is therefore exactly [`OVERHEAD`] (73) bytes longer than
//! its plaintext.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use skein_proto::bytes::{DeviceId, MailId, PublicKey};
use skein_proto::frame::{decode_payload, encode_payload};
use skein_proto::peer::SealedPayload;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

/// The format version this build writes and reads.
pub const SEAL_VERSION: u8 = 1;
/// Length of the ephemeral public key.
const EPH_LEN: usize = 32;
/// Length of the XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes before the ciphertext: version, ephemeral key, nonce.
pub const HEADER_LEN: usize = 1 + EPH_LEN + NONCE_LEN;
/// How much longer a sealed item is than its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// HKDF `info`, naming the construction and its version.
const INFO: &[u8] = b"skein/seal/v1";

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The input is shorter than the smallest sealed item.
    #[error("sealed item is truncated")]
    Truncated,
    /// The item was sealed in a format this build does not know.
    #[error("sealed item has unknown format version {0}: update Skein")]
    UnknownVersion(u8),
    /// A public key is a low-order point, so the shared secret would be
    /// predictable. Sealing refuses such a recipient; opening refuses such
    /// an ephemeral key.
    #[error("refusing a low-order X25519 public key")]
    BadKey,
    /// Authentication failed: the item was modified, is addressed to
    /// another device, or is presented with other routing data.
    #[error("sealed item failed authentication (modified, or not for this device)")]
    Forged,
    /// The payload could not be encoded, or opened to bytes that do not
    /// decode as a [`SealedPayload`].
    #[error("malformed sealed payload: {0}")]
    Malformed(String),
}

/// The `aad` of a mailbox item: its id and recipient device, which the
/// tracker sees, bound to the sealed content.
pub fn seal_aad(id: &MailId, device: &DeviceId) -> Vec<u8> {
    let mut aad = id.0.to_vec();
    aad.extend_from_slice(&device.0);
    aad
}

/// Seals `plaintext` to the device whose X25519 public key is `recipient`,
/// binding it to `aad`. See the [module docs](self) for the format.
pub fn seal(recipient: &PublicKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    let eph = StaticSecret::random_from_rng(OsRng);
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    seal_with(&eph, nonce, recipient, plaintext, aad)
}

/// [`seal`] with a given ephemeral secret and nonce (deterministic, for
/// golden tests).
fn seal_with(
    eph: &StaticSecret,
    nonce: [u8; NONCE_LEN],
    recipient: &PublicKey,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, SealError> {
    let eph_pub = x25519_dalek::PublicKey::from(eph).to_bytes();
    let shared = eph.diffie_hellman(&x25519_dalek::PublicKey::from(recipient.0));
    if !shared.was_contributory() {
        return Err(SealError::BadKey);
    }
    let cipher = cipher(shared.as_bytes(), &eph_pub, &recipient.0);
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| SealError::Malformed("plaintext too long to seal".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    out.push(SEAL_VERSION);
    out.extend_from_slice(&eph_pub);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens an item sealed to `recipient_secret`'s public key with the same
/// `aad`. Never panics, whatever `sealed` holds.
pub fn open(recipient_secret: &StaticSecret, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
    if version != SEAL_VERSION {
        return Err(SealError::UnknownVersion(version));
    }
    if sealed.len() < OVERHEAD {
        return Err(SealError::Truncated);
    }
    let (eph_pub, rest) = rest.split_at(EPH_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let mut eph_bytes = [0u8; EPH_LEN];
    eph_bytes.copy_from_slice(eph_pub);
    let shared = recipient_secret.diffie_hellman(&x25519_dalek::PublicKey::from(eph_bytes));
    if !shared.was_contributory() {
        return Err(SealError::BadKey);
    }
    let recipient_pub = x25519_dalek::PublicKey::from(recipient_secret).to_bytes();
    let cipher = cipher(shared.as_bytes(), &eph_bytes, &recipient_pub);
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad }).map_err(|_| SealError::Forged)
}

/// Encodes `payload` (postcard) and [`seal`]s it.
pub fn seal_payload(recipient: &PublicKey, payload: &SealedPayload, aad: &[u8]) -> Result<Vec<u8>, SealError> {
    let plaintext = Zeroizing::new(encode_payload(payload).map_err(|e| SealError::Malformed(e.to_string()))?);
    seal(recipient, &plaintext, aad)
}

/// [`open`]s `sealed` and decodes the [`SealedPayload`] inside.
pub fn open_payload(recipient_secret: &StaticSecret, sealed: &[u8], aad: &[u8]) -> Result<SealedPayload, SealError> {
    let plaintext = Zeroizing::new(open(recipient_secret, sealed, aad)?);
    decode_payload(&plaintext).map_err(|e| SealError::Malformed(e.to_string()))
}

/// The AEAD keyed for one item: HKDF-SHA256 over the shared secret, salted
/// with both public keys.
fn cipher(shared: &[u8; 32], eph_pub: &[u8; 32], recipient_pub: &[u8; 32]) -> XChaCha20Poly1305 {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(eph_pub);
    salt[32..].copy_from_slice(recipient_pub);
    let mut key = Zeroizing::new([0u8; 32]);
    // A 32-byte output is far below HKDF-SHA256's 8160-byte limit.
    if Hkdf::<Sha256>::new(Some(&salt), shared).expand(INFO, key.as_mut()).is_err() {
        unreachable!("HKDF-SHA256 can always produce 32 bytes");
    }
    XChaCha20Poly1305::new(key.as_ref().into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use skein_proto::bytes::{DeviceId, MailId};
    use skein_proto::peer::{ChatMessage, Conversation, MessageBody, Receipt, ReceiptKind};

    fn keypair() -> (StaticSecret, PublicKey) {
        let secret = StaticSecret::random_from_rng(OsRng);
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        (secret, public)
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    const AAD: &[u8] = b"mail-id|device-id";
    /// A marker that must never appear in a sealed item.
    const MARKER: &[u8; 16] = b"SKEIN-PLAINTEXT!";

    #[test]
    fn round_trip() {
        let (secret, public) = keypair();
        for plaintext in [&b""[..], b"x", b"hello bob", &[7u8; 5000][..]] {
            let sealed = seal(&public, plaintext, AAD).unwrap();
            assert_eq!(sealed.len(), plaintext.len() + OVERHEAD);
            assert_eq!(open(&secret, &sealed, AAD).unwrap(), plaintext);
        }
    }

    #[test]
    fn layout_matches_the_documented_format() {
        let (_, public) = keypair();
        let eph = StaticSecret::from([9u8; 32]);
        let nonce = [5u8; NONCE_LEN];
        let sealed = seal_with(&eph, nonce, &public, b"abc", AAD).unwrap();
        assert_eq!(sealed[0], SEAL_VERSION);
        assert_eq!(sealed[1..33], x25519_dalek::PublicKey::from(&eph).to_bytes());
        assert_eq!(sealed[33..57], nonce);
        assert_eq!(sealed.len(), 57 + 3 + 16);
    }

    /// Pins the construction (HKDF inputs, AEAD, layout) to fixed bytes, so
    /// a change that would make old mail unreadable fails here.
    #[test]
    fn golden_bytes() {
        let recipient = StaticSecret::from([1u8; 32]);
        let recipient_pub = PublicKey(x25519_dalek::PublicKey::from(&recipient).to_bytes());
        let eph = StaticSecret::from([2u8; 32]);
        let sealed = seal_with(&eph, [3u8; NONCE_LEN], &recipient_pub, b"hello", b"aad").unwrap();
        let expected = hex(GOLDEN);
        assert_eq!(hex_of(&sealed), GOLDEN, "sealed bytes changed");
        assert_eq!(open(&recipient, &expected, b"aad").unwrap(), b"hello");
    }

    /// Computed independently (Python `cryptography`: X25519, HKDF-SHA256,
    /// and ChaCha20-Poly1305 under an HChaCha20 subkey, i.e. XChaCha20).
    const GOLDEN: &str = concat!(
        "01",                                                               // version
        "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59", // eph_pub
        "030303030303030303030303030303030303030303030303",                 // nonce
        "93aa4c9f5b",                                                       // ciphertext
        "636e5b86492c84718ca6c761b39e55f7",                                 // tag
    );

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn wrong_recipient_is_forged() {
        let (_, public) = keypair();
        let (other_secret, _) = keypair();
        let sealed = seal(&public, b"for someone else", AAD).unwrap();
        assert_eq!(open(&other_secret, &sealed, AAD), Err(SealError::Forged));
    }

    #[test]
    fn different_aad_is_forged() {
        let (secret, public) = keypair();
        let sealed = seal(&public, b"routed", AAD).unwrap();
        assert_eq!(open(&secret, &sealed, b"mail-id|other-device"), Err(SealError::Forged));
        assert_eq!(open(&secret, &sealed, b""), Err(SealError::Forged));
    }

    #[test]
    fn every_tampered_byte_is_rejected() {
        let (secret, public) = keypair();
        let sealed = seal(&public, b"do not touch", AAD).unwrap();
        for i in 0..sealed.len() {
            for flip in [0x01u8, 0x80] {
                let mut tampered = sealed.clone();
                tampered[i] ^= flip;
                let err = open(&secret, &tampered, AAD).unwrap_err();
                match i {
                    0 => assert_eq!(err, SealError::UnknownVersion(SEAL_VERSION ^ flip)),
                    // Flipping the ephemeral key could in principle land on a
                    // low-order point; anything else must be Forged.
                    1..33 => assert!(matches!(err, SealError::Forged | SealError::BadKey), "byte {i}: {err:?}"),
                    _ => assert_eq!(err, SealError::Forged, "byte {i}"),
                }
            }
        }
        let mut extended = sealed.clone();
        extended.push(0);
        assert_eq!(open(&secret, &extended, AAD), Err(SealError::Forged));
    }

    #[test]
    fn every_prefix_is_rejected_without_panicking() {
        let (secret, public) = keypair();
        let sealed = seal(&public, b"0123456789", AAD).unwrap();
        for len in 0..sealed.len() {
            let err = open(&secret, &sealed[..len], AAD).unwrap_err();
            let expected = if len < OVERHEAD { SealError::Truncated } else { SealError::Forged };
            assert_eq!(err, expected, "prefix of {len} bytes");
        }
    }

    #[test]
    fn unknown_version_is_reported() {
        let (secret, _) = keypair();
        let mut item = vec![0u8; OVERHEAD + 4];
        item[0] = 2;
        assert_eq!(open(&secret, &item, AAD), Err(SealError::UnknownVersion(2)));
        assert_eq!(open(&secret, &[0], AAD), Err(SealError::UnknownVersion(0)));
    }

    #[test]
    fn sealing_twice_differs() {
        let (_, public) = keypair();
        let a = seal(&public, b"same text", AAD).unwrap();
        let b = seal(&public, b"same text", AAD).unwrap();
        assert_ne!(a, b);
        assert_ne!(a[1..33], b[1..33], "ephemeral keys must differ");
        assert_ne!(a[33..57], b[33..57], "nonces must differ");
    }

    #[test]
    fn sealed_item_does_not_contain_the_plaintext() {
        let (_, public) = keypair();
        let mut plaintext = b"before ".to_vec();
        plaintext.extend_from_slice(MARKER);
        plaintext.extend_from_slice(b" after");
        let sealed = seal(&public, &plaintext, AAD).unwrap();
        assert!(!sealed.windows(MARKER.len()).any(|w| w == MARKER));
        assert!(!sealed.windows(AAD.len()).any(|w| w == AAD), "aad is authenticated, not carried");
    }

    /// Low-order points on Curve25519 (including non-canonical encodings).
    const LOW_ORDER: [&str; 7] = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];

    #[test]
    fn low_order_recipient_keys_are_refused() {
        for point in LOW_ORDER {
            let key = PublicKey(hex(point).try_into().unwrap());
            assert_eq!(seal(&key, b"secret", AAD), Err(SealError::BadKey), "{point}");
        }
    }

    #[test]
    fn low_order_ephemeral_keys_are_refused() {
        let (secret, public) = keypair();
        let sealed = seal(&public, b"secret", AAD).unwrap();
        for point in LOW_ORDER {
            let mut forged = sealed.clone();
            forged[1..33].copy_from_slice(&hex(point));
            assert_eq!(open(&secret, &forged, AAD), Err(SealError::BadKey), "{point}");
        }
    }

    fn message() -> ChatMessage {
        ChatMessage {
            id: MailId([1; 16]),
            from_user: "alice".into(),
            from_device: DeviceId([2; 16]),
            to_user: "bob".into(),
            conversation: Conversation::Direct,
            sent_at_ms: 1_700_000_000_000,
            body: MessageBody::Text("hi bob".into()),
        }
    }

    #[test]
    fn payload_round_trip() {
        let (secret, public) = keypair();
        let payloads = [
            SealedPayload::Message(message()),
            SealedPayload::Receipt(Receipt {
                ids: vec![MailId([3; 16]), MailId([4; 16])],
                kind: ReceiptKind::Read,
                by_user: "bob".into(),
                at_ms: 42,
            }),
        ];
        for payload in payloads {
            let sealed = seal_payload(&public, &payload, AAD).unwrap();
            assert_eq!(open_payload(&secret, &sealed, AAD).unwrap(), payload);
            assert_eq!(open_payload(&secret, &sealed, b"other"), Err(SealError::Forged));
        }
    }

    #[test]
    fn undecodable_payload_is_malformed() {
        let (secret, public) = keypair();
        let sealed = seal(&public, &[0xff, 0xff, 0xff], AAD).unwrap();
        assert!(matches!(open_payload(&secret, &sealed, AAD), Err(SealError::Malformed(_))));
        let empty = seal(&public, b"", AAD).unwrap();
        assert!(matches!(open_payload(&secret, &empty, AAD), Err(SealError::Malformed(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
                           aad in proptest::collection::vec(any::<u8>(), 0..64),
                           secret in any::<[u8; 32]>()) {
            let secret = StaticSecret::from(secret);
            let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
            let sealed = seal(&public, &plaintext, &aad).unwrap();
            prop_assert_eq!(sealed.len(), plaintext.len() + OVERHEAD);
            prop_assert_eq!(open(&secret, &sealed, &aad).unwrap(), plaintext);
        }

        #[test]
        fn prop_open_never_panics(sealed in proptest::collection::vec(any::<u8>(), 0..256)) {
            let secret = StaticSecret::from([7u8; 32]);
            let _ = open(&secret, &sealed, AAD);
            let mut versioned = sealed.clone();
            if let Some(first) = versioned.first_mut() {
                *first = SEAL_VERSION;
            }
            prop_assert!(open(&secret, &versioned, AAD).is_err());
        }
    }
}
