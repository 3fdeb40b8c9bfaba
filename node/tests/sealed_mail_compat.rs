//! Mail sealed by an earlier version must still open.
//!
//! A tracker holds sealed items for offline devices for as long as they stay
//! offline, so a device can upgrade Skein with mail waiting for it. Each
//! blob below was sealed once by Skein 0.1.0 (seal format version 1) and is
//! checked in as it was produced; today's code must open it with the
//! device's key, under the same routing data the inbox passes, to exactly the
//! payload that was sealed. A failure here means old mail would be lost:
//! keep the old format readable instead of changing these bytes.
//!
//! The blobs were made with fixed keys so they can be made again: recipient
//! X25519 secret `[0x11; 32]`, item `i` (1–6) sealed with ephemeral secret
//! `[0x20 + i; 32]` and nonce `[0x30 + i; 24]`, for mail id `[0x40 + i; 16]`
//! and recipient device `[0xd1; 16]`.

use skein_node::delivery::seal_aad;
use skein_node::seal::{SealError, open_payload};
use skein_proto::bytes::{ContentHash, DeviceId, MailId};
use skein_proto::file::{FileOffer, FileState, FileStatus, ImageMessage, Reaction};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody, Receipt, ReceiptKind, SealedPayload};
use x25519_dalek::{PublicKey, StaticSecret};

const RECIPIENT_SECRET: [u8; 32] = [0x11; 32];
const RECIPIENT_PUBLIC: &str = "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13";
const DEVICE: DeviceId = DeviceId([0xd1; 16]);

/// `(item, sealed bytes)`, as stored in a mailbox by Skein 0.1.0.
const SEALED: [(u8, &str); 6] = [
    (
        1,
        "017d34a4815fa6b982535e60af3bd9b49556816080f1641ff81d2b7c8ae8268a443131313131313131313131313131313131313131313131312d6b34f8bed336d28f5363e58509b70d0d84ef48112ac21e5ffbb48c66b1ed6a32898b5273411f7373a9b70ddeff4b4488ff9b25b54a74ce989564d72d824f933adcdba1ab59ff7bbae8aeeaf630dcfd59384526b2afc673b2399ea7e69d86ee5cf78a88c7d569f6227349b5bd0abac606eb3981",
    ),
    (
        2,
        "010faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20323232323232323232323232323232323232323232323232683681ab2dca652a03fb7a44e7525da7246de121d60fa73fe13df929c242b987be4d939b4712a2340c9bc67468554826f7fde801832c754b22949093cc2cfcd272550ae42ec13fb89960639142ab17806f4246baf8754fb15de01cc995232c12f1989544030f6da220066af5a8e6d6f390d44457",
    ),
    (
        3,
        "019a4503a98ab10fe8d354c9c42cbd0c9d7944f52e7d14d8ea59775e7dc9e3bf4b3333333333333333333333333333333333333333333333338eca947a815f45c38d67c0861d35de68d93df111ff4ca3461316b94f12da8d9d4ff1a05421f740c5cf584bd5e11a30a48bc8937d262f2cdf2e68787220221388e0d2f335d7a4676fbe9ea7fb3143a00f3278409d1ecaa4e60f7b23c69e35f602f4690b577dbaaff6d79798ba1f62465d72bab70f752496f70d2dba87719a",
    ),
    (
        4,
        "0104bcd2e0d00f2cce5fe8f1c6c2fbec5c07fa56e3aa5c88a5689975d88b3fce053434343434343434343434343434343434343434343434349d653f18748fcb9f9220a0ab42a8528cec0bfb280f95af1f5c85d10beed415f3ab78b1fb4261f526e1eb0b61fee2d7f3d6640d1623cd30aeb29a24ec57d353df5d936b6d2b4fa013f677a86c9e875413da9834238c029cf23fc0ac15",
    ),
    (
        5,
        "013430e0014dd50b6127e4beb4eecc411591e061ef9792a317c36056191002b72f353535353535353535353535353535353535353535353535cb0405a685cc650a9546fe2f7302617bbcac66807975c43f8123c1b3befebadee715ab8a3e37431338ea86a0d5cb7e57fb028923aa6c9e56d6ca1d4e1ce2f76498",
    ),
    (
        6,
        "01920b867cb9471215b75421067517e5a9bd4677e1e1ce13a4c3b7d42d3386b8643636363636363636363636363636363636363636363636363a467b9d2776afeef2100df2d3822bb8ab75cf0a0b2fb5001b15fcb36f3205438e8563f570330ae35971d5e8d18d898dfdb8b7e722cea5726c0d608579b8cc5b",
    ),
];

fn message(id: u8, body: MessageBody) -> SealedPayload {
    SealedPayload::Message(ChatMessage {
        id: MailId([id; 16]),
        from_user: "alice".into(),
        from_device: DeviceId([0xa1; 16]),
        to_user: "bob".into(),
        conversation: Conversation::Direct,
        sent_at_ms: 1_700_000_000_000,
        body,
    })
}

/// What item `i` was sealed from.
fn expected(item: u8) -> SealedPayload {
    match item {
        1 => message(1, MessageBody::Text("sealed by 0.1.0, opened by every later version".into())),
        2 => message(
            2,
            MessageBody::File(FileOffer { name: "report.pdf".into(), size: 1_048_577, root: ContentHash([0xc4; 32]) }),
        ),
        3 => message(
            3,
            MessageBody::Image(ImageMessage {
                file: FileOffer { name: "cat.png".into(), size: 70_000, root: ContentHash([0xc5; 32]) },
                format: "png".into(),
                width: 640,
                height: 480,
                thumbnail: vec![0xff, 0xd8, 0xff, 0xd9],
            }),
        ),
        4 => message(
            4,
            MessageBody::Reaction(Reaction { target: MailId([0x01; 16]), emoji: "👍".into(), remove: false }),
        ),
        5 => SealedPayload::Receipt(Receipt {
            ids: vec![MailId([0x0a; 16]), MailId([0x0b; 16])],
            kind: ReceiptKind::Read,
            by_user: "alice".into(),
            at_ms: 1_700_000_000_123,
        }),
        6 => SealedPayload::FileStatus(FileStatus {
            transfer: MailId([0x02; 16]),
            by_user: "alice".into(),
            by_device: DeviceId([0xa1; 16]),
            state: FileState::Completed,
            at_ms: 1_700_000_000_456,
        }),
        other => panic!("no item {other}"),
    }
}

fn mail_id(item: u8) -> MailId {
    MailId([0x40 + item; 16])
}

#[test]
fn the_fixed_key_is_the_one_the_mail_was_sealed_to() {
    let public = PublicKey::from(&StaticSecret::from(RECIPIENT_SECRET));
    assert_eq!(hex::encode(public.as_bytes()), RECIPIENT_PUBLIC);
}

#[test]
fn mail_sealed_by_0_1_0_still_opens() {
    let secret = StaticSecret::from(RECIPIENT_SECRET);
    for (item, sealed) in SEALED {
        let sealed = hex::decode(sealed).expect("hex");
        let opened = open_payload(&secret, &sealed, &seal_aad(&mail_id(item), &DEVICE));
        assert_eq!(opened, Ok(expected(item)), "item {item}");
    }
}

/// The routing data is still bound as it was: the same bytes under another
/// mail id or device do not open.
#[test]
fn old_mail_stays_bound_to_its_id_and_device() {
    let secret = StaticSecret::from(RECIPIENT_SECRET);
    let (item, sealed) = SEALED[0];
    let sealed = hex::decode(sealed).expect("hex");
    let moved = open_payload(&secret, &sealed, &seal_aad(&mail_id(item + 1), &DEVICE));
    assert_eq!(moved, Err(SealError::Forged));
    let other_device = open_payload(&secret, &sealed, &seal_aad(&mail_id(item), &DeviceId([0xd2; 16])));
    assert_eq!(other_device, Err(SealError::Forged));
}
