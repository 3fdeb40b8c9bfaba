//! Tests of the history against real SQLite files in temporary directories.

#![allow(clippy::unwrap_used)]

use super::{ConversationSummary, History, HistoryError, OutState, conversation_of};
use skein_proto::bytes::{DeviceId, MailId};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody};
use std::path::PathBuf;

pub(super) const ALICE_PHONE: DeviceId = DeviceId([0xa1; 16]);
const ALICE_LAPTOP: DeviceId = DeviceId([0xa2; 16]);
pub(super) const BOB_PHONE: DeviceId = DeviceId([0xb1; 16]);

pub(super) fn id(n: u8) -> MailId {
    MailId([n; 16])
}

pub(super) fn msg(n: u8, from: &str, device: DeviceId, to: &str, text: &str) -> ChatMessage {
    ChatMessage {
        id: id(n),
        from_user: from.into(),
        from_device: device,
        to_user: to.into(),
        conversation: Conversation::Direct,
        sent_at_ms: 1_000 + u64::from(n),
        body: MessageBody::Text(text.into()),
    }
}

/// A history for `alice` in a fresh temporary directory.
pub(super) async fn fresh() -> (tempfile::TempDir, PathBuf, History) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile").join("history.db");
    let history = History::open(&path).await.unwrap();
    (dir, path, history)
}

async fn summary(history: &History, conversation: &str) -> ConversationSummary {
    history.conversations().await.unwrap().into_iter().find(|c| c.id == conversation).unwrap()
}

#[test]
fn conversations_are_named_after_the_other_user() {
    let from_bob = msg(1, "bob", BOB_PHONE, "alice", "hi");
    let to_bob = msg(2, "alice", ALICE_PHONE, "bob", "hello");
    assert_eq!(conversation_of("alice", &from_bob), "bob");
    assert_eq!(conversation_of("alice", &to_bob), "bob");
    assert_eq!(conversation_of("bob", &from_bob), "alice");
    assert_eq!(conversation_of("bob", &to_bob), "alice");
    let note = msg(3, "alice", ALICE_PHONE, "alice", "note to self");
    assert_eq!(conversation_of("alice", &note), "alice");
}

#[tokio::test]
async fn incoming_message_is_stored_once() {
    let (_dir, _, history) = fresh().await;
    let m = msg(1, "bob", BOB_PHONE, "alice", "hi alice");
    assert!(history.insert_incoming("alice", &m, "direct").await.unwrap());
    assert!(!history.insert_incoming("alice", &m, "mailbox").await.unwrap());

    let stored = history.messages("bob", 100, None).await.unwrap();
    assert_eq!(stored.len(), 1);
    let s = &stored[0];
    assert_eq!((s.outgoing, s.state.as_str(), s.path.as_deref()), (false, "received", Some("direct")));
    assert_eq!(s.to_chat_message(), m);
    assert_eq!(s.out_state(), None);
    let c = summary(&history, "bob").await;
    assert_eq!((c.unread, c.last_at_ms, c.last_text.as_deref()), (1, m.sent_at_ms, Some("hi alice")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_of_one_id_store_it_exactly_once() {
    let (_dir, _, history) = fresh().await;
    let m = msg(7, "bob", BOB_PHONE, "alice", "racing");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (history, m) = (history.clone(), m.clone());
            tokio::spawn(async move { history.insert_incoming("alice", &m, "relayed").await.unwrap() })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        stored += usize::from(task.await.unwrap());
    }
    assert_eq!(stored, 1);
    assert_eq!(history.messages("bob", 100, None).await.unwrap().len(), 1);
    assert_eq!(summary(&history, "bob").await.unread, 1);
}

#[tokio::test]
async fn own_message_synced_from_another_device_is_mine_and_not_unread() {
    let (_dir, _, history) = fresh().await;
    let synced = msg(1, "alice", ALICE_LAPTOP, "bob", "sent from my laptop");
    assert!(history.insert_incoming("alice", &synced, "mailbox").await.unwrap());
    let c = summary(&history, "bob").await;
    assert_eq!((c.unread, c.last_text.as_deref()), (0, Some("sent from my laptop")));
    let s = history.get(synced.id).await.unwrap().unwrap();
    assert_eq!((s.conversation.as_str(), s.outgoing, s.out_state()), ("bob", true, Some(OutState::Sent)));
    assert_eq!(s.from_device, ALICE_LAPTOP);
    assert!(history.unsent().await.unwrap().is_empty(), "another device's message is never resent from here");
    assert!(history.mark_read("bob", 5_000).await.unwrap().is_empty());
}

#[tokio::test]
async fn outgoing_messages_are_idempotent_and_must_be_mine() {
    let (_dir, _, history) = fresh().await;
    let m = msg(1, "alice", ALICE_PHONE, "bob", "hello bob");
    assert!(history.insert_outgoing("alice", &m, OutState::Queued).await.unwrap());
    assert!(!history.insert_outgoing("alice", &m, OutState::Sent).await.unwrap());
    let s = history.get(m.id).await.unwrap().unwrap();
    assert_eq!((s.conversation.as_str(), s.out_state(), s.path), ("bob", Some(OutState::Queued), None));
    assert_eq!(summary(&history, "bob").await.unread, 0);

    let not_mine = msg(2, "bob", BOB_PHONE, "alice", "forged");
    assert!(matches!(
        history.insert_outgoing("alice", &not_mine, OutState::Sent).await,
        Err(HistoryError::InvalidInput(_))
    ));
    assert!(history.get(not_mine.id).await.unwrap().is_none());
}

#[tokio::test]
async fn outgoing_state_only_moves_forward() {
    let (_dir, _, history) = fresh().await;
    let m = msg(1, "alice", ALICE_PHONE, "bob", "tracked");
    history.insert_outgoing("alice", &m, OutState::Queued).await.unwrap();
    let state = async |history: &History| history.get(m.id).await.unwrap().unwrap();

    assert!(!history.set_outgoing_state(m.id, OutState::Queued, 10, None).await.unwrap());
    assert!(history.set_outgoing_state(m.id, OutState::Sent, 10, Some("direct")).await.unwrap());
    assert!(!history.set_outgoing_state(m.id, OutState::Sent, 11, None).await.unwrap());
    assert!(!history.set_outgoing_state(m.id, OutState::Queued, 11, None).await.unwrap());
    assert!(history.set_outgoing_state(m.id, OutState::Delivered, 20, None).await.unwrap());
    let s = state(&history).await;
    assert_eq!((s.out_state(), s.delivered_at_ms, s.read_at_ms), (Some(OutState::Delivered), Some(20), None));
    assert_eq!(s.path.as_deref(), Some("direct"), "path kept when not given");
    for back in [OutState::Queued, OutState::Sent, OutState::Failed, OutState::Delivered] {
        assert!(!history.set_outgoing_state(m.id, back, 25, None).await.unwrap(), "{back:?}");
    }
    assert!(history.set_outgoing_state(m.id, OutState::Read, 30, None).await.unwrap());
    for back in [OutState::Queued, OutState::Sent, OutState::Delivered, OutState::Read, OutState::Failed] {
        assert!(!history.set_outgoing_state(m.id, back, 40, None).await.unwrap(), "{back:?}");
    }
    let s = state(&history).await;
    assert_eq!((s.out_state(), s.delivered_at_ms, s.read_at_ms), (Some(OutState::Read), Some(20), Some(30)));
}

#[tokio::test]
async fn failure_comes_only_from_queued_or_sent() {
    let (_dir, _, history) = fresh().await;
    let a = msg(1, "alice", ALICE_PHONE, "bob", "a");
    let b = msg(2, "alice", ALICE_PHONE, "bob", "b");
    history.insert_outgoing("alice", &a, OutState::Queued).await.unwrap();
    history.insert_outgoing("alice", &b, OutState::Delivered).await.unwrap();

    assert!(history.set_outgoing_state(a.id, OutState::Failed, 10, None).await.unwrap());
    assert!(!history.set_outgoing_state(a.id, OutState::Sent, 11, None).await.unwrap());
    assert!(!history.set_outgoing_state(a.id, OutState::Queued, 11, None).await.unwrap());
    // A read receipt proves it arrived after all: skip `delivered`.
    assert!(history.set_outgoing_state(a.id, OutState::Read, 12, Some("mailbox")).await.unwrap());
    let s = history.get(a.id).await.unwrap().unwrap();
    assert_eq!((s.delivered_at_ms, s.read_at_ms, s.path.as_deref()), (Some(12), Some(12), Some("mailbox")));

    assert!(!history.set_outgoing_state(b.id, OutState::Failed, 13, None).await.unwrap());
    assert!(history.get(b.id).await.unwrap().unwrap().delivered_at_ms.is_some());
}

#[tokio::test]
async fn state_changes_ignore_incoming_and_unknown_messages() {
    let (_dir, _, history) = fresh().await;
    let incoming = msg(1, "bob", BOB_PHONE, "alice", "hi");
    history.insert_incoming("alice", &incoming, "direct").await.unwrap();
    for state in [OutState::Sent, OutState::Delivered, OutState::Read, OutState::Failed] {
        assert!(!history.set_outgoing_state(incoming.id, state, 1, None).await.unwrap());
        assert!(!history.set_outgoing_state(id(99), state, 1, None).await.unwrap());
    }
    assert_eq!(history.get(incoming.id).await.unwrap().unwrap().state, "received");
}

#[tokio::test]
async fn unknown_delivery_paths_are_refused() {
    let (_dir, _, history) = fresh().await;
    let m = msg(1, "bob", BOB_PHONE, "alice", "hi");
    assert!(matches!(history.insert_incoming("alice", &m, "carrier pigeon").await, Err(HistoryError::InvalidInput(_))));
    assert!(history.get(m.id).await.unwrap().is_none());
    assert!(history.conversations().await.unwrap().is_empty());
    let out = msg(2, "alice", ALICE_PHONE, "bob", "x");
    history.insert_outgoing("alice", &out, OutState::Queued).await.unwrap();
    assert!(matches!(
        history.set_outgoing_state(out.id, OutState::Sent, 1, Some("teleport")).await,
        Err(HistoryError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn mark_read_returns_unread_incoming_and_zeroes_the_count() {
    let (_dir, _, history) = fresh().await;
    history.insert_incoming("alice", &msg(1, "bob", BOB_PHONE, "alice", "one"), "direct").await.unwrap();
    history.insert_outgoing("alice", &msg(2, "alice", ALICE_PHONE, "bob", "reply"), OutState::Sent).await.unwrap();
    history.insert_incoming("alice", &msg(3, "bob", BOB_PHONE, "alice", "two"), "mailbox").await.unwrap();
    history.insert_incoming("alice", &msg(4, "carol", DeviceId([0xc1; 16]), "alice", "other"), "direct").await.unwrap();
    history.insert_incoming("alice", &msg(5, "bob", BOB_PHONE, "alice", "three"), "relayed").await.unwrap();
    // A reaction is neither unread nor marked read (it gets no receipt).
    let reaction = ChatMessage {
        body: MessageBody::Reaction(skein_proto::file::Reaction { target: id(2), emoji: "👍".into(), remove: false }),
        ..msg(7, "bob", BOB_PHONE, "alice", "")
    };
    history.insert_incoming("alice", &reaction, "direct").await.unwrap();
    assert_eq!(summary(&history, "bob").await.unread, 3);

    let marked = history.mark_read("bob", 9_000).await.unwrap();
    assert_eq!(marked, vec![(id(1), "bob".to_string()), (id(3), "bob".to_string()), (id(5), "bob".to_string())]);
    assert_eq!(summary(&history, "bob").await.unread, 0);
    assert_eq!(summary(&history, "carol").await.unread, 1, "other conversations untouched");
    for n in [1, 3, 5] {
        let s = history.get(id(n)).await.unwrap().unwrap();
        assert_eq!((s.state.as_str(), s.read_at_ms), ("read", Some(9_000)));
    }
    assert_eq!(history.get(id(2)).await.unwrap().unwrap().state, "sent", "own messages untouched");
    assert_eq!(history.get(id(7)).await.unwrap().unwrap().state, "received", "reactions untouched");
    assert!(history.mark_read("bob", 9_500).await.unwrap().is_empty());
    assert_eq!(history.get(id(1)).await.unwrap().unwrap().read_at_ms, Some(9_000));
    assert!(history.mark_read("nobody", 9_500).await.unwrap().is_empty());

    history.insert_incoming("alice", &msg(6, "bob", BOB_PHONE, "alice", "four"), "direct").await.unwrap();
    assert_eq!(summary(&history, "bob").await.unread, 1);
    assert_eq!(history.mark_read("bob", 10_000).await.unwrap(), vec![(id(6), "bob".to_string())]);
}

#[tokio::test]
async fn messages_page_back_in_chronological_order() {
    let (_dir, _, history) = fresh().await;
    for n in 1..=25u8 {
        let m = if n % 2 == 0 {
            msg(n, "alice", ALICE_PHONE, "bob", &format!("m{n}"))
        } else {
            msg(n, "bob", BOB_PHONE, "alice", &format!("m{n}"))
        };
        if m.from_user == "alice" {
            history.insert_outgoing("alice", &m, OutState::Sent).await.unwrap();
        } else {
            history.insert_incoming("alice", &m, "direct").await.unwrap();
        }
        let noise = msg(100 + n, "carol", DeviceId([0xc1; 16]), "alice", "noise");
        history.insert_incoming("alice", &noise, "direct").await.unwrap();
    }
    let texts = |page: &[super::StoredMessage]| -> Vec<String> {
        page.iter()
            .map(|s| match &s.body {
                MessageBody::Text(t) => t.clone(),
                other => panic!("not a text: {other:?}"),
            })
            .collect()
    };
    let expect = |range: std::ops::RangeInclusive<u8>| -> Vec<String> { range.map(|n| format!("m{n}")).collect() };

    let newest = history.messages("bob", 10, None).await.unwrap();
    assert_eq!(texts(&newest), expect(16..=25));
    assert!(newest.windows(2).all(|w| w[0].seq < w[1].seq));
    let older = history.messages("bob", 10, Some(newest[0].seq)).await.unwrap();
    assert_eq!(texts(&older), expect(6..=15));
    let oldest = history.messages("bob", 10, Some(older[0].seq)).await.unwrap();
    assert_eq!(texts(&oldest), expect(1..=5));
    assert!(history.messages("bob", 10, Some(oldest[0].seq)).await.unwrap().is_empty());
    assert!(history.messages("bob", 0, None).await.unwrap().is_empty());
    assert_eq!(texts(&history.messages("bob", 100, None).await.unwrap()), expect(1..=25));
    assert!(history.messages("nobody", 10, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn conversations_are_listed_newest_first() {
    let (_dir, _, history) = fresh().await;
    let mut from_bob = msg(1, "bob", BOB_PHONE, "alice", "old");
    from_bob.sent_at_ms = 1_000;
    let mut to_carol = msg(2, "alice", ALICE_PHONE, "carol", "newer");
    to_carol.sent_at_ms = 2_000;
    let mut from_dave = msg(3, "dave", DeviceId([0xd1; 16]), "alice", "newest");
    from_dave.sent_at_ms = 3_000;
    history.insert_incoming("alice", &from_dave, "direct").await.unwrap();
    history.insert_incoming("alice", &from_bob, "direct").await.unwrap();
    history.insert_outgoing("alice", &to_carol, OutState::Queued).await.unwrap();

    let list = history.conversations().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["dave", "carol", "bob"]);
    assert_eq!(
        list[1],
        ConversationSummary { id: "carol".into(), last_at_ms: 2_000, unread: 0, last_text: Some("newer".into()) }
    );

    // A late-arriving older message does not move the conversation back.
    let mut late = msg(4, "dave", DeviceId([0xd1; 16]), "alice", "late");
    late.sent_at_ms = 500;
    history.insert_incoming("alice", &late, "mailbox").await.unwrap();
    let dave = summary(&history, "dave").await;
    assert_eq!((dave.last_at_ms, dave.unread, dave.last_text.as_deref()), (3_000, 2, Some("late")));
}

#[tokio::test]
async fn clocks_from_the_future_are_clamped() {
    let (_dir, _, history) = fresh().await;
    let mut m = msg(1, "bob", BOB_PHONE, "alice", "from 2500");
    m.sent_at_ms = u64::MAX;
    history.insert_incoming("alice", &m, "direct").await.unwrap();
    let s = history.get(m.id).await.unwrap().unwrap();
    assert_eq!(s.sent_at_ms, i64::MAX as u64);
    assert!(s.stored_at_ms <= crate::now_ms());
    assert!(summary(&history, "bob").await.last_at_ms <= crate::now_ms(), "activity never in our future");
}

#[tokio::test]
async fn unsent_lists_only_queued_messages_oldest_first() {
    let (_dir, _, history) = fresh().await;
    let queued_1 = msg(1, "alice", ALICE_PHONE, "bob", "q1");
    let sent = msg(2, "alice", ALICE_PHONE, "bob", "s");
    let queued_2 = msg(3, "alice", ALICE_PHONE, "carol", "q2");
    let failed = msg(4, "alice", ALICE_PHONE, "bob", "f");
    let incoming = msg(5, "bob", BOB_PHONE, "alice", "in");
    history.insert_outgoing("alice", &queued_1, OutState::Queued).await.unwrap();
    history.insert_outgoing("alice", &sent, OutState::Sent).await.unwrap();
    history.insert_outgoing("alice", &queued_2, OutState::Queued).await.unwrap();
    history.insert_outgoing("alice", &failed, OutState::Queued).await.unwrap();
    history.set_outgoing_state(failed.id, OutState::Failed, 1, None).await.unwrap();
    history.insert_incoming("alice", &incoming, "direct").await.unwrap();

    let unsent = history.unsent().await.unwrap();
    let resend: Vec<ChatMessage> = unsent.iter().map(|s| s.to_chat_message()).collect();
    assert_eq!(resend, vec![queued_1.clone(), queued_2]);

    history.set_outgoing_state(queued_1.id, OutState::Sent, 2, Some("direct")).await.unwrap();
    assert_eq!(history.unsent().await.unwrap().len(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn history_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, history) = fresh().await;
    history.insert_incoming("alice", &msg(1, "bob", BOB_PHONE, "alice", "secret"), "direct").await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    let wal = path.with_extension("db-wal");
    assert!(wal.exists(), "WAL mode");
    assert_eq!(mode(&wal), 0o600);
    history.close().await;

    // An existing file with a loose mode is tightened.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let reopened = History::open(&path).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    reopened.close().await;
}

#[tokio::test]
async fn reopening_keeps_the_history() {
    let (_dir, path, history) = fresh().await;
    let m = msg(1, "bob", BOB_PHONE, "alice", "persisted");
    history.insert_incoming("alice", &m, "direct").await.unwrap();
    history.insert_outgoing("alice", &msg(2, "alice", ALICE_PHONE, "bob", "queued"), OutState::Queued).await.unwrap();
    history.close().await;
    assert!(history.get(m.id).await.is_err(), "a closed history refuses work");

    let reopened = History::open(&path).await.unwrap();
    assert_eq!(reopened.path(), path);
    assert_eq!(reopened.get(m.id).await.unwrap().unwrap().to_chat_message(), m);
    assert!(!reopened.insert_incoming("alice", &m, "direct").await.unwrap(), "dedupe survives a restart");
    assert_eq!(reopened.unsent().await.unwrap().len(), 1);
    assert_eq!(summary(&reopened, "bob").await.unread, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_a_new_file_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    // Spawning also checks that opening is `Send`.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { History::open(&path).await })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap().close().await;
    }
}

#[tokio::test]
async fn a_directory_is_not_a_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    std::fs::create_dir(&path).unwrap();
    let err = History::open(&path).await.unwrap_err();
    assert!(matches!(err, HistoryError::Create { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_corrupt_file_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    std::fs::write(&path, b"this is not an SQLite database, just junk bytes ".repeat(200)).unwrap();
    let err = History::open(&path).await.unwrap_err();
    assert!(matches!(err, HistoryError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    use sqlx::Connection;
    let (_dir, path, history) = fresh().await;
    history.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let err = History::open(&path).await.unwrap_err();
    assert!(matches!(err, HistoryError::TooNew { db_version: 99, code_version: super::CODE_VERSION, .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stores_are_each_stored_once() {
    let (_dir, _, history) = fresh().await;
    // 60 messages from bob, each arriving twice at once (a retry racing the
    // original), plus 20 of alice's own: they share statements.
    let mut calls = Vec::new();
    for n in 1..=60u8 {
        for _ in 0..2 {
            let history = history.clone();
            calls.push(tokio::spawn(async move {
                history.insert_incoming("alice", &msg(n, "bob", BOB_PHONE, "alice", "hi"), "direct").await.unwrap()
            }));
        }
    }
    for n in 100..120u8 {
        let history = history.clone();
        calls.push(tokio::spawn(async move {
            history
                .insert_outgoing("alice", &msg(n, "alice", ALICE_PHONE, "bob", "yo"), OutState::Queued)
                .await
                .unwrap()
        }));
    }
    let mut new = 0;
    for call in calls {
        new += usize::from(call.await.unwrap());
    }
    assert_eq!(new, 80, "each message is new exactly once");
    assert_eq!(summary(&history, "bob").await.unread, 60);
    assert_eq!(history.messages("bob", 500, None).await.unwrap().len(), 80);
}

#[tokio::test]
async fn a_groups_messages_are_in_clock_order_whatever_order_they_arrived_in() {
    use skein_proto::bytes::GroupId;
    let group = GroupId([0x67; 16]);
    let address = skein_proto::peer::group_address(&group);
    let group_msg = |n: u8, from: &str, hlc: u64| ChatMessage {
        to_user: address.clone(),
        conversation: Conversation::Group { group, version: 1, hlc, seq: u64::from(n) },
        ..msg(n, from, BOB_PHONE, "", &format!("m{n}"))
    };
    // Three members' messages: bob's two, carol's one at the same reading as bob's first.
    let (b1, c1, b2) = (group_msg(1, "bob", 100), group_msg(2, "carol", 100), group_msg(3, "bob", 200));
    let texts = |h: Vec<super::StoredMessage>| -> Vec<String> {
        h.iter().map(|m| if let MessageBody::Text(t) = &m.body { t.clone() } else { String::new() }).collect()
    };
    // Alice gets them in one order, dave in another: both show the same.
    let (_d1, _p1, alice) = fresh().await;
    for m in [&b2, &c1, &b1] {
        assert!(alice.insert_incoming("alice", m, "direct").await.unwrap());
    }
    let (_d2, _p2, dave) = fresh().await;
    for m in [&c1, &b1, &b2] {
        assert!(dave.insert_incoming("dave", m, "mailbox").await.unwrap());
    }
    let expected = ["m1", "m2", "m3"].map(String::from).to_vec();
    assert_eq!(texts(alice.messages(&address, 10, None).await.unwrap()), expected);
    assert_eq!(texts(dave.messages(&address, 10, None).await.unwrap()), expected);
    // A resend carries its reading again.
    let again = alice.get(id(3)).await.unwrap().unwrap().to_chat_message();
    assert_eq!(again.conversation, Conversation::Group { group, version: 0, hlc: 200, seq: 3 });
    // What the device numbered after 1 and before 4, in order.
    let between = alice.group_messages_between(&address, BOB_PHONE, 1, 4, 10).await.unwrap();
    assert_eq!(between.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id(2), id(3)]);
    assert_eq!(alice.max_group_seq(&address, BOB_PHONE).await.unwrap(), 3);
}

/// The writer never checkpoints as it commits; the background task copies
/// the log into the file instead, so the file grows with what was written.
#[tokio::test]
async fn the_log_is_checkpointed_beside_the_writer() {
    let (_dir, path, history) = fresh().await;
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    let text = "x".repeat(4_000);
    for n in 0..200u8 {
        let mut m = msg(n, "bob", BOB_PHONE, "alice", &text);
        m.id = MailId([n, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
        assert!(history.insert_incoming("alice", &m, "direct").await.unwrap());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() < before + 500_000 {
        assert!(std::time::Instant::now() < deadline, "the file stayed at {} bytes: no checkpoint", size());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn muting_applies_at_once_here_and_within_a_second_from_another_process() {
    let (_dir, path, here) = fresh().await;
    let elsewhere = History::open(&path).await.unwrap();
    assert!(!here.is_muted("bob").await.unwrap());
    here.set_muted("bob", true).await.unwrap();
    assert!(here.is_muted("bob").await.unwrap(), "a change made here applies at once");
    // `skein mute` in another process writes the same file.
    assert!(elsewhere.is_muted("bob").await.unwrap());
    elsewhere.set_muted("carol", true).await.unwrap();
    elsewhere.set_muted("bob", false).await.unwrap();
    tokio::time::sleep(super::muted::FRESH_FOR + std::time::Duration::from_millis(50)).await;
    assert!(here.is_muted("carol").await.unwrap(), "read again once the last read is stale");
    assert!(!here.is_muted("bob").await.unwrap());
}
