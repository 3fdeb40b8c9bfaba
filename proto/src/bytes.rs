//! Fixed-size byte arrays with compact, self-describing serde encodings.
//!
//! serde only derives arrays up to 32 elements, and postcard encodes a
//! `[u8; N]` element by element. These newtypes encode as a plain byte
//! string and refuse any other length when decoding.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::fmt;

/// Implements a fixed-length byte newtype with hex `Debug`/`Display`.
macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        fixed_bytes!(@common $(#[$meta])* $name, $len);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

    };
    ($(#[$meta:meta])* secret $name:ident, $len:expr) => {
        fixed_bytes!(@common $(#[$meta])* $name, $len);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<redacted>)", stringify!($name))
            }
        }
    };
    (@common $(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Parses from a lowercase or uppercase hex string.
            pub fn from_hex(s: &str) -> Option<Self> {
                let s = s.trim();
                if s.len() != $len * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let mut out = [0u8; $len];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
                }
                Some(Self(out))
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                let mut s = String::with_capacity($len * 2);
                for b in self.0 {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} bytes", $len)
                    }
                    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<$name, E> {
                        <[u8; $len]>::try_from(v)
                            .map($name)
                            .map_err(|_| E::invalid_length(v.len(), &self))
                    }
                    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<$name, A::Error> {
                        let mut out = [0u8; $len];
                        for (i, b) in out.iter_mut().enumerate() {
                            *b = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                        }
                        Ok($name(out))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    };
}

fixed_bytes!(
    /// A random identifier of one device of a user, chosen by the device.
    DeviceId,
    16
);
fixed_bytes!(
    /// A message or mailbox item identifier, unique per sender.
    MailId,
    16
);
fixed_bytes!(
    /// A call's identifier, chosen at random by the caller's device.
    CallId,
    16
);
fixed_bytes!(
    /// A group's identifier, chosen by the tracker that creates it.
    GroupId,
    16
);
fixed_bytes!(
    /// A 32-byte public key (ed25519 verifying key or X25519 public key).
    PublicKey,
    32
);
fixed_bytes!(
    /// A BLAKE3 content hash: the root that addresses a file.
    ContentHash,
    32
);
fixed_bytes!(
    /// An ed25519 signature.
    Signature,
    64
);
fixed_bytes!(
    /// A bearer session token. Only its BLAKE3 hash is stored by trackers;
    /// it has no `Display` and its `Debug` never prints it.
    secret SessionToken,
    32
);
