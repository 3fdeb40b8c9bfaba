//! Codec micro-benchmarks: postcard encoding and decoding of typical control
//! frames, and `FrameDecoder` throughput over a stream of small frames.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use skein_proto::FrameDecoder;
use skein_proto::bytes::{DeviceId, PublicKey};
use skein_proto::control::*;
use skein_proto::frame::{decode_payload, encode_frame, encode_payload};
use skein_proto::limits::MAX_CONTROL_FRAME;
use std::hint::black_box;

fn login() -> ClientFrame {
    ClientFrame::Request {
        id: 1,
        req: Request::Login(Login {
            user: "alice".into(),
            password: "correct horse battery staple".into(),
            device: DeviceHello {
                device_id: DeviceId([0xd1; 16]),
                name: "alice-laptop".into(),
                peer_id: vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20].into_iter().chain([0x5a; 32]).collect(),
                x25519: PublicKey([0x25; 32]),
                proof: vec![0x5f; 64],
            },
        }),
    }
}

fn directory_query() -> ClientFrame {
    ClientFrame::Request {
        id: 2,
        req: Request::Directory(DirectoryQuery {
            text: Some("ng".into()),
            department: Some("Engineering/Backend".into()),
            offset: 0,
            limit: 50,
        }),
    }
}

fn directory_page(users: usize) -> ServerFrame {
    let users = (0..users)
        .map(|i| UserEntry {
            name: format!("user{i:03}"),
            display_name: format!("User Number {i}"),
            department: Some("Engineering/Backend".into()),
            title: Some("Software Engineer".into()),
            email: Some(format!("user{i:03}@example.com")),
            phone: (i % 3 == 0).then(|| "+1 555 0100".into()),
            disabled: false,
            status: PresenceStatus::Online,
            last_seen_ms: 1_700_000_000_000 + i as u64,
        })
        .collect();
    ServerFrame::Response { id: 2, result: Ok(Response::Directory(DirectoryPage { users, total: 1234 })) }
}

fn presence_event(i: u64) -> ServerFrame {
    ServerFrame::Event(Event::Presence(PresenceEntry {
        user: format!("user{:03}", i % 1000),
        status: PresenceStatus::Away,
        note: None,
        last_seen_ms: 1_700_000_000_000 + i,
        devices: 1,
    }))
}

/// Benchmarks encoding `$msg` and decoding it back as `$ty`. A macro, not a
/// generic fn, so this crate needs no direct serde dependency.
macro_rules! encode_decode {
    ($group:expr, $name:expr, $msg:expr, $ty:ty) => {{
        let msg: $ty = $msg;
        let bytes = encode_payload(&msg).expect("encode");
        $group.throughput(Throughput::Bytes(bytes.len() as u64));
        $group.bench_function(BenchmarkId::new("encode", $name), |b| {
            b.iter(|| encode_payload(black_box(&msg)).expect("encode"))
        });
        $group.bench_function(BenchmarkId::new("decode", $name), |b| {
            b.iter(|| decode_payload::<$ty>(black_box(&bytes)).expect("decode"))
        });
    }};
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    encode_decode!(group, "login", login(), ClientFrame);
    encode_decode!(group, "directory_query", directory_query(), ClientFrame);
    encode_decode!(group, "directory_page_50", directory_page(50), ServerFrame);
    group.finish();
}

/// 1 MiB of presence-event frames (~30 bytes each), pushed in socket-sized
/// reads and drained after each read, as a connection task would.
fn frame_decoder(c: &mut Criterion) {
    let mut stream = Vec::with_capacity(1 << 20);
    let mut frames = 0;
    loop {
        let frame = encode_frame(&presence_event(frames), MAX_CONTROL_FRAME).expect("encode");
        if stream.len() + frame.len() > 1 << 20 {
            break;
        }
        stream.extend_from_slice(&frame);
        frames += 1;
    }
    let mut group = c.benchmark_group("frame_decoder_1MiB");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(10);
    for read in [4 << 10, 64 << 10] {
        let label = format!("{}KiB_reads", read >> 10);
        group.bench_function(BenchmarkId::new("payloads", &label), |b| {
            b.iter(|| {
                let mut decoder = FrameDecoder::new(MAX_CONTROL_FRAME);
                let mut n = 0;
                for chunk in stream.chunks(read) {
                    decoder.push(chunk).expect("push");
                    while let Some(payload) = decoder.next_payload().expect("payload") {
                        black_box(payload);
                        n += 1;
                    }
                }
                assert_eq!(n, frames);
            })
        });
        group.bench_function(BenchmarkId::new("messages", &label), |b| {
            b.iter(|| {
                let mut decoder = FrameDecoder::new(MAX_CONTROL_FRAME);
                let mut n = 0;
                for chunk in stream.chunks(read) {
                    decoder.push(chunk).expect("push");
                    while let Some(msg) = decoder.next_message::<ServerFrame>().expect("message") {
                        black_box(msg);
                        n += 1;
                    }
                }
                assert_eq!(n, frames);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec, frame_decoder);
criterion_main!(benches);
