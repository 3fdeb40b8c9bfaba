//! Image messages, emoji shortcodes and reactions end to end with real
//! daemons: a thumbnail that travels inline and shows in the history, the
//! full image fetched on demand, malformed and decompression-bomb images
//! refused with a clear error by the sender and, from a sender that skips
//! that check, by the receiver, `:thumbsup:` arriving as 👍, and reactions
//! added and taken back on every device of the conversation.

use base64::Engine;
use serde_json::Value;
use skein_proto::ErrorCode;
use skein_proto::bytes::ContentHash;
use skein_proto::file::{FileOffer, ImageMessage};
use skein_proto::peer::{MessageBody, PeerResponse};
use skein_tests::{Proc, TestTracker, skein};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(60);

async fn profile(t: &TestTracker, dir: &Path, name: &str, user: &str) -> PathBuf {
    skein_tests::login_profile(t, dir, name, user, PW).await
}

async fn daemon(p: &Path, extra: &[&str]) -> Proc {
    let mut d = skein_tests::daemon(p, extra);
    d.wait_line(T, "the daemon to connect", |l| l.contains("\"type\":\"connected\"")).await;
    d
}

fn event(line: &str, kind: &str) -> Option<Value> {
    serde_json::from_str::<Value>(line).ok().filter(|v| v["type"] == kind)
}

async fn send(from: &Path, to: &str, text: &str) -> Value {
    let (ok, out, err) = skein(from, &["send", to, text, "--json"], None).await;
    assert!(ok, "send: {err}");
    serde_json::from_str(&out).expect("send JSON")
}

async fn history(p: &Path, with: &str) -> Vec<Value> {
    let (ok, out, err) = skein(p, &["history", with, "--json"], None).await;
    assert!(ok, "history: {err}");
    serde_json::from_str::<Value>(&out).expect("history JSON").as_array().cloned().unwrap_or_default()
}

/// Sends texts until `to` is reachable directly.
async fn reach(from: &Path, to: &str) {
    for i in 0..50 {
        if send(from, to, &format!("ping {i}")).await["path"] == "direct" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{to} never became reachable");
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 90]));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}

#[tokio::test]
async fn an_image_shows_its_thumbnail_and_the_full_image_comes_on_demand() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb) = (profile(&t, dir.path(), "alice", "alice").await, profile(&t, dir.path(), "bob", "bob").await);
    let _alice = daemon(&pa, &[]).await;
    let mut bob = daemon(&pb, &[]).await;
    reach(&pa, "bob").await;

    let photo = dir.path().join("team photo.png");
    std::fs::write(&photo, png(1600, 900)).expect("write png");
    let (ok, out, err) = skein(&pa, &["send-image", "bob", photo.to_str().expect("utf-8"), "--json"], None).await;
    assert!(ok, "send-image: {err}");
    let sent: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(sent["path"], "direct");
    let id = sent["id"].as_str().expect("id").to_owned();
    bob.wait_line(T, "the image message", |l| event(l, "message").is_some_and(|v| v["id"] == id.as_str())).await;

    let h = history(&pb, "alice").await;
    let m = h.iter().find(|m| m["id"] == id.as_str()).expect("the image is in bob's history");
    let img = &m["image"];
    assert_eq!((img["name"].as_str(), img["format"].as_str()), (Some("team photo.png"), Some("png")));
    assert_eq!((img["width"].as_u64(), img["height"].as_u64()), (Some(1600), Some(900)));
    let thumb = base64::engine::general_purpose::STANDARD
        .decode(img["thumbnail_jpeg_base64"].as_str().expect("thumbnail"))
        .expect("base64");
    let t_img = image::load_from_memory_with_format(&thumb, image::ImageFormat::Jpeg).expect("the thumbnail is a JPEG");
    assert_eq!((t_img.width(), t_img.height()), (320, 180));

    // Only the thumbnail moved so far; the full image comes when asked for.
    let downloads = dir.path().join("pictures");
    let (ok, out, err) = skein(&pb, &["accept", &id, "--to", downloads.to_str().expect("utf-8")], None).await;
    assert!(ok, "fetching the full image: {err}");
    assert!(out.contains("team photo.png"), "{out}");
    assert_eq!(std::fs::read(downloads.join("team photo.png")).expect("saved"), std::fs::read(&photo).expect("src"));
    let (ok, out, err) = skein(&pb, &["accept", &id], None).await;
    assert!(ok && out.contains("team photo.png"), "accepting it again just says where it is: {out} {err}");
}

#[tokio::test]
async fn malformed_and_bomb_images_are_refused_clearly() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = profile(&t, dir.path(), "alice", "alice").await;
    let mut alice = daemon(&pa, &[]).await;

    let good = png(400, 300);
    let truncated = dir.path().join("cut.png");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write");
    let (ok, _, err) = skein(&pa, &["send-image", "bob", truncated.to_str().expect("utf-8")], None).await;
    assert!(!ok && err.contains("damaged or truncated"), "{err}");

    // 100,000 × 100,000 pixels claimed in a valid header: 30 GB if decoded.
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let bomb_path = dir.path().join("bomb.png");
    std::fs::write(&bomb_path, &bomb).expect("write");
    let (ok, _, err) = skein(&pa, &["send-image", "bob", bomb_path.to_str().expect("utf-8")], None).await;
    assert!(!ok && err.contains("too large to show"), "{err}");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a picture").expect("write");
    let (ok, _, err) = skein(&pa, &["send-image", "bob", text.to_str().expect("utf-8")], None).await;
    assert!(!ok && err.contains("PNG, JPEG, GIF or WebP"), "{err}");

    // The daemon is still serving.
    let (ok, _, err) = skein(&pa, &["transfers"], None).await;
    assert!(ok, "{err}");
    assert!(alice.child.try_wait().expect("status").is_none(), "the daemon is still running");
}

#[tokio::test]
async fn a_thumbnail_that_fails_the_receivers_check_is_refused_and_never_shown() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = profile(&t, dir.path(), "bob", "bob").await;
    let mut bob = daemon(&pb, &[]).await;
    // A sender that skips its own image checks, so only bob's daemon stands
    // between these thumbnails and bob.
    let mallory = skein_tests::RawDevice::login(&t, &dir.path().join("alice-script"), "alice", PW).await;
    let image = |name: &str, thumbnail: Vec<u8>| {
        MessageBody::Image(ImageMessage {
            file: FileOffer { name: name.into(), size: 5_000, root: ContentHash([3; 32]) },
            format: "png".into(),
            width: 64,
            height: 48,
            thumbnail,
        })
    };

    let good = png(64, 48);
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let cases = [
        ("truncated.png", good[..good.len() / 2].to_vec(), "damaged or truncated"),
        ("bomb.png", bomb, "too large to show"),
        ("notes.png", b"not a picture at all".to_vec(), "not an image Skein can show"),
    ];
    let mut refused = Vec::new();
    for (name, thumbnail, why) in cases {
        let (id, answers) = mallory.deliver("bob", image(name, thumbnail)).await;
        assert!(!answers.is_empty());
        for a in &answers {
            assert!(
                matches!(a, PeerResponse::Refused(b) if b.code == ErrorCode::InvalidInput
                    && b.message.contains("the image's thumbnail") && b.message.contains(why)),
                "{name}: bob's daemon refuses it, saying why: {a:?}"
            );
        }
        refused.push(id.to_hex());
    }

    // The same message with a thumbnail that decodes is stored and shown:
    // the thumbnail was the only thing wrong with the others.
    let (id, answers) = mallory.deliver("bob", image("fine.png", good)).await;
    assert!(answers.iter().all(|a| matches!(a, PeerResponse::Stored { .. })), "{answers:?}");
    let id = id.to_hex();
    bob.wait_line(T, "the good image", |l| event(l, "message").is_some_and(|v| v["id"] == id.as_str())).await;
    let h = history(&pb, "alice").await;
    assert!(h.iter().any(|m| m["id"] == id.as_str()), "the good image is in bob's history");
    for bad in &refused {
        assert!(!h.iter().any(|m| m["id"] == bad.as_str()), "a refused image is not in bob's history: {h:?}");
        assert!(
            !bob.seen.iter().any(|l| l.contains(bad.as_str())),
            "bob's daemon printed nothing about a refused image: {:#?}",
            bob.seen
        );
    }
}

/// CRC-32 as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

#[tokio::test]
async fn shortcodes_become_emoji_and_reactions_reach_every_device() {
    let t = skein_tests::tracker_with_users(&["alice", "bob"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pa = profile(&t, dir.path(), "alice", "alice").await;
    let pa2 = profile(&t, dir.path(), "alice-laptop", "alice").await;
    let pb = profile(&t, dir.path(), "bob", "bob").await;
    let mut alice = daemon(&pa, &[]).await;
    let mut laptop = daemon(&pa2, &[]).await;
    let mut bob = daemon(&pb, &[]).await;
    reach(&pa, "bob").await;

    let sent = send(&pa, "bob", ":thumbsup: ship it :rocket: at 10:30").await;
    let id = sent["id"].as_str().expect("id").to_owned();
    let got =
        bob.wait_line(T, "the emoji message", |l| event(l, "message").is_some_and(|v| v["id"] == id.as_str())).await;
    assert_eq!(event(&got, "message").expect("event")["text"], "👍 ship it 🚀 at 10:30");

    // Bob reacts; alice's two devices see it, and so does bob's history.
    let (ok, _, err) = skein(&pb, &["react", &id, ":tada:"], None).await;
    assert!(ok, "react: {err}");
    let (ok, _, err) = skein(&pb, &["react", &id, "👍"], None).await;
    assert!(ok, "react: {err}");
    for (who, d) in [("alice", &mut alice), ("alice's laptop", &mut laptop)] {
        d.wait_line(T, &format!("{who} sees the reaction"), |l| {
            event(l, "reaction").is_some_and(|v| v["id"] == id.as_str() && v["emoji"] == "🎉" && v["by"] == "bob")
        })
        .await;
    }
    let reactions = |h: Vec<Value>| h.iter().find(|m| m["id"] == id.as_str()).map(|m| m["reactions"].clone());
    let want = serde_json::json!({"🎉": ["bob"], "👍": ["bob"]});
    assert_eq!(reactions(history(&pa, "bob").await), Some(want.clone()));
    assert_eq!(reactions(history(&pb, "alice").await), Some(want));
    for _ in 0..100 {
        if reactions(history(&pa2, "bob").await) == Some(serde_json::json!({"🎉": ["bob"], "👍": ["bob"]})) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reactions(history(&pa2, "bob").await), Some(serde_json::json!({"🎉": ["bob"], "👍": ["bob"]})));
    // Reactions are not messages of their own in the conversation.
    assert!(history(&pa, "bob").await.iter().all(|m| m["reaction"].is_null()));

    // Alice adds hers, bob takes one back.
    let (ok, _, err) = skein(&pa, &["react", &id, "heart"], None).await;
    assert!(ok, "{err}");
    let (ok, _, err) = skein(&pb, &["react", &id, ":tada:", "--remove"], None).await;
    assert!(ok, "{err}");
    alice.wait_line(T, "the removal", |l| event(l, "reaction").is_some_and(|v| v["removed"] == true)).await;
    let want = serde_json::json!({"❤️": ["alice"], "👍": ["bob"]});
    assert_eq!(reactions(history(&pa, "bob").await), Some(want.clone()));
    bob.wait_line(T, "alice's heart", |l| event(l, "reaction").is_some_and(|v| v["by"] == "alice")).await;
    assert_eq!(reactions(history(&pb, "alice").await), Some(want));

    let (ok, _, err) = skein(&pb, &["react", &id, "not-an-emoji"], None).await;
    assert!(!ok && err.contains("not an emoji"), "{err}");
    let (ok, _, err) = skein(&pb, &["react", "00112233445566778899aabbccddeeff", "👍"], None).await;
    assert!(!ok && err.contains("no message"), "{err}");
}
