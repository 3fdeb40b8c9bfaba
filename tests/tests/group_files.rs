//! Files and images offered to a group, end to end with real `skein
//! daemon` processes and a real tracker: one offer (a group message) that
//! every member device fetches, auto-accepted or accepted by hand, with
//! the members serving each other the chunks they hold so the sender
//! uploads the file well under once per member; group-file streams are
//! answered for devices of members only; an image offered to a group shows
//! its thumbnail to every member and comes on demand.

use base64::Engine;
use serde_json::Value;
use skein_node::mesh::codec::{read_frame, write_frame};
use skein_node::transfer::swarm_wire::{MAX_SWARM_FRAME, SWARM_PROTOCOL, SwarmReply, SwarmRequest};
use skein_proto::bytes::{ContentHash, MailId};
use skein_tests::{Proc, RawDevice, TestTracker, skein};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "correct horse battery";
const T: Duration = Duration::from_secs(60);
/// Long enough for 64 MiB to reach four members on a busy two-core machine.
const LONG: Duration = Duration::from_secs(600);
const MIB: u64 = 1 << 20;

async fn profile(t: &TestTracker, dir: &Path, user: &str) -> PathBuf {
    skein_tests::login_profile(t, dir, user, user, PW).await
}

async fn daemon(p: &Path, extra: &[&str]) -> Proc {
    let mut d = skein_tests::daemon(p, extra);
    d.wait_line(T, "the daemon to connect", |l| l.contains("\"type\":\"connected\"")).await;
    d
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

async fn transfer(p: &Path, id: &str) -> Value {
    let (ok, out, err) = skein(p, &["transfers", id, "--json"], None).await;
    assert!(ok, "transfers {id}: {err}");
    json(&out)
}

/// Waits until `p` lists transfer `id` in a state `done` accepts.
async fn wait_transfer(p: &Path, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let (ok, out, _) = skein(p, &["transfers", id, "--json"], None).await;
        if ok {
            let v = json(&out);
            if done(&v) {
                return v;
            }
            assert!(!["failed", "declined"].contains(&v["state"].as_str().unwrap_or("")), "{what}: {v}");
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}: {v}");
            }
        } else if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn same_bytes(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).expect("read a"), std::fs::read(b).expect("read b"));
    assert!(x.len() == y.len() && x == y, "{} and {} differ", a.display(), b.display());
}

/// Opens a group-file stream from `dev` to `user`'s daemon and asks for
/// the file `transfer`: its first answer.
async fn ask_for(dev: &RawDevice, user: &str, transfer: MailId, root: ContentHash) -> SwarmReply {
    use futures::AsyncWriteExt;
    use skein_proto::control::{Request, Response};
    let info = match dev.session.client.request(Request::LookupPeer { user: user.into() }).await {
        Ok(Response::Peer(p)) => p,
        other => panic!("lookup {user}: {other:?}"),
    };
    let d = info.online.iter().find(|d| !d.addresses.listen.is_empty()).expect("an online device");
    let peer = libp2p::PeerId::from_bytes(&d.cert.body.peer_id).expect("peer id");
    let addrs = d.addresses.listen.iter().filter_map(|a| a.parse().ok()).collect();
    dev.mesh.connect(peer, addrs).await.unwrap_or_else(|e| panic!("cannot reach {user}: {e}"));
    let mut stream = dev
        .mesh
        .streams()
        .open_stream(peer, libp2p::StreamProtocol::new(SWARM_PROTOCOL))
        .await
        .expect("open a group-file stream");
    write_frame(&mut stream, &SwarmRequest::Open { transfer, root }, MAX_SWARM_FRAME).await.expect("ask");
    stream.flush().await.expect("flush");
    read_frame::<_, SwarmReply>(&mut stream, MAX_SWARM_FRAME).await.expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_offered_to_a_group_reaches_every_member_and_the_sender_uploads_it_less_than_twice() {
    let users = ["alice", "bob", "carol", "dave", "erin", "mallory"];
    let t = skein_tests::tracker_with_users(&users, PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = std::collections::HashMap::new();
    for u in &users[..5] {
        p.insert(*u, profile(&t, dir.path(), u).await);
    }
    let (ok, out, err) =
        skein(&p["alice"], &["group", "create", "team", "--members", "bob,carol,dave,erin", "--json"], None).await;
    assert!(ok, "{err}");
    let group = json(&out)["id"].as_str().expect("group id").to_owned();

    // Bob, carol and dave take every offer; erin accepts by hand.
    let _alice = daemon(&p["alice"], &[]).await;
    let mut members = Vec::new();
    let downloads = |u: &str| dir.path().join(format!("{u}-downloads"));
    for u in ["bob", "carol", "dave", "erin"] {
        let dl = downloads(u);
        let mut args = vec!["--download-dir", dl.to_str().expect("utf-8")];
        if u != "erin" {
            args.push("--auto-accept");
        }
        members.push((u, daemon(&p[u], &args).await));
    }

    let size = 64 * MIB;
    let src = dir.path().join("quarterly.bin");
    std::fs::write(&src, skein_tests::pseudo_random(size as usize, 12)).expect("write the file");
    let (ok, out, err) =
        skein(&p["alice"], &["send-file", "#team", src.to_str().expect("utf-8"), "--no-wait", "--json"], None).await;
    assert!(ok, "send-file to a group: {err}");
    let offer = json(&out);
    assert_eq!(offer["group"], group.as_str(), "{offer}");
    let id = offer["id"].as_str().expect("transfer id").to_owned();

    // One offer: each member's daemon sees it once, as a group message.
    for (u, d) in &mut members {
        let line =
            d.wait_line(T, &format!("the offer at {u}"), |l| l.contains("\"file_offer\"") && l.contains(&id)).await;
        assert!(line.contains("quarterly.bin"), "{line}");
        d.wait_line(T, &format!("the group message at {u}"), |l| {
            l.contains("\"type\":\"message\"") && l.contains(&format!("#{group}"))
        })
        .await;
    }
    let erin_p = p["erin"].clone();
    let erin_id = id.clone();
    let erin = tokio::spawn(async move { skein(&erin_p, &["accept", &erin_id, "--json"], None).await });

    for u in ["bob", "carol", "dave"] {
        let v = wait_transfer(&p[u], &id, &format!("{u} to have the file"), |v| v["state"] == "completed").await;
        assert_eq!((v["direction"].as_str(), v["peer"].as_str()), (Some("in"), Some("alice")), "{v}");
        same_bytes(&src, Path::new(v["saved_path"].as_str().expect("saved path")));
    }
    let (ok, out, err) = erin.await.expect("erin's accept");
    assert!(ok, "erin's accept: {err}");
    let v = json(&out);
    assert_eq!(v["state"], "completed", "{v}");
    same_bytes(&src, Path::new(v["saved_path"].as_str().expect("saved path")));

    // The sender hears from every member device, and sent less than two
    // copies of the file in all: the members passed chunks on to each other.
    let mine = wait_transfer(&p["alice"], &id, "every member's report at alice", |v| {
        v["devices"].as_array().is_some_and(|d| d.len() == 4 && d.iter().all(|d| d["state"] == "completed"))
    })
    .await;
    assert_eq!((mine["direction"].as_str(), mine["peer"].as_str()), (Some("out"), Some(format!("#{group}").as_str())));
    let per_device: u64 =
        mine["devices"].as_array().expect("devices").iter().map(|d| d["bytes_sent"].as_u64().expect("bytes")).sum();
    assert_eq!(mine["bytes_sent"].as_u64(), Some(per_device), "{mine}");
    assert!(per_device >= size, "every chunk left the sender at least once: {mine}");
    assert!(
        per_device < 2 * size,
        "the sender sent {} MiB of a {} MiB file to 4 members: {mine}",
        per_device / MIB,
        size / MIB
    );
    let mut shared = 0;
    for u in ["bob", "carol", "dave", "erin"] {
        shared += transfer(&p[u], &id).await["bytes_shared"].as_u64().unwrap_or(0);
    }
    assert!(per_device + shared >= 4 * size, "4 copies left someone: alice {per_device}, members {shared}");

    // Only devices of members are served: not mallory, who is in no such
    // group, from the sender or from a member; a second device of bob's is.
    let root = ContentHash::from_hex(offer["root"].as_str().expect("root")).expect("root hex");
    let transfer_id = MailId::from_hex(&id).expect("id hex");
    let mallory = RawDevice::login(&t, &dir.path().join("mallory"), "mallory", PW).await;
    for from in ["alice", "carol"] {
        match ask_for(&mallory, from, transfer_id, root).await {
            SwarmReply::Refused(b) => assert_eq!(b.code, skein_proto::ErrorCode::NotFound, "{b:?}"),
            other => panic!("{from} answered mallory with {other:?}"),
        }
    }
    let bobs_phone = RawDevice::login(&t, &dir.path().join("bob-phone"), "bob", PW).await;
    assert!(
        matches!(ask_for(&bobs_phone, "carol", transfer_id, root).await, SwarmReply::Manifest(_)),
        "a member's other device is served by a member"
    );
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 5 % 256) as u8, (y * 11 % 256) as u8, 40]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_offered_to_a_group_shows_its_thumbnail_to_members_and_comes_on_demand() {
    let t = skein_tests::tracker_with_users(&["alice", "bob", "carol"], PW).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pa, pb, pc) = (
        profile(&t, dir.path(), "alice").await,
        profile(&t, dir.path(), "bob").await,
        profile(&t, dir.path(), "carol").await,
    );
    let (ok, _, err) = skein(&pa, &["group", "create", "crew", "--members", "bob,carol"], None).await;
    assert!(ok, "{err}");
    let _alice = daemon(&pa, &[]).await;
    let mut bob = daemon(&pb, &[]).await;
    let mut carol = daemon(&pc, &[]).await;

    let photo = dir.path().join("offsite.png");
    std::fs::write(&photo, png(1200, 800)).expect("write png");
    let (ok, out, err) = skein(&pa, &["send-image", "#crew", photo.to_str().expect("utf-8"), "--json"], None).await;
    assert!(ok, "send-image to a group: {err}");
    let id = json(&out)["id"].as_str().expect("id").to_owned();
    for (u, d) in [("bob", &mut bob), ("carol", &mut carol)] {
        d.wait_line(T, &format!("the image offer at {u}"), |l| l.contains("\"file_offer\"") && l.contains(&id)).await;
    }
    for p in [&pb, &pc] {
        let (ok, out, err) = skein(p, &["history", "#crew", "--json"], None).await;
        assert!(ok, "{err}");
        let h = json(&out);
        let m = h.as_array().expect("history").iter().find(|m| m["id"] == id.as_str()).expect("the image message");
        assert_eq!((m["image"]["width"].as_u64(), m["image"]["height"].as_u64()), (Some(1200), Some(800)), "{m}");
        let thumb = base64::engine::general_purpose::STANDARD
            .decode(m["image"]["thumbnail_jpeg_base64"].as_str().expect("thumbnail"))
            .expect("base64");
        assert!(thumb.starts_with(&[0xff, 0xd8]), "a JPEG thumbnail");
        assert_eq!(transfer(p, &id).await["state"], "offered", "the full image waits to be asked for");
    }
    // Carol asks for the full image; bob has not.
    let (ok, out, err) = skein(&pc, &["accept", &id, "--json"], None).await;
    assert!(ok, "accept: {err}");
    let v = json(&out);
    same_bytes(&photo, Path::new(v["saved_path"].as_str().expect("saved path")));
    assert_eq!(transfer(&pb, &id).await["state"], "offered");
}
