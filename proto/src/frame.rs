//! The length-prefixed frame: a 4-byte big-endian payload length, then a
//! postcard payload of at most a caller-chosen maximum.
//!
//! [`FrameDecoder`] is a pure, incremental decoder: push bytes in as they
//! arrive and take whole payloads out. It rejects an oversized length as soon
//! as the header is seen, before buffering the body, so a hostile peer cannot
//! make it allocate more than `max` bytes.

use crate::limits::FRAME_HEADER_LEN;
use serde::{Serialize, de::DeserializeOwned};

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The announced or actual payload is larger than allowed.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Announced or actual payload length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A zero-length frame, which no message encodes to.
    #[error("empty frame")]
    Empty,
    /// The payload is not a valid postcard encoding of the expected type.
    #[error("undecodable frame payload: {0}")]
    Payload(String),
    /// Encoding failed (only for types that cannot be represented).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Encodes `msg` as a complete frame (header plus payload).
pub fn encode_frame<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; FRAME_HEADER_LEN];
    let mut out = postcard::to_extend(msg, std::mem::take(&mut out)).map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = out.len() - FRAME_HEADER_LEN;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let header = u32::try_from(len).map_err(|_| FrameError::TooLarge { len, max })?;
    out[..FRAME_HEADER_LEN].copy_from_slice(&header.to_be_bytes());
    Ok(out)
}

/// Encodes `msg` as a bare payload (no header).
pub fn encode_payload<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    postcard::to_stdvec(msg).map_err(|e| FrameError::Encode(e.to_string()))
}

/// Decodes one payload. Trailing bytes are an error: a frame holds exactly
/// one message.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    if payload.is_empty() {
        return Err(FrameError::Empty);
    }
    let (msg, rest) = postcard::take_from_bytes(payload).map_err(|e| FrameError::Payload(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Payload(format!("{} trailing bytes", rest.len())));
    }
    Ok(msg)
}

/// Reads a frame header and returns the announced payload length if it is
/// acceptable.
pub fn check_header(header: [u8; FRAME_HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Incremental frame decoder over a byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`; consumed bytes are dropped on
    /// the next push, so each byte is moved at most once.
    start: usize,
    max: usize,
}

impl FrameDecoder {
    /// A decoder that accepts payloads up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { buf: Vec::new(), start: 0, max }
    }

    /// The header of the next frame, if it has arrived.
    fn header(&self) -> Option<[u8; FRAME_HEADER_LEN]> {
        self.buf.get(self.start..self.start + FRAME_HEADER_LEN).and_then(|h| h.try_into().ok())
    }

    /// Appends received bytes. Fails as soon as a header announces an
    /// oversized frame; the decoder is then unusable, as the stream is.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
        if let Some(header) = self.header() {
            check_header(header, self.max)?;
        }
        Ok(())
    }

    /// Takes the next complete payload, if one has fully arrived. A payload
    /// that has fully arrived is returned even if a bad header follows it;
    /// the next call reports that header.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(header) = self.header() else { return Ok(None) };
        let len = check_header(header, self.max)?;
        let body = self.start + FRAME_HEADER_LEN;
        if self.buf.len() < body + len {
            return Ok(None);
        }
        let payload = self.buf[body..body + len].to_vec();
        self.start = body + len;
        Ok(Some(payload))
    }

    /// Takes and decodes the next complete message.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match self.next_payload()? {
            Some(p) => decode_payload(&p).map(Some),
            None => Ok(None),
        }
    }

    /// Bytes buffered but not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_decoder_byte_by_byte() {
        let a = encode_frame(&("hello".to_string(), 7u32), 1024).expect("encode");
        let b = encode_frame(&("world".to_string(), 9u32), 1024).expect("encode");
        let mut d = FrameDecoder::new(1024);
        let mut got = Vec::new();
        for byte in a.iter().chain(b.iter()) {
            d.push(&[*byte]).expect("push");
            while let Some(m) = d.next_message::<(String, u32)>().expect("decode") {
                got.push(m);
            }
        }
        assert_eq!(got, vec![("hello".to_string(), 7), ("world".to_string(), 9)]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn oversized_header_is_rejected_before_body_arrives() {
        let mut d = FrameDecoder::new(16);
        assert_eq!(d.push(&[0, 0, 0, 17]), Err(FrameError::TooLarge { len: 17, max: 16 }));
        let mut d = FrameDecoder::new(16);
        assert_eq!(d.push(&[0xff, 0xff, 0xff, 0xff]), Err(FrameError::TooLarge { len: u32::MAX as usize, max: 16 }));
    }

    #[test]
    fn empty_frame_and_trailing_bytes_are_rejected() {
        let mut d = FrameDecoder::new(16);
        assert_eq!(d.push(&[0, 0, 0, 0]), Err(FrameError::Empty));
        assert!(matches!(decode_payload::<u8>(&[1, 2]), Err(FrameError::Payload(_))));
    }

    #[test]
    fn encoding_respects_the_limit() {
        let big = vec![0u8; 100];
        assert!(matches!(encode_frame(&big, 50), Err(FrameError::TooLarge { .. })));
    }
}
