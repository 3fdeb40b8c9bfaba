//! Async frame reading and writing over any tokio stream.
//!
//! A thin layer over [`crate::frame`]: the header is checked against the
//! limit before the body buffer is allocated.

use crate::frame::{FrameError, check_header, decode_payload, encode_frame};
use crate::limits::FRAME_HEADER_LEN;
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameIoError {
    /// The stream failed or closed mid-frame.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes were not an acceptable frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads one message. Returns `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<T, R>(r: &mut R, max: usize) -> Result<Option<T>, FrameIoError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    match read_payload(r, max).await? {
        Some(body) => Ok(Some(decode_payload(&body)?)),
        None => Ok(None),
    }
}

/// Reads one frame's payload without decoding it, for callers that inspect
/// it first. Returns `Ok(None)` on a clean end of stream between frames.
pub async fn read_payload<R>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameIoError>
where
    R: AsyncRead + Unpin,
{
    let mut header = [0u8; FRAME_HEADER_LEN];
    let mut got = 0;
    while got < FRAME_HEADER_LEN {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        got += n;
    }
    let len = check_header(header, max)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Writes one message as a frame.
pub async fn write_frame<T, W>(w: &mut W, msg: &T, max: usize) -> Result<(), FrameIoError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let bytes = encode_frame(msg, max)?;
    w.write_all(&bytes).await?;
    Ok(())
}
