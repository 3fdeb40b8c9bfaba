//! `read_frame` / `write_frame` over an in-memory duplex stream.

use skein_proto::control::{ClientFrame, Hello, Request};
use skein_proto::frame::encode_frame;
use skein_proto::io::{FrameIoError, read_frame, write_frame};
use skein_proto::{FrameError, limits::MAX_CONTROL_FRAME};
use std::io::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

fn ping(nonce: u64) -> ClientFrame {
    ClientFrame::Request { id: 1, req: Request::Ping { nonce } }
}

#[tokio::test]
async fn frames_round_trip_through_a_small_pipe() {
    // An 8-byte pipe forces partial reads and writes of every frame.
    let (mut client, mut server) = duplex(8);
    let hello = ClientFrame::Hello(Hello { min_version: 1, max_version: 1, agent: "x".repeat(100) });
    let sent = vec![hello, ping(1), ping(u64::MAX)];
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        for msg in &to_send {
            write_frame(&mut client, msg, MAX_CONTROL_FRAME).await.expect("write");
        }
    });
    let mut got = Vec::new();
    while let Some(msg) = read_frame::<ClientFrame, _>(&mut server, MAX_CONTROL_FRAME).await.expect("read") {
        got.push(msg);
    }
    writer.await.expect("writer task");
    assert_eq!(got, sent);
}

#[tokio::test]
async fn clean_eof_between_frames_is_none() {
    let (mut client, mut server) = duplex(1024);
    write_frame(&mut client, &ping(5), 1024).await.expect("write");
    drop(client);
    assert_eq!(read_frame::<ClientFrame, _>(&mut server, 1024).await.expect("read"), Some(ping(5)));
    assert_eq!(read_frame::<ClientFrame, _>(&mut server, 1024).await.expect("read"), None);
}

#[tokio::test]
async fn oversized_header_is_rejected_without_reading_the_body() {
    let (mut client, mut server) = duplex(1024);
    client.write_all(&65u32.to_be_bytes()).await.expect("write header");
    client.write_all(b"body").await.expect("write body");
    // The writer stays open: a reader that waited for the body would hang.
    let err = read_frame::<ClientFrame, _>(&mut server, 64).await.expect_err("too large");
    assert!(matches!(err, FrameIoError::Frame(FrameError::TooLarge { len: 65, max: 64 })), "{err:?}");
    let mut rest = [0u8; 4];
    server.read_exact(&mut rest).await.expect("body still unread");
    assert_eq!(&rest, b"body");
}

#[tokio::test]
async fn eof_mid_frame_is_an_error() {
    let frame = encode_frame(&ping(9), 1024).expect("encode");
    // Cut inside the header and inside the body.
    for cut in [2, frame.len() - 1] {
        let (mut client, mut server) = duplex(1024);
        client.write_all(&frame[..cut]).await.expect("write");
        drop(client);
        let err = read_frame::<ClientFrame, _>(&mut server, 1024).await.expect_err("truncated");
        assert!(matches!(&err, FrameIoError::Io(e) if e.kind() == ErrorKind::UnexpectedEof), "cut {cut}: {err:?}");
    }
}

#[tokio::test]
async fn bad_frames_are_errors() {
    let (mut client, mut server) = duplex(1024);
    client.write_all(&0u32.to_be_bytes()).await.expect("write");
    let err = read_frame::<ClientFrame, _>(&mut server, 1024).await.expect_err("empty");
    assert!(matches!(err, FrameIoError::Frame(FrameError::Empty)), "{err:?}");

    let (mut client, mut server) = duplex(1024);
    client.write_all(&[0, 0, 0, 2, 0xff, 0xff]).await.expect("write");
    let err = read_frame::<ClientFrame, _>(&mut server, 1024).await.expect_err("garbage");
    assert!(matches!(err, FrameIoError::Frame(FrameError::Payload(_))), "{err:?}");
}

#[tokio::test]
async fn oversized_message_is_not_written() {
    let (mut client, mut server) = duplex(1024);
    let err = write_frame(&mut client, &ping(1), 3).await.expect_err("too large");
    assert!(matches!(err, FrameIoError::Frame(FrameError::TooLarge { len: 4, max: 3 })), "{err:?}");
    drop(client);
    assert_eq!(read_frame::<ClientFrame, _>(&mut server, 1024).await.expect("read"), None);
}
