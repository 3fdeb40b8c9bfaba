//! Golden bytes for every peer-protocol and file-fetch message and every
//! enum variant they carry.
//!
//! These are the bytes nodes exchange directly ([`PeerRequest`],
//! [`PeerResponse`]), the bytes sealed into a tracker mailbox for an offline
//! device ([`SealedPayload`], which can sit there across an upgrade), and the
//! frames of the file-fetch stream ([`FetchRequest`], [`FetchReply`]).
//! postcard encodes enums by variant index and structs by field order, so any
//! reordering, removal or type change alters these bytes. A failing test here
//! means the wire format changed: append new variants and fields instead, and
//! add a golden entry for each. The exhaustive `*_index` matches stop
//! compiling when a variant is added, as a reminder to pin it here.

use serde::{Serialize, de::DeserializeOwned};
use skein_proto::bytes::{ContentHash, DeviceId, MailId, PublicKey, Signature};
use skein_proto::device::{DeviceCert, DeviceCertBody};
use skein_proto::file::*;
use skein_proto::frame::{decode_payload, encode_frame, encode_payload};
use skein_proto::peer::*;
use skein_proto::{ErrorBody, ErrorCode, FrameDecoder};
use std::fmt::Debug;

/// Encodes `value`, compares with the pinned `hex`, and decodes `hex` back.
#[track_caller]
fn golden<T>(value: T, hex: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode_payload(&value).expect("encode");
    assert_eq!(hex::encode(&bytes), hex, "encoding of {value:?} changed");
    let decoded: T = decode_payload(&hex::decode(hex).expect("valid hex")).expect("decode");
    assert_eq!(decoded, value);
}

/// Pins a table listing every variant of an enum once, in declaration order:
/// position `i` must hold variant `i`, whose encoding starts with byte `i`.
#[track_caller]
fn golden_variants<T>(table: Vec<(T, &str)>, index: fn(&T) -> usize)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    for (i, (value, hex)) in table.into_iter().enumerate() {
        assert_eq!(index(&value), i, "table out of order at {value:?}");
        assert_eq!(hex.get(..2), Some(format!("{i:02x}").as_str()), "{value:?}");
        golden(value, hex);
    }
}

// ---- fixtures -------------------------------------------------------------

fn app_post() -> skein_proto::app::AppPost {
    use skein_proto::app::{Card, CardButton, CardField};
    skein_proto::app::AppPost {
        app: "tickets".into(),
        text: Some("down".into()),
        card: Some(Card {
            title: "T-1".into(),
            text: None,
            fields: vec![CardField { name: "p".into(), value: "1".into() }],
            buttons: vec![CardButton { label: "Open".into(), url: "https://t/1".into() }],
        }),
        image: None,
    }
}

fn app_message() -> skein_proto::app::AppMessage {
    skein_proto::app::AppMessage {
        body: skein_proto::app::AppMessageBody {
            id: mail_id(),
            to_user: "bob".into(),
            group: None,
            sent_at_ms: 1_700_000_000_000,
            icon_png: None,
            post: app_post(),
        },
        signature: skein_proto::bytes::Signature([0x51; 64]),
    }
}

fn device_id() -> DeviceId {
    DeviceId([0xd1; 16])
}

fn mail_id() -> MailId {
    MailId([0x4d; 16])
}

fn root() -> ContentHash {
    ContentHash([0xc4; 32])
}

fn cert() -> DeviceCert {
    DeviceCert {
        body: DeviceCertBody {
            version: 1,
            serial: 300,
            org: "acme".into(),
            user: "alice".into(),
            device_id: device_id(),
            peer_id: vec![0x00, 0x24, 0x08, 0x01],
            x25519: PublicKey([0x25; 32]),
            issued_at_ms: 1_700_000_000_000,
            expires_at_ms: 1_731_536_000_000,
        },
        signature: Signature([0x51; 64]),
    }
}

fn hello() -> PeerHello {
    PeerHello { cert: cert(), agent: "skein/0.1.0".into() }
}

fn offer() -> FileOffer {
    FileOffer { name: "report.pdf".into(), size: 1_048_577, root: root() }
}

fn image() -> ImageMessage {
    ImageMessage {
        file: FileOffer { name: "cat.png".into(), size: 70_000, root: root() },
        format: "png".into(),
        width: 640,
        height: 480,
        thumbnail: vec![0xff, 0xd8, 0xff, 0xd9],
    }
}

fn reaction() -> Reaction {
    Reaction { target: MailId([0x4e; 16]), emoji: "👍".into(), remove: false }
}

fn message(body: MessageBody) -> ChatMessage {
    ChatMessage {
        id: mail_id(),
        from_user: "alice".into(),
        from_device: device_id(),
        to_user: "bob".into(),
        conversation: Conversation::Direct,
        sent_at_ms: 1_700_000_000_000,
        body,
    }
}

fn receipt() -> Receipt {
    Receipt {
        ids: vec![mail_id(), MailId([0x4e; 16])],
        kind: ReceiptKind::Read,
        by_user: "bob".into(),
        at_ms: 1_700_000_000_123,
    }
}

fn file_status(state: FileState) -> FileStatus {
    FileStatus { transfer: mail_id(), by_user: "bob".into(), by_device: device_id(), state, at_ms: 1_700_000_000_123 }
}

// ---- exhaustive variant indices -------------------------------------------

fn peer_request_index(v: &PeerRequest) -> usize {
    match v {
        PeerRequest::Hello(_) => 0,
        PeerRequest::Deliver(_) => 1,
        PeerRequest::Receipt(_) => 2,
        PeerRequest::FileStatus(_) => 3,
        PeerRequest::Backfill(_) => 4,
        PeerRequest::Call(_) => 5,
    }
}

fn peer_response_index(v: &PeerResponse) -> usize {
    match v {
        PeerResponse::Hello(_) => 0,
        PeerResponse::Stored { .. } => 1,
        PeerResponse::Ok => 2,
        PeerResponse::Refused(_) => 3,
        PeerResponse::Messages(_) => 4,
    }
}

fn conversation_index(v: &Conversation) -> usize {
    match v {
        Conversation::Direct => 0,
        Conversation::Group { .. } => 1,
    }
}

fn body_index(v: &MessageBody) -> usize {
    match v {
        MessageBody::Text(_) => 0,
        MessageBody::File(_) => 1,
        MessageBody::Image(_) => 2,
        MessageBody::Reaction(_) => 3,
        MessageBody::App(_) => 4,
        MessageBody::Card(_) => 5,
        MessageBody::Call(_) => 6,
    }
}

fn receipt_kind_index(v: &ReceiptKind) -> usize {
    match v {
        ReceiptKind::Delivered => 0,
        ReceiptKind::Read => 1,
    }
}

fn sealed_payload_index(v: &SealedPayload) -> usize {
    match v {
        SealedPayload::Message(_) => 0,
        SealedPayload::Receipt(_) => 1,
        SealedPayload::FileStatus(_) => 2,
        SealedPayload::App(_) => 3,
    }
}

fn file_state_index(v: &FileState) -> usize {
    match v {
        FileState::Accepted => 0,
        FileState::Declined => 1,
        FileState::Completed => 2,
        FileState::Failed(_) => 3,
    }
}

fn fetch_request_index(v: &FetchRequest) -> usize {
    match v {
        FetchRequest::Get { .. } => 0,
        FetchRequest::Want(_) => 1,
    }
}

fn fetch_reply_index(v: &FetchReply) -> usize {
    match v {
        FetchReply::Manifest(_) => 0,
        FetchReply::Chunk { .. } => 1,
        FetchReply::Refused(_) => 2,
    }
}

// ---- tests ----------------------------------------------------------------

#[test]
fn protocol_names() {
    assert_eq!(PEER_PROTOCOL, "/skein/peer/1");
    assert_eq!(FILE_PROTOCOL, "/skein/file/1");
    assert_eq!(LANE_PROTOCOL, "/skein/lane/1");
}

/// A lane frame is its id (a varint) followed by the request or answer,
/// encoded exactly as on the peer protocol (pinned by the tests below).
#[test]
fn lane_frames() {
    let req = PeerRequest::Receipt(receipt());
    let inner = hex::encode(encode_payload(&req).expect("encode"));
    golden(LaneRequest { id: 300, req }, &format!("ac02{inner}"));
    let resp = PeerResponse::Stored { id: mail_id() };
    let inner = hex::encode(encode_payload(&resp).expect("encode"));
    golden(LaneResponse { id: 1, resp }, &format!("01{inner}"));
}

#[test]
fn peer_requests() {
    golden_variants(
        vec![
            (
                PeerRequest::Hello(hello()),
                "0001ac020461636d6505616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1040024080120252525252525252525252525252525252525252525252525252525252525252580d095ffbc3180a8dabcb23240515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151510b736b65696e2f302e312e30",
            ),
            (
                PeerRequest::Deliver(message(MessageBody::Text("hi bob".into()))),
                "01104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d05616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103626f620080d095ffbc310006686920626f62",
            ),
            (
                PeerRequest::Receipt(receipt()),
                "0202104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d104e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e0103626f62fbd095ffbc31",
            ),
            (
                PeerRequest::FileStatus(file_status(FileState::Completed)),
                "03104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d03626f6210d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d102fbd095ffbc31",
            ),
            (
                PeerRequest::Backfill(Backfill {
                    group: skein_proto::bytes::GroupId([0x67; 16]),
                    device: device_id(),
                    after_seq: 3,
                    before_seq: 7,
                }),
                "04106767676767676767676767676767676710d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d10307",
            ),
            (
                PeerRequest::Call(skein_proto::call::CallSignal::HangUp(skein_proto::bytes::CallId([0xca; 16]))),
                "050710cacacacacacacacacacacacacacacaca",
            ),
        ],
        peer_request_index,
    );
}

#[test]
fn peer_responses() {
    golden_variants(
        vec![
            (
                PeerResponse::Hello(hello()),
                "0001ac020461636d6505616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1040024080120252525252525252525252525252525252525252525252525252525252525252580d095ffbc3180a8dabcb23240515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151510b736b65696e2f302e312e30",
            ),
            (PeerResponse::Stored { id: mail_id() }, "01104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d"),
            (PeerResponse::Ok, "02"),
            (
                PeerResponse::Refused(ErrorBody::new(ErrorCode::PermissionDenied, "say hello first")),
                "03090f7361792068656c6c6f20666972737400",
            ),
            (
                PeerResponse::Messages(vec![message(MessageBody::Text("hi bob".into()))]),
                "0401104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d05616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103626f620080d095ffbc310006686920626f62",
            ),
        ],
        peer_response_index,
    );
}

#[test]
fn message_bodies() {
    golden_variants(
        vec![
            (MessageBody::Text("hi bob".into()), "0006686920626f62"),
            (
                MessageBody::File(offer()),
                "010a7265706f72742e70646681804020c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4",
            ),
            (
                MessageBody::Image(image()),
                "02076361742e706e67f0a20420c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c403706e678005e00304ffd8ffd9",
            ),
            (MessageBody::Reaction(reaction()), "03104e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e04f09f918d00"),
            (
                MessageBody::App(Box::new(app_post())),
                "04077469636b6574730104646f776e0103542d3100010170013101044f70656e0b68747470733a2f2f742f3100",
            ),
            (
                MessageBody::Card(Box::new(app_post().card.expect("a card"))),
                "0503542d3100010170013101044f70656e0b68747470733a2f2f742f31",
            ),
            (
                MessageBody::Call(skein_proto::call::CallRecord {
                    call: skein_proto::bytes::CallId([0xca; 16]),
                    media: skein_proto::call::Media::Audio,
                    outcome: skein_proto::call::CallOutcome::Answered { duration_ms: 300 },
                }),
                "0610cacacacacacacacacacacacacacacaca0000ac02",
            ),
        ],
        body_index,
    );
    // Text is UTF-8 bytes behind a varint length; nothing is escaped.
    golden(MessageBody::Text(String::new()), "0000");
    golden(MessageBody::Text("Grüße\n\u{202e}".into()), "000b4772c3bcc39f650ae280ae");
    golden(Reaction { remove: true, ..reaction() }, "104e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e04f09f918d01");
    golden(
        message(MessageBody::File(offer())),
        "104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d05616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103626f620080d095ffbc31010a7265706f72742e70646681804020c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4",
    );
}

#[test]
fn small_enums() {
    golden_variants(
        vec![
            (Conversation::Direct, "00"),
            (
                Conversation::Group {
                    group: skein_proto::bytes::GroupId([0x67; 16]),
                    version: 300,
                    hlc: 1 << 20,
                    seq: 7,
                },
                "011067676767676767676767676767676767ac0280804007",
            ),
        ],
        conversation_index,
    );
    assert_eq!(
        skein_proto::peer::group_address(&skein_proto::bytes::GroupId([0x67; 16])),
        "#67676767676767676767676767676767"
    );
    golden_variants(vec![(ReceiptKind::Delivered, "00"), (ReceiptKind::Read, "01")], receipt_kind_index);
    golden_variants(
        vec![
            (FileState::Accepted, "00"),
            (FileState::Declined, "01"),
            (FileState::Completed, "02"),
            (FileState::Failed("disk full".into()), "03096469736b2066756c6c"),
        ],
        file_state_index,
    );
}

/// What a mailbox item holds once opened. Items sealed by an older build
/// wait in mailboxes across an upgrade, so these bytes must keep decoding.
#[test]
fn sealed_payloads() {
    golden_variants(
        vec![
            (
                SealedPayload::Message(message(MessageBody::Text("hi bob".into()))),
                "00104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d05616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103626f620080d095ffbc310006686920626f62",
            ),
            (
                SealedPayload::Receipt(receipt()),
                "0102104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d104e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e0103626f62fbd095ffbc31",
            ),
            (
                SealedPayload::FileStatus(file_status(FileState::Failed("disk full".into()))),
                "02104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d03626f6210d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103096469736b2066756c6cfbd095ffbc31",
            ),
            (
                SealedPayload::App(app_message()),
                "03104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d03626f620080d095ffbc3100077469636b6574730104646f776e0103542d3100010170013101044f70656e0b68747470733a2f2f742f31004051515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151515151",
            ),
        ],
        sealed_payload_index,
    );
    golden(
        SealedPayload::Message(message(MessageBody::Image(image()))),
        "00104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d05616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103626f620080d095ffbc3102076361742e706e67f0a20420c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c403706e678005e00304ffd8ffd9",
    );
    golden(
        SealedPayload::Message(message(MessageBody::Reaction(reaction()))),
        "00104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d05616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103626f620080d095ffbc3103104e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e04f09f918d00",
    );
}

#[test]
fn fetch_frames() {
    golden_variants(
        vec![
            (
                FetchRequest::Get { transfer: mail_id(), root: root() },
                "00104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d20c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4",
            ),
            (FetchRequest::Want(vec![0, 1, 127, 128, 65_535]), "010500017f8001ffff03"),
        ],
        fetch_request_index,
    );
    golden_variants(
        vec![
            (FetchReply::Manifest(vec![0xab; 5]), "0005ababababab"),
            (FetchReply::Chunk { index: 7, len: 1 << 20 }, "0107808040"),
            (
                FetchReply::Refused(ErrorBody::new(ErrorCode::NotFound, "no such file")),
                "02080c6e6f20737563682066696c6500",
            ),
        ],
        fetch_reply_index,
    );
    golden(FetchRequest::Want(Vec::new()), "0100");
}

/// A peer request as it crosses the stream: a 4-byte big-endian length,
/// then the payload.
#[test]
fn whole_peer_frame() {
    let req = PeerRequest::Deliver(message(MessageBody::Text("hi".into())));
    let frame = encode_frame(&req, MAX_PEER_FRAME).expect("encode");
    assert_eq!(
        hex::encode(&frame),
        "0000003801104d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d05616c69636510d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d103626f620080d095ffbc3100026869"
    );
    let mut decoder = FrameDecoder::new(MAX_PEER_FRAME);
    decoder.push(&frame).expect("push");
    assert_eq!(decoder.next_message::<PeerRequest>().expect("decode"), Some(req));
    assert_eq!(decoder.buffered(), 0);
}

/// A chunk on the file-fetch stream: the framed [`FetchReply::Chunk`]
/// header, then exactly `len` raw bytes that are not framed.
#[test]
fn whole_chunk_frame() {
    let data = b"chunk";
    let mut stream =
        encode_frame(&FetchReply::Chunk { index: 2, len: data.len() as u32 }, MAX_FETCH_FRAME).expect("encode");
    stream.extend_from_slice(data);
    assert_eq!(hex::encode(&stream), "000000030102056368756e6b");
    let mut decoder = FrameDecoder::new(MAX_FETCH_FRAME);
    decoder.push(&stream[..7]).expect("push");
    assert_eq!(decoder.next_message::<FetchReply>().expect("decode"), Some(FetchReply::Chunk { index: 2, len: 5 }));
    assert_eq!(&stream[7..], data);
}
