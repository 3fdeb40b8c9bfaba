//! Property tests for the peer protocol, mailbox payloads and the file-fetch
//! stream: every message survives encode/decode, frames survive any split of
//! the byte stream, hostile bytes never panic a decoder, and the largest
//! message each limit allows still fits in its frame.

use proptest::collection::vec;
use proptest::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use skein_proto::bytes::{ContentHash, DeviceId, MailId, PublicKey, Signature};
use skein_proto::device::{DeviceCert, DeviceCertBody};
use skein_proto::file::*;
use skein_proto::frame::{decode_payload, encode_frame, encode_payload};
use skein_proto::peer::*;
use skein_proto::{ErrorBody, ErrorCode, FrameDecoder, FrameError};
use std::fmt::Debug;

// ---- strategies -----------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    prop::array::uniform16(any::<u8>()).prop_map(DeviceId)
}

fn mail_id() -> impl Strategy<Value = MailId> {
    prop::array::uniform16(any::<u8>()).prop_map(MailId)
}

fn content_hash() -> impl Strategy<Value = ContentHash> {
    prop::array::uniform32(any::<u8>()).prop_map(ContentHash)
}

fn signature() -> impl Strategy<Value = Signature> {
    (prop::array::uniform32(any::<u8>()), prop::array::uniform32(any::<u8>())).prop_map(|(a, b)| {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&a);
        sig[32..].copy_from_slice(&b);
        Signature(sig)
    })
}

fn error_body() -> impl Strategy<Value = ErrorBody> {
    use ErrorCode::*;
    let code = prop::sample::select(vec![
        Malformed,
        UnsupportedVersion,
        NotAuthenticated,
        BadCredentials,
        AccountDisabled,
        Throttled,
        SessionExpired,
        SessionRevoked,
        NotFound,
        PermissionDenied,
        MailboxFull,
        TooLarge,
        Conflict,
        InvalidInput,
        Unsupported,
        Unavailable,
        Internal,
    ]);
    (code, text(), proptest::option::of(any::<u32>())).prop_map(|(code, message, retry_after_ms)| ErrorBody {
        code,
        message,
        retry_after_ms,
    })
}

fn hello() -> impl Strategy<Value = PeerHello> {
    let body = (
        any::<u8>(),
        any::<u64>(),
        text(),
        text(),
        device_id(),
        blob(),
        prop::array::uniform32(any::<u8>()).prop_map(PublicKey),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(version, serial, org, user, device_id, peer_id, x25519, issued_at_ms, expires_at_ms)| {
            DeviceCertBody { version, serial, org, user, device_id, peer_id, x25519, issued_at_ms, expires_at_ms }
        });
    (body, signature(), text())
        .prop_map(|(body, signature, agent)| PeerHello { cert: DeviceCert { body, signature }, agent })
}

fn offer() -> impl Strategy<Value = FileOffer> {
    (text(), any::<u64>(), content_hash()).prop_map(|(name, size, root)| FileOffer { name, size, root })
}

fn body() -> impl Strategy<Value = MessageBody> {
    let image =
        (offer(), text(), any::<u32>(), any::<u32>(), blob()).prop_map(|(file, format, width, height, thumbnail)| {
            MessageBody::Image(ImageMessage { file, format, width, height, thumbnail })
        });
    let reaction = (mail_id(), text(), any::<bool>())
        .prop_map(|(target, emoji, remove)| MessageBody::Reaction(Reaction { target, emoji, remove }));
    prop_oneof![text().prop_map(MessageBody::Text), offer().prop_map(MessageBody::File), image, reaction]
}

fn conversation() -> impl Strategy<Value = Conversation> {
    prop_oneof![
        Just(Conversation::Direct),
        (any::<[u8; 16]>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(g, version, hlc, seq)| {
            Conversation::Group { group: skein_proto::bytes::GroupId(g), version, hlc, seq }
        }),
    ]
}

fn message() -> impl Strategy<Value = ChatMessage> {
    (mail_id(), text(), device_id(), text(), conversation(), any::<u64>(), body()).prop_map(
        |(id, from_user, from_device, to_user, conversation, sent_at_ms, body)| ChatMessage {
            id,
            from_user,
            from_device,
            to_user,
            conversation,
            sent_at_ms,
            body,
        },
    )
}

fn receipt() -> impl Strategy<Value = Receipt> {
    let kind = prop_oneof![Just(ReceiptKind::Delivered), Just(ReceiptKind::Read)];
    (vec(mail_id(), 0..4), kind, text(), any::<u64>()).prop_map(|(ids, kind, by_user, at_ms)| Receipt {
        ids,
        kind,
        by_user,
        at_ms,
    })
}

fn file_status() -> impl Strategy<Value = FileStatus> {
    let state = prop_oneof![
        Just(FileState::Accepted),
        Just(FileState::Declined),
        Just(FileState::Completed),
        text().prop_map(FileState::Failed),
    ];
    (mail_id(), text(), device_id(), state, any::<u64>()).prop_map(|(transfer, by_user, by_device, state, at_ms)| {
        FileStatus { transfer, by_user, by_device, state, at_ms }
    })
}

fn peer_request() -> impl Strategy<Value = PeerRequest> {
    prop_oneof![
        hello().prop_map(PeerRequest::Hello),
        message().prop_map(PeerRequest::Deliver),
        receipt().prop_map(PeerRequest::Receipt),
        file_status().prop_map(PeerRequest::FileStatus),
        (any::<[u8; 16]>(), device_id(), any::<u64>(), any::<u64>()).prop_map(|(g, device, after_seq, before_seq)| {
            PeerRequest::Backfill(Backfill { group: skein_proto::bytes::GroupId(g), device, after_seq, before_seq })
        }),
    ]
}

fn peer_response() -> impl Strategy<Value = PeerResponse> {
    prop_oneof![
        hello().prop_map(PeerResponse::Hello),
        mail_id().prop_map(|id| PeerResponse::Stored { id }),
        Just(PeerResponse::Ok),
        error_body().prop_map(PeerResponse::Refused),
        vec(message(), 0..3).prop_map(PeerResponse::Messages),
    ]
}

fn sealed_payload() -> impl Strategy<Value = SealedPayload> {
    prop_oneof![
        message().prop_map(SealedPayload::Message),
        receipt().prop_map(SealedPayload::Receipt),
        file_status().prop_map(SealedPayload::FileStatus),
    ]
}

fn fetch_request() -> impl Strategy<Value = FetchRequest> {
    prop_oneof![
        (mail_id(), content_hash()).prop_map(|(transfer, root)| FetchRequest::Get { transfer, root }),
        vec(any::<u32>(), 0..32).prop_map(FetchRequest::Want),
    ]
}

fn fetch_reply() -> impl Strategy<Value = FetchReply> {
    prop_oneof![
        vec(any::<u8>(), 0..256).prop_map(FetchReply::Manifest),
        (any::<u32>(), any::<u32>()).prop_map(|(index, len)| FetchReply::Chunk { index, len }),
        error_body().prop_map(FetchReply::Refused),
    ]
}

// ---- helpers --------------------------------------------------------------

fn assert_round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode_payload(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let decoded: T = decode_payload(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, value);
    // A payload is self-delimiting: no proper prefix decodes, and trailing
    // bytes are refused.
    for cut in [0, bytes.len() / 2, bytes.len() - 1] {
        prop_assert!(decode_payload::<T>(&bytes[..cut]).is_err(), "prefix of {} bytes decoded", cut);
    }
    let mut longer = bytes;
    longer.push(0);
    prop_assert!(decode_payload::<T>(&longer).is_err());
    Ok(())
}

/// Frames `msgs`, feeds the stream to a decoder in pieces cut at `cuts`
/// (taken modulo the length) and returns what it decoded.
fn split_round_trip<T>(msgs: &[T], cuts: &[usize], max: usize) -> Result<Vec<T>, FrameError>
where
    T: Serialize + DeserializeOwned,
{
    let stream: Vec<u8> = msgs.iter().flat_map(|m| encode_frame(m, max).expect("encode")).collect();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.push(stream.len());
    cuts.sort_unstable();
    let mut decoder = FrameDecoder::new(max);
    let mut out = Vec::new();
    let mut start = 0;
    for end in cuts {
        decoder.push(&stream[start..end])?;
        start = end;
        while let Some(msg) = decoder.next_message()? {
            out.push(msg);
        }
    }
    assert_eq!(decoder.buffered(), 0);
    Ok(out)
}

fn encoded_len<T: Serialize>(value: &T) -> usize {
    encode_payload(value).expect("encode").len()
}

// ---- properties -----------------------------------------------------------

/// How many variants this build knows; the first unknown index is this.
const KNOWN_PEER_REQUESTS: u8 = 5;
const KNOWN_SEALED_PAYLOADS: u8 = 3;
const KNOWN_FETCH_REPLIES: u8 = 3;

/// Pins the counts above to the enums: each last variant's tag is one
/// below its count, so a new variant without a raised count fails here
/// every time, not only when the property below happens to draw it.
#[test]
fn known_counts_match_the_last_variants() {
    let backfill = PeerRequest::Backfill(Backfill {
        group: skein_proto::bytes::GroupId([0; 16]),
        device: DeviceId([0; 16]),
        after_seq: 0,
        before_seq: 0,
    });
    let tag = |bytes: Vec<u8>| bytes[0];
    assert_eq!(
        tag(encode_payload(&backfill).expect("encode")),
        KNOWN_PEER_REQUESTS - 1,
        "Backfill must be the last PeerRequest"
    );
    let file_status = SealedPayload::FileStatus(FileStatus {
        transfer: MailId([0; 16]),
        by_user: String::new(),
        by_device: DeviceId([0; 16]),
        state: FileState::Accepted,
        at_ms: 0,
    });
    assert_eq!(
        tag(encode_payload(&file_status).expect("encode")),
        KNOWN_SEALED_PAYLOADS - 1,
        "FileStatus must be the last SealedPayload"
    );
    let refused =
        FetchReply::Refused(ErrorBody { code: ErrorCode::Internal, message: String::new(), retry_after_ms: None });
    assert_eq!(
        tag(encode_payload(&refused).expect("encode")),
        KNOWN_FETCH_REPLIES - 1,
        "Refused must be the last FetchReply"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn peer_requests_round_trip(req in peer_request()) {
        assert_round_trip(&req)?;
    }

    #[test]
    fn peer_responses_round_trip(res in peer_response()) {
        assert_round_trip(&res)?;
    }

    #[test]
    fn sealed_payloads_round_trip(payload in sealed_payload()) {
        assert_round_trip(&payload)?;
    }

    #[test]
    fn fetch_frames_round_trip(req in fetch_request(), reply in fetch_reply()) {
        assert_round_trip(&req)?;
        assert_round_trip(&reply)?;
    }

    #[test]
    fn peer_frames_survive_any_split(
        reqs in vec(peer_request(), 1..4),
        res in vec(peer_response(), 1..4),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        prop_assert_eq!(split_round_trip(&reqs, &cuts, MAX_PEER_FRAME), Ok(reqs));
        prop_assert_eq!(split_round_trip(&res, &cuts, MAX_PEER_FRAME), Ok(res));
    }

    #[test]
    fn fetch_frames_survive_any_split(
        reqs in vec(fetch_request(), 1..6),
        replies in vec(fetch_reply(), 1..6),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        prop_assert_eq!(split_round_trip(&reqs, &cuts, MAX_FETCH_FRAME), Ok(reqs));
        prop_assert_eq!(split_round_trip(&replies, &cuts, MAX_FETCH_FRAME), Ok(replies));
    }

    /// A variant from a newer peer is a decode error, never a panic or a
    /// silent misreading as a known variant.
    #[test]
    fn unknown_variants_are_refused(
        request in KNOWN_PEER_REQUESTS..128,
        payload in KNOWN_SEALED_PAYLOADS..128,
        reply in KNOWN_FETCH_REPLIES..128,
        rest in vec(any::<u8>(), 0..32),
    ) {
        let mut bytes = vec![request];
        bytes.extend_from_slice(&rest);
        prop_assert!(decode_payload::<PeerRequest>(&bytes).is_err());
        let mut bytes = vec![payload];
        bytes.extend_from_slice(&rest);
        prop_assert!(decode_payload::<SealedPayload>(&bytes).is_err());
        let mut bytes = vec![reply];
        bytes.extend_from_slice(&rest);
        prop_assert!(decode_payload::<FetchReply>(&bytes).is_err());
    }

    /// Corrupting one byte of a valid payload never panics any decoder.
    #[test]
    fn corrupted_payloads_never_panic(
        req in peer_request(),
        payload in sealed_payload(),
        reply in fetch_reply(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let encoded = [encode_payload(&req), encode_payload(&payload), encode_payload(&reply)];
        for mut bytes in encoded.into_iter().flatten() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode_payload::<PeerRequest>(&bytes);
            let _ = decode_payload::<PeerResponse>(&bytes);
            let _ = decode_payload::<SealedPayload>(&bytes);
            let _ = decode_payload::<FetchRequest>(&bytes);
            let _ = decode_payload::<FetchReply>(&bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        let _ = decode_payload::<PeerRequest>(&bytes);
        let _ = decode_payload::<PeerResponse>(&bytes);
        let _ = decode_payload::<SealedPayload>(&bytes);
        let _ = decode_payload::<FetchRequest>(&bytes);
        let _ = decode_payload::<FetchReply>(&bytes);
    }
}

// ---- limits ---------------------------------------------------------------

/// The largest message the documented field limits allow: longest names,
/// the biggest text or thumbnail.
fn largest_message(body: MessageBody) -> ChatMessage {
    ChatMessage {
        id: MailId([0xff; 16]),
        from_user: "u".repeat(skein_proto::limits::MAX_USER_NAME),
        from_device: DeviceId([0xff; 16]),
        to_user: "u".repeat(skein_proto::limits::MAX_USER_NAME),
        conversation: Conversation::Direct,
        sent_at_ms: u64::MAX,
        body,
    }
}

fn largest_offer() -> FileOffer {
    FileOffer { name: "n".repeat(MAX_FILE_NAME), size: u64::MAX, root: ContentHash([0xff; 32]) }
}

/// Every message the field limits allow fits in a peer frame, and sealed
/// into a mailbox item (73 bytes of sealing overhead) it fits the tracker's
/// item limit, so no valid message is undeliverable.
#[test]
fn the_largest_valid_messages_fit_their_frames() {
    let bodies = [
        MessageBody::Text("x".repeat(MAX_TEXT)),
        MessageBody::File(largest_offer()),
        MessageBody::Image(ImageMessage {
            file: largest_offer(),
            format: "jpeg".into(),
            width: u32::MAX,
            height: u32::MAX,
            thumbnail: vec![0xff; MAX_THUMBNAIL],
        }),
        MessageBody::Reaction(Reaction { target: MailId([0xff; 16]), emoji: "e".repeat(MAX_REACTION), remove: true }),
    ];
    for body in bodies {
        let msg = largest_message(body);
        let deliver = encoded_len(&PeerRequest::Deliver(msg.clone()));
        assert!(deliver <= MAX_PEER_FRAME, "{deliver} bytes");
        let sealed = encoded_len(&SealedPayload::Message(msg)) + 73;
        assert!(sealed <= skein_proto::limits::MAX_SEALED_ITEM, "{sealed} bytes");
    }
}

/// The file-fetch stream's own bounds: a full `Want` list and the manifest
/// of the largest file (64 GiB in 1 MiB chunks: 65,536 hashes of 32 bytes)
/// each fit in one fetch frame.
#[test]
fn the_largest_fetch_frames_fit() {
    let want = FetchRequest::Want(vec![u32::MAX; MAX_WANT]);
    assert!(encode_frame(&want, MAX_FETCH_FRAME).is_ok());
    // Manifest { size: u64, chunk_size: u32, chunks: Vec<[u8; 32]> }, postcard.
    let manifest_len = 10 + 5 + 3 + 65_536 * 32;
    let reply = FetchReply::Manifest(vec![0xff; manifest_len]);
    assert!(encode_frame(&reply, MAX_FETCH_FRAME).is_ok(), "{} bytes", encoded_len(&reply));
    let chunk = FetchReply::Chunk { index: u32::MAX, len: u32::MAX };
    assert_eq!(encoded_len(&chunk), 11);
}
