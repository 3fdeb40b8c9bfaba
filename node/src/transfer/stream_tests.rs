//! The two ends of a file-fetch stream against each other over an
//! in-memory pipe: a whole transfer, a resumed one, a sender that sends a
//! bad chunk once, and a sender whose file changed after the offer.

use super::manifest::Manifest;
use super::receive::{FetchError, Progress, Want, fetch};
use super::serve::{Source, read_get, serve_file};
use crate::mesh::codec::{read_frame, write_frame};
use futures::{AsyncReadExt, AsyncWriteExt};
use skein_proto::bytes::{ContentHash, MailId};
use skein_proto::file::{FetchReply, FetchRequest, MAX_FETCH_FRAME};
use std::path::Path;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

type Pipe = Compat<tokio::io::DuplexStream>;

fn pipe() -> (Pipe, Pipe) {
    let (a, b) = tokio::io::duplex(1 << 20);
    (a.compat(), b.compat())
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn want(m: &Manifest, dir: &Path) -> Want {
    Want {
        transfer: MailId([7; 16]),
        root: ContentHash(m.root()),
        size: m.size,
        dir: dir.to_owned(),
        name: "f.bin".into(),
    }
}

/// Serves `file` with its manifest on one end of a pipe; returns the other end.
fn serving(file: &Path, m: &Manifest) -> Pipe {
    let (near, mut far) = pipe();
    let source = Source { manifest: m.clone(), path: file.to_owned() };
    tokio::spawn(async move {
        read_get(&mut far).await.expect("get");
        let _ = serve_file(far, source, |_, _| {}).await;
    });
    near
}

#[tokio::test]
async fn a_file_moves_whole_and_verified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = data(5 * 4096 + 17);
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &bytes).expect("write");
    let m = Manifest::from_reader(&bytes[..], 4096).expect("manifest");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("out");
    let mut last = Progress::default();
    let path = fetch(serving(&src, &m), &want(&m, &out), |p| last = p).await.expect("fetch");
    assert_eq!(std::fs::read(path).expect("read"), bytes);
    assert_eq!((last.done, last.size, last.refetched), (bytes.len() as u64, bytes.len() as u64, 0));
}

#[tokio::test]
async fn a_bad_chunk_is_caught_at_once_and_fetched_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = data(4 * 4096);
    let m = Manifest::from_reader(&bytes[..], 4096).expect("manifest");
    let (near, mut far) = pipe();
    let (mb, b2) = (m.clone(), bytes.clone());
    // A sender that flips a bit in chunk 2 the first time it sends it.
    let sender = tokio::spawn(async move {
        read_get(&mut far).await.expect("get");
        write_frame(&mut far, &FetchReply::Manifest(mb.encode()), MAX_FETCH_FRAME).await.expect("manifest");
        far.flush().await.expect("flush");
        let mut spoiled = false;
        let mut sent = Vec::new();
        while let Ok(FetchRequest::Want(list)) = read_frame::<_, FetchRequest>(&mut far, MAX_FETCH_FRAME).await {
            for i in list {
                let (start, len) = mb.chunk_span(u64::from(i)).expect("span");
                let mut chunk = b2[start as usize..(start + len) as usize].to_vec();
                if i == 2 && !spoiled {
                    chunk[100] ^= 1;
                    spoiled = true;
                }
                write_frame(&mut far, &FetchReply::Chunk { index: i, len: chunk.len() as u32 }, MAX_FETCH_FRAME)
                    .await
                    .expect("header");
                far.write_all(&chunk).await.expect("chunk");
                far.flush().await.expect("flush");
                sent.push(i);
            }
        }
        sent
    });
    let mut last = Progress::default();
    let path = fetch(near, &want(&m, dir.path()), |p| last = p).await.expect("fetch");
    assert_eq!(std::fs::read(path).expect("read"), bytes);
    assert_eq!(last.refetched, 1);
    let sent = sender.await.expect("sender");
    assert_eq!(sent.iter().filter(|&&i| i == 2).count(), 2, "chunk 2 was asked for again: {sent:?}");
}

#[tokio::test]
async fn a_resumed_transfer_asks_only_for_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = data(6 * 4096);
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &bytes).expect("write");
    let m = Manifest::from_reader(&bytes[..], 4096).expect("manifest");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("out");
    {
        let mut p = super::partial::Partial::open(&out, "f.bin", m.clone()).expect("partial");
        for i in [0, 1, 2, 4] {
            let (s, l) = m.chunk_span(i).expect("span");
            p.write_chunk(i, &bytes[s as usize..(s + l) as usize]).expect("chunk");
        }
        p.checkpoint().expect("checkpoint");
    }
    let mut seen = Vec::new();
    let path = fetch(serving(&src, &m), &want(&m, &out), |p| seen.push(p.done)).await.expect("fetch");
    assert_eq!(std::fs::read(path).expect("read"), bytes);
    assert_eq!(seen.first(), Some(&(4 * 4096)), "it started from the four verified chunks");
}

#[tokio::test]
async fn a_file_changed_after_the_offer_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = data(3 * 4096);
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &bytes).expect("write");
    let m = Manifest::from_reader(&bytes[..], 4096).expect("manifest");
    let mut changed = bytes.clone();
    changed[5000] ^= 0xff;
    std::fs::write(&src, &changed).expect("change it");
    let err = fetch(serving(&src, &m), &want(&m, dir.path()), |_| {}).await.expect_err("refused");
    assert!(matches!(&err, FetchError::Refused(b) if b.message.contains("changed")), "{err:?}");
    // And a sender that answers with garbage is an invalid sender, not a crash.
    let (near, mut far) = pipe();
    tokio::spawn(async move {
        let _ = read_get(&mut far).await;
        let _ = far.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
        let _ = far.flush().await;
        let mut sink = Vec::new();
        let _ = far.read_to_end(&mut sink).await;
    });
    let err = fetch(near, &want(&m, dir.path()), |_| {}).await.expect_err("garbage");
    assert!(matches!(err, FetchError::Interrupted(_) | FetchError::Invalid(_)), "{err:?}");
}
