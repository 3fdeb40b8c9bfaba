//! Mailbox sealing micro-benchmarks: sealing a chat message to a device's
//! X25519 key and opening it again, for a short and a long message.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use skein_node::seal::{open_payload, seal_payload};
use skein_proto::bytes::{DeviceId, MailId, PublicKey};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody, SealedPayload};
use std::hint::black_box;
use x25519_dalek::StaticSecret;

fn message(len: usize) -> SealedPayload {
    SealedPayload::Message(ChatMessage {
        id: MailId([7; 16]),
        from_user: "alice".into(),
        from_device: DeviceId([1; 16]),
        to_user: "bob".into(),
        conversation: Conversation::Direct,
        sent_at_ms: 1_800_000_000_000,
        body: MessageBody::Text("x".repeat(len)),
    })
}

fn bench(c: &mut Criterion) {
    let secret = StaticSecret::from([0x42; 32]);
    let public = PublicKey(*x25519_dalek::PublicKey::from(&secret).as_bytes());
    let aad = [9u8; 32];
    let mut group = c.benchmark_group("mailbox");
    for len in [200usize, 16 * 1024] {
        let payload = message(len);
        let sealed = seal_payload(&public, &payload, &aad).expect("seal");
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("seal", len), &payload, |b, p| {
            b.iter(|| seal_payload(black_box(&public), black_box(p), &aad).expect("seal"))
        });
        group.bench_with_input(BenchmarkId::new("open", len), &sealed, |b, s| {
            b.iter(|| open_payload(black_box(&secret), black_box(s), &aad).expect("open"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
