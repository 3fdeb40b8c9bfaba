//! The group-file stream: the frames member devices exchange to fetch a
//! file offered to a group from each other as well as from the device that
//! offered it.
//!
//! A file offered to a group is one offer, fetched by every member device
//! that accepts it. Any member device that holds verified chunks serves
//! them to the others, so the offering device need not upload the file
//! once per member. The receiver opens a stream with [`SwarmRequest::Open`]
//! (answered by the manifest, whose root is in the offer), then asks which
//! chunks the other end holds ([`SwarmRequest::Status`]) and for chunks
//! ([`SwarmRequest::Want`]). Each chunk asked for is answered, in order, by
//! a [`SwarmReply::Chunk`] header followed by exactly `len` raw bytes, by
//! [`SwarmReply::Missing`] when that end does not hold it, or, from the
//! offering device only, by [`SwarmReply::Elsewhere`]: another member
//! device already got that chunk from it, so ask that device. Every chunk
//! is verified against the manifest on arrival, whoever sent it.
//!
//! The frames are the same length-prefixed postcard frames as the
//! one-to-one file-fetch stream (`skein_proto::file`), bounded by
//! [`MAX_SWARM_FRAME`]. They are pinned by golden bytes below.

use super::manifest::Have;
use serde::{Deserialize, Serialize};
use skein_proto::ErrorBody;
use skein_proto::bytes::{ContentHash, DeviceId, MailId};

/// libp2p protocol name of the group-file stream.
pub const SWARM_PROTOCOL: &str = "/skein/group-file/1";
/// Largest frame on the stream (a manifest of a 64 GiB file is 2 MiB).
pub const MAX_SWARM_FRAME: usize = skein_proto::file::MAX_FETCH_FRAME;
/// Most chunk indexes in one [`SwarmRequest::Want`].
pub const MAX_SWARM_WANT: usize = 256;
/// Most holders named in one [`SwarmReply::Holding`].
pub const MAX_HOLDERS: usize = 32;

/// A member device known to hold (or to be fetching) chunks of a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Holder {
    /// Its user.
    pub user: String,
    /// The device.
    pub device: DeviceId,
}

/// From the fetching device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwarmRequest {
    /// The manifest of the file offered as `transfer`, whose root is
    /// `root`. First on every stream; answered by [`SwarmReply::Manifest`]
    /// or [`SwarmReply::Refused`].
    Open {
        /// The offer (the id of the group message that carried it).
        transfer: MailId,
        /// The offered root.
        root: ContentHash,
    },
    /// Which chunks the other end holds now; answered by [`SwarmReply::Holding`].
    Status,
    /// These chunks, in this order; at most [`MAX_SWARM_WANT`]. With
    /// `force`, the offering device sends them even when another member
    /// device already got them (that device could not be reached).
    Want {
        /// Chunk indexes.
        chunks: Vec<u32>,
        /// Send them even when they were sent to someone else.
        force: bool,
    },
}

/// From the serving device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SwarmReply {
    /// The encoded manifest.
    Manifest(Vec<u8>),
    /// The chunks held now, and other member devices known to hold some
    /// (at most [`MAX_HOLDERS`], never the asking device).
    Holding {
        /// Verified chunks held.
        have: Have,
        /// Other holders.
        holders: Vec<Holder>,
    },
    /// Chunk `index` follows: exactly `len` raw bytes after this frame.
    Chunk {
        /// Which chunk.
        index: u32,
        /// Its length.
        len: u32,
    },
    /// This end does not hold chunk `index` (yet).
    Missing(u32),
    /// The offering device sent chunk `index` to `holder` already: fetch
    /// it there (or ask again with `force` when that fails).
    Elsewhere {
        /// Which chunk.
        index: u32,
        /// Who has it.
        holder: Holder,
    },
    /// This end will not (or can no longer) serve this file.
    Refused(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use skein_proto::ErrorCode;
    use skein_proto::frame::{decode_payload, encode_payload};

    #[track_caller]
    fn golden<T>(value: T, hex: &str)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = encode_payload(&value).expect("encode");
        assert_eq!(hex::encode(&bytes), hex, "encoding of {value:?} changed");
        let decoded: T = decode_payload(&bytes).expect("decode");
        assert_eq!(decoded, value);
    }

    fn holder() -> Holder {
        Holder { user: "bo".into(), device: DeviceId([0xd1; 16]) }
    }

    /// Pins every variant; the matches stop compiling when one is added.
    #[test]
    fn every_frame_has_pinned_bytes() {
        let index = |r: &SwarmRequest| match r {
            SwarmRequest::Open { .. } => 0,
            SwarmRequest::Status => 1,
            SwarmRequest::Want { .. } => 2,
        };
        let requests = [
            (
                SwarmRequest::Open { transfer: MailId([0x4d; 16]), root: ContentHash([0xc4; 32]) },
                format!("0010{}20{}", "4d".repeat(16), "c4".repeat(32)),
            ),
            (SwarmRequest::Status, "01".to_owned()),
            (SwarmRequest::Want { chunks: vec![1, 300], force: true }, "020201ac0201".to_owned()),
        ];
        for (i, (r, hex)) in requests.into_iter().enumerate() {
            assert_eq!(index(&r), i);
            golden(r, &hex);
        }
        let mut have = Have::none(3);
        have.insert(1);
        let index = |r: &SwarmReply| match r {
            SwarmReply::Manifest(_) => 0,
            SwarmReply::Holding { .. } => 1,
            SwarmReply::Chunk { .. } => 2,
            SwarmReply::Missing(_) => 3,
            SwarmReply::Elsewhere { .. } => 4,
            SwarmReply::Refused(_) => 5,
        };
        let replies = [
            (SwarmReply::Manifest(vec![1, 2]), "00020102".to_owned()),
            (SwarmReply::Holding { have, holders: vec![holder()] }, format!("010301020102626f10{}", "d1".repeat(16))),
            (SwarmReply::Chunk { index: 5, len: 1 << 20 }, "0205808040".to_owned()),
            (SwarmReply::Missing(7), "0307".to_owned()),
            (SwarmReply::Elsewhere { index: 2, holder: holder() }, format!("040202626f10{}", "d1".repeat(16))),
            (SwarmReply::Refused(ErrorBody::new(ErrorCode::NotFound, "no")), "0508026e6f00".to_owned()),
        ];
        for (i, (r, hex)) in replies.into_iter().enumerate() {
            assert_eq!(index(&r), i);
            golden(r, &hex);
        }
    }

    fn any_have() -> impl Strategy<Value = Have> {
        (0u64..300, proptest::collection::vec(any::<u16>(), 0..40)).prop_map(|(count, picks)| {
            let mut h = Have::none(count);
            for p in picks {
                if count > 0 {
                    h.insert(u64::from(p) % count);
                }
            }
            h
        })
    }

    fn any_holder() -> impl Strategy<Value = Holder> {
        ("[a-z]{1,12}", any::<[u8; 16]>()).prop_map(|(user, d)| Holder { user, device: DeviceId(d) })
    }

    proptest! {
        #[test]
        fn requests_round_trip(t in any::<[u8; 16]>(), r in any::<[u8; 32]>(), chunks in proptest::collection::vec(any::<u32>(), 0..40), force: bool) {
            for req in [
                SwarmRequest::Open { transfer: MailId(t), root: ContentHash(r) },
                SwarmRequest::Status,
                SwarmRequest::Want { chunks: chunks.clone(), force },
            ] {
                let bytes = encode_payload(&req).expect("encode");
                prop_assert_eq!(decode_payload::<SwarmRequest>(&bytes).expect("decode"), req);
            }
        }

        #[test]
        fn replies_round_trip(have in any_have(), holders in proptest::collection::vec(any_holder(), 0..5), index: u32, len: u32, bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let first = holders.first().cloned().unwrap_or_else(holder);
            for rep in [
                SwarmReply::Manifest(bytes.clone()),
                SwarmReply::Holding { have: have.clone(), holders: holders.clone() },
                SwarmReply::Chunk { index, len },
                SwarmReply::Missing(index),
                SwarmReply::Elsewhere { index, holder: first.clone() },
                SwarmReply::Refused(ErrorBody::new(ErrorCode::Unavailable, "later")),
            ] {
                let enc = encode_payload(&rep).expect("encode");
                prop_assert_eq!(decode_payload::<SwarmReply>(&enc).expect("decode"), rep);
            }
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_payload::<SwarmRequest>(&bytes);
            let _ = decode_payload::<SwarmReply>(&bytes);
        }
    }
}
