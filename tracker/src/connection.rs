//! One client connection: version handshake, then requests in order and
//! events as they come, on one bidirectional QUIC stream.
//!
//! A writer task owns the send half and drains the connection's bounded
//! outgoing queue; the hub pushes events into the same queue. A malformed
//! frame ends this connection only (with a `Reject` saying why); every other
//! client is unaffected.

use crate::clock::now_ms;
use crate::requests::{self, ConnCtx};
use crate::state::State;
use crate::strangers::Slot;
use skein_proto::control::{ClientFrame, Event, Hello, ServerFrame, Welcome, peek_request_id};
use skein_proto::frame::{FrameError, decode_payload};
use skein_proto::io::{FrameIoError, read_payload, write_frame};
use skein_proto::limits::MAX_CONTROL_FRAME;
use skein_proto::{ErrorBody, ErrorCode, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's outgoing queue. Frames are boxed: the queue's first block
/// of slots is allocated with the channel, and boxed slots keep it at a
/// few hundred bytes for every idle client instead of a few KiB.
pub type Outgoing = mpsc::Sender<Box<ServerFrame>>;

/// QUIC application close codes.
pub mod close {
    /// Normal end (logout, shutdown).
    pub const DONE: u32 = 0;
    /// The client broke the protocol.
    pub const PROTOCOL: u32 = 1;
    /// The session was ended by the tracker (revoked, disabled, expired, slow).
    pub const ENDED: u32 = 2;
}

/// Serves one accepted connection until it closes, fails or `shutdown`
/// fires. `slot` is its place among connections not logged in yet.
pub async fn serve(state: Arc<State>, conn: quinn::Connection, slot: Slot, shutdown: CancellationToken) {
    let id = state.next_conn_id();
    let remote = conn.remote_address();
    let span = tracing::info_span!("conn", id, %remote, user = tracing::field::Empty);
    async move {
        state.metrics.connections.inc();
        let code = match serve_inner(&state, &conn, id, slot, &shutdown).await {
            Ok(code) => code,
            Err(e) => {
                tracing::debug!(error = %e, "connection ended");
                close::PROTOCOL
            }
        };
        conn.close(code.into(), b"");
        state.metrics.connections.dec();
    }
    .instrument(span)
    .await
}

async fn serve_inner(
    state: &Arc<State>,
    conn: &quinn::Connection,
    id: u64,
    slot: Slot,
    shutdown: &CancellationToken,
) -> Result<u32, FrameIoError> {
    // Boxed, like each request below: an idle connection's task then holds
    // only what waiting for the next frame needs, not the largest state any
    // step ever reaches (a few KiB per connection, times every client).
    let nonce: [u8; 32] = rand::random();
    let (mut send, mut recv, protocol) = match Box::pin(handshake(state, conn, nonce)).await? {
        Ok(streams) => streams,
        Err(code) => return Ok(code),
    };
    let (out, mut out_rx) = mpsc::channel::<Box<ServerFrame>>(state.config.send_queue);
    let end = CancellationToken::new();
    let writer_end = end.clone();
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if let Err(e) = write_frame(&mut send, &frame, MAX_CONTROL_FRAME).await {
                tracing::debug!(error = %e, "write failed");
                writer_end.cancel();
                break;
            }
        }
        // The client gets everything (a last response, a Reject or a
        // session-ended notice) before the connection may be closed.
        finish(&mut send).await;
    });
    let mut ctx = ConnCtx {
        id,
        remote: conn.remote_address(),
        protocol,
        nonce,
        session: None,
        stranger: Some(slot),
        presence_rate: state.config.presence_rate.clone(),
        out,
        end: end.clone(),
    };
    let code = request_loop(state, &mut ctx, &mut recv, shutdown).await;
    drop(ctx);
    // Leaving the hub drops its copy of the outgoing queue and tells
    // subscribers at once; then queued frames (the last response, a
    // session-ended notice) get a moment to go out.
    Box::pin(leave_hub(state, id)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    end.cancel();
    code
}

/// Takes the connection out of the hub and records when its user was last seen.
async fn leave_hub(state: &State, id: u64) {
    if let Some((user_id, seen)) = state.hub.unregister(id).await
        && let Err(e) = state.store.set_last_seen(user_id, seen as i64).await
    {
        tracing::warn!(error = %e, "could not record last-seen time");
    }
}

/// Accepts the control stream and agrees on a protocol version. Returns the
/// streams and the version, or the close code when the client broke the
/// protocol.
async fn handshake(
    state: &State,
    conn: &quinn::Connection,
    nonce: [u8; 32],
) -> Result<Result<(quinn::SendStream, quinn::RecvStream, u16), u32>, FrameIoError> {
    let (mut send, mut recv) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        _ => return Ok(Err(close::PROTOCOL)),
    };
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_payload(&mut recv, MAX_CONTROL_FRAME)).await {
        Ok(Ok(Some(p))) => decode_payload::<ClientFrame>(&p),
        _ => return Ok(Err(close::PROTOCOL)),
    };
    let hello: Hello = match hello {
        Ok(ClientFrame::Hello(h)) => h,
        Ok(_) | Err(_) => {
            let reject = ErrorBody::new(ErrorCode::Malformed, "the first frame must be a hello");
            write_frame(&mut send, &ServerFrame::Reject(reject), MAX_CONTROL_FRAME).await?;
            finish(&mut send).await;
            return Ok(Err(close::PROTOCOL));
        }
    };
    let version = PROTOCOL_VERSION.min(hello.max_version);
    if version < MIN_PROTOCOL_VERSION.max(hello.min_version) {
        let reject = ErrorBody::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "this tracker speaks protocol {MIN_PROTOCOL_VERSION}-{PROTOCOL_VERSION}, the client {}-{}; upgrade the older side",
                hello.min_version, hello.max_version
            ),
        );
        write_frame(&mut send, &ServerFrame::Reject(reject), MAX_CONTROL_FRAME).await?;
        finish(&mut send).await;
        return Ok(Err(close::PROTOCOL));
    }
    tracing::debug!(agent = %hello.agent, version, "hello");
    let welcome = Welcome {
        version,
        org: state.org.name.clone(),
        tracker_id: state.config.tracker_id.clone(),
        server_time_ms: now_ms(),
        idle_timeout_ms: u32::try_from(state.config.idle_timeout.as_millis()).unwrap_or(u32::MAX),
        nonce,
    };
    write_frame(&mut send, &ServerFrame::Welcome(welcome), MAX_CONTROL_FRAME).await?;
    Ok(Ok((send, recv, version)))
}

async fn request_loop(
    state: &Arc<State>,
    ctx: &mut ConnCtx,
    recv: &mut quinn::RecvStream,
    shutdown: &CancellationToken,
) -> Result<u32, FrameIoError> {
    let login_by = tokio::time::Instant::now() + state.config.login_deadline;
    loop {
        let expiry = ctx.session.as_ref().map(|s| s.expires_at_ms.saturating_sub(now_ms()));
        let expiry_sleep = tokio::time::sleep(Duration::from_millis(expiry.unwrap_or(u64::MAX / 4)));
        let payload = tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let _ = ctx.out.try_send(Box::new(ServerFrame::Event(Event::ShuttingDown { reconnect_after_ms: 1000 })));
                return Ok(close::DONE);
            }
            _ = ctx.end.cancelled() => return Ok(close::ENDED),
            _ = tokio::time::sleep_until(login_by), if ctx.session.is_none() => {
                let secs = state.config.login_deadline.as_secs();
                let why = format!("log in within {secs} s of connecting; connect again and log in");
                let _ = ctx.out.try_send(Box::new(ServerFrame::Reject(ErrorBody::new(ErrorCode::NotAuthenticated, why))));
                return Ok(close::PROTOCOL);
            }
            _ = expiry_sleep, if expiry.is_some() => {
                let reason = ErrorBody::new(ErrorCode::SessionExpired, "your session has expired; log in again with your password");
                let _ = ctx.out.try_send(Box::new(ServerFrame::Event(Event::SessionEnded(reason))));
                return Ok(close::ENDED);
            }
            p = read_payload(recv, MAX_CONTROL_FRAME) => p?,
        };
        let Some(payload) = payload else { return Ok(close::DONE) };
        let (id, req) = match decode_payload::<ClientFrame>(&payload) {
            Ok(ClientFrame::Request { id, req }) => (id, req),
            Ok(ClientFrame::Hello(_)) => {
                return protocol_error(ctx, "hello may only be sent once").await;
            }
            Err(e) => match peek_request_id(&payload) {
                // A well-formed request header around a request we don't know.
                Some(id) if matches!(e, FrameError::Payload(_)) => {
                    let err = ErrorBody::new(
                        ErrorCode::Unsupported,
                        "this tracker does not support that request; upgrade the tracker",
                    );
                    if ctx.out.send(Box::new(ServerFrame::Response { id, result: Err(err) })).await.is_err() {
                        return Ok(close::DONE);
                    }
                    continue;
                }
                _ => return protocol_error(ctx, &format!("undecodable frame: {e}")).await,
            },
        };
        let result = Box::pin(requests::handle(state, ctx, req)).await;
        if let Some(s) = &ctx.session {
            tracing::Span::current().record("user", s.live.user.as_str());
        }
        if ctx.out.send(Box::new(ServerFrame::Response { id, result })).await.is_err() {
            return Ok(close::DONE);
        }
    }
}

/// Ends the send side and waits (briefly) until the client has it all.
async fn finish(send: &mut quinn::SendStream) {
    if send.finish().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    }
}

async fn protocol_error(ctx: &ConnCtx, why: &str) -> Result<u32, FrameIoError> {
    tracing::info!(why, "closing connection for a protocol error");
    let _ = ctx.out.send(Box::new(ServerFrame::Reject(ErrorBody::new(ErrorCode::Malformed, why)))).await;
    Ok(close::PROTOCOL)
}
