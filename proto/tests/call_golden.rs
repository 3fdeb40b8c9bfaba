//! Golden bytes for call signalling ([`CallSignal`]) and every enum
//! variant it carries: postcard encodes enums by variant index and structs
//! by field order, so a reordering or removal changes these bytes. Append
//! variants instead, and pin each here.

use skein_proto::bytes::{CallId, DeviceId, GroupId};
use skein_proto::call::*;
use skein_proto::frame::{decode_payload, encode_payload};

#[track_caller]
fn golden<T>(value: T, hex: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = encode_payload(&value).expect("encode");
    assert_eq!(hex::encode(&bytes), hex, "encoding of {value:?} changed");
    let decoded: T = decode_payload(&hex::decode(hex).expect("valid hex")).expect("decode");
    assert_eq!(decoded, value);
}

const C: CallId = CallId([0xca; 16]);
const CALL_HEX: &str = "10cacacacacacacacacacacacacacacaca";

fn signal_index(s: &CallSignal) -> usize {
    match s {
        CallSignal::Invite(_) => 0,
        CallSignal::Ringing(_) => 1,
        CallSignal::Accept(_) => 2,
        CallSignal::Confirm(_) => 3,
        CallSignal::Decline(_) => 4,
        CallSignal::Busy(_) => 5,
        CallSignal::Cancel { .. } => 6,
        CallSignal::HangUp(_) => 7,
        CallSignal::Roster { .. } => 8,
    }
}

#[test]
fn every_signal_has_its_bytes() {
    let invite = Invite { call: C, media: Media::Video, group: Some(GroupId([0x9e; 16])), sent_at_ms: 1 };
    let bob = Participant { user: "bob".into(), device: DeviceId([0xd1; 16]) };
    let table = vec![
        (CallSignal::Invite(invite), format!("00{CALL_HEX}010110{}01", "9e".repeat(16))),
        (CallSignal::Ringing(C), format!("01{CALL_HEX}")),
        (CallSignal::Accept(C), format!("02{CALL_HEX}")),
        (CallSignal::Confirm(C), format!("03{CALL_HEX}")),
        (CallSignal::Decline(C), format!("04{CALL_HEX}")),
        (CallSignal::Busy(C), format!("05{CALL_HEX}")),
        (CallSignal::Cancel { call: C, reason: CancelReason::AnsweredElsewhere }, format!("06{CALL_HEX}01")),
        (CallSignal::HangUp(C), format!("07{CALL_HEX}")),
        (CallSignal::Roster { call: C, members: vec![bob] }, format!("08{CALL_HEX}0103626f6210{}", "d1".repeat(16))),
    ];
    for (i, (signal, hex)) in table.into_iter().enumerate() {
        assert_eq!(signal_index(&signal), i, "table out of order at {signal:?}");
        assert_eq!(signal.call(), C);
        golden(signal, &hex);
    }
}

#[test]
fn media_and_reasons_by_index() {
    golden(Media::Audio, "00");
    golden(Media::Video, "01");
    golden(CancelReason::CallerGaveUp, "00");
    golden(CancelReason::AnsweredElsewhere, "01");
    golden(CancelReason::NoAnswer, "02");
    let audio = Invite { call: C, media: Media::Audio, group: None, sent_at_ms: 300 };
    golden(audio, &format!("{CALL_HEX}0000ac02"));
}

#[test]
fn call_records_by_index() {
    golden(CallOutcome::Answered { duration_ms: 1 }, "0001");
    golden(CallOutcome::Missed, "01");
    golden(CallOutcome::Declined, "02");
    golden(CallOutcome::Busy, "03");
    let record = CallRecord { call: C, media: Media::Video, outcome: CallOutcome::Missed };
    golden(record, &format!("{CALL_HEX}0101"));
    // Every device derives the same message id for a call's line.
    assert_eq!(CallRecord::message_id(&C), CallRecord::message_id(&CallId([0xca; 16])));
    assert_ne!(CallRecord::message_id(&C).0, C.0, "the line's id is not the call's own");
}

#[test]
fn media_stream_frames() {
    use skein_proto::media::*;
    golden(StreamHead { call: C, group: 2 }, &format!("{CALL_HEX}02"));
    let packet = MediaPacket { seq: 1, capture_us: 2, duration_us: 20_000, keyframe: true, data: vec![0xfc, 0x01] };
    golden(packet, "0102a09c010102fc01");
    golden(Feedback::KeyframeRequest, "01");
    let report = ReceiverReport {
        period_ms: 1000,
        video_bytes: 5,
        video_expected: 30,
        video_lost: 1,
        audio_expected: 50,
        audio_lost: 0,
        jitter_us: 3,
    };
    golden(Feedback::Report(report), "00e807051e01320003");
    golden(Feedback::Decodes(vec![VideoCodec::Vp8, VideoCodec::H264]), "02020001");
    for (codec, index) in [(VideoCodec::Vp8, "00"), (VideoCodec::H264, "01")] {
        golden(codec, index);
        assert_eq!(codec.name().parse::<VideoCodec>(), Ok(codec));
    }
    assert_eq!("H.264".parse::<VideoCodec>(), Ok(VideoCodec::H264));
    assert!("av1".parse::<VideoCodec>().expect_err("no such codec").contains("vp8 or h264"));
    assert_ne!(VideoCodec::Vp8.protocol(), VideoCodec::H264.protocol());
}
