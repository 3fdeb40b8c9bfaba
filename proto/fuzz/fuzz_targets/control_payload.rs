//! Decodes arbitrary bytes as control-plane frames; whatever decodes must
//! re-encode to something that decodes to the same value, and a decoded
//! request's id must match what `peek_request_id` reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};
use skein_proto::control::{ClientFrame, ServerFrame, peek_request_id};
use skein_proto::frame::{decode_payload, encode_payload};
use std::fmt::Debug;

fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let Ok(msg) = decode_payload::<T>(data) else { return };
    let bytes = encode_payload(&msg).expect("a decoded message re-encodes");
    let again: T = decode_payload(&bytes).expect("a re-encoded message decodes");
    assert_eq!(again, msg);
}

fuzz_target!(|data: &[u8]| {
    let peeked = peek_request_id(data);
    if let Ok(frame @ ClientFrame::Request { id, .. }) = decode_payload::<ClientFrame>(data) {
        let canonical = encode_payload(&frame).expect("a decoded message re-encodes");
        assert_eq!(peek_request_id(&canonical), Some(id));
        // postcard also accepts overlong varints (`81 00` for 1), which
        // `peek_request_id` does not read yet; see the ignored test
        // `peek_reads_overlong_varints` in proto/tests/roundtrip.rs.
        if canonical == data {
            assert_eq!(peeked, Some(id));
        }
    }
    check::<ClientFrame>(data);
    check::<ServerFrame>(data);
});
