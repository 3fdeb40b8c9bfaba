//! Feeds arbitrary bytes to a `FrameDecoder` in chunks and decodes every
//! payload it yields. The first input byte picks the chunk size, so the
//! fuzzer explores how frames split across reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skein_proto::FrameDecoder;
use skein_proto::control::{ClientFrame, ServerFrame};
use skein_proto::frame::decode_payload;
use skein_proto::limits::FRAME_HEADER_LEN;

/// Small, so oversized headers are common and payloads stay cheap.
const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else { return };
    let chunk = usize::from(first) + 1;
    let mut decoder = FrameDecoder::new(MAX);
    for piece in stream.chunks(chunk) {
        let pushed = decoder.push(piece);
        assert!(decoder.buffered() <= MAX + FRAME_HEADER_LEN + piece.len());
        if pushed.is_err() {
            return;
        }
        loop {
            match decoder.next_payload() {
                Ok(Some(payload)) => {
                    assert!(!payload.is_empty() && payload.len() <= MAX);
                    let _ = decode_payload::<ClientFrame>(&payload);
                    let _ = decode_payload::<ServerFrame>(&payload);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(decoder.buffered() < MAX + FRAME_HEADER_LEN);
    }
});
