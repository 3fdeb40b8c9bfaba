//! The peer protocol's request-response codec: one postcard message per
//! stream direction, behind a 4-byte length that is checked against
//! [`MAX_PEER_FRAME`] before anything is allocated. [`read_frame`] and
//! [`write_frame`] are the same framing for other protocols' streams.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::{Serialize, de::DeserializeOwned};
use skein_proto::peer::{MAX_PEER_FRAME, PEER_PROTOCOL, PeerRequest, PeerResponse};
use std::io;

/// The protocol name as libp2p wants it.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new(PEER_PROTOCOL);

/// Postcard codec for [`PeerRequest`] / [`PeerResponse`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerCodec;

/// Reads one framed postcard message of at most `max` bytes.
pub async fn read_frame<T: AsyncRead + Unpin, M: DeserializeOwned>(io: &mut T, max: usize) -> io::Result<M> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = skein_proto::frame::check_header(len, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    skein_proto::frame::decode_payload(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one framed postcard message of at most `max` bytes (without flushing).
pub async fn write_frame<T: AsyncWrite + Unpin, M: Serialize>(io: &mut T, msg: &M, max: usize) -> io::Result<()> {
    let buf = skein_proto::frame::encode_frame(msg, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    io.write_all(&buf).await
}

async fn read_msg<T: AsyncRead + Unpin + Send, M: DeserializeOwned>(io: &mut T) -> io::Result<M> {
    read_frame(io, MAX_PEER_FRAME).await
}

async fn write_msg<T: AsyncWrite + Unpin + Send, M: Serialize>(io: &mut T, msg: &M) -> io::Result<()> {
    write_frame(io, msg, MAX_PEER_FRAME).await?;
    io.flush().await
}

impl libp2p::request_response::Codec for PeerCodec {
    type Protocol = StreamProtocol;
    type Request = PeerRequest;
    type Response = PeerResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<PeerRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_msg(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<PeerResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_msg(io).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: PeerRequest) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_msg(io, &req).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: PeerResponse) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_msg(io, &res).await
    }
}
