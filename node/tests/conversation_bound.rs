//! Receipts and reactions are tied to their message's conversation: a user
//! who knows a message's id but is not one of its two users can neither
//! mark it delivered or read nor react to it.

use skein_node::history::{History, OutState};
use skein_node::inbox::Inbox;
use skein_proto::ErrorCode;
use skein_proto::bytes::{DeviceId, MailId};
use skein_proto::file::Reaction;
use skein_proto::peer::{ChatMessage, Conversation, MessageBody, PeerResponse, Receipt, ReceiptKind};

/// Alice's inbox over a history in a fresh temporary directory.
async fn alice() -> (tempfile::TempDir, Inbox) {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = History::open(&dir.path().join("history.db")).await.expect("history");
    (dir, Inbox { history, me: "alice".into(), transfers: None, groups: None, gaps: None })
}

fn msg(id: u8, from: &str, to: &str, body: MessageBody) -> ChatMessage {
    ChatMessage {
        id: MailId([id; 16]),
        from_user: from.into(),
        from_device: DeviceId([id; 16]),
        to_user: to.into(),
        conversation: Conversation::Direct,
        sent_at_ms: 1_000 + u64::from(id),
        body,
    }
}

fn text(id: u8, from: &str, to: &str) -> ChatMessage {
    msg(id, from, to, MessageBody::Text(format!("message {id}")))
}

fn reaction(id: u8, from: &str, to: &str, target: u8) -> ChatMessage {
    let r = Reaction { target: MailId([target; 16]), emoji: "👍".into(), remove: false };
    msg(id, from, to, MessageBody::Reaction(r))
}

fn refused(resp: &PeerResponse) -> bool {
    matches!(resp, PeerResponse::Refused(b) if b.code == ErrorCode::NotFound)
}

#[tokio::test]
async fn a_receipt_counts_only_from_the_user_the_message_was_sent_to() {
    let (_dir, inbox) = alice().await;
    let to_bob = text(1, "alice", "bob");
    inbox.history.insert_outgoing("alice", &to_bob, OutState::Sent).await.expect("stored");
    let from_bob = text(2, "bob", "alice");
    inbox.history.insert_incoming("alice", &from_bob, "direct").await.expect("stored");

    // Carol knows the ids: of alice's message to bob, and of bob's to alice.
    for kind in [ReceiptKind::Delivered, ReceiptKind::Read] {
        let r = Receipt { ids: vec![to_bob.id, from_bob.id], kind, by_user: "carol".into(), at_ms: 5_000 };
        let (resp, ev) = inbox.receipt("carol", &r).await;
        assert!(refused(&resp), "{kind:?}: {resp:?}");
        assert!(ev.is_none());
    }
    let stored = inbox.history.get(to_bob.id).await.expect("read").expect("message");
    assert_eq!((stored.state.as_str(), stored.delivered_at_ms, stored.read_at_ms), ("sent", None, None));

    // Bob's own receipt counts, and again is harmless.
    let r = Receipt { ids: vec![to_bob.id], kind: ReceiptKind::Read, by_user: "bob".into(), at_ms: 6_000 };
    let (resp, ev) = inbox.receipt("bob", &r).await;
    assert!(matches!(resp, PeerResponse::Ok), "{resp:?}");
    assert!(ev.is_some());
    let (resp, ev) = inbox.receipt("bob", &r).await;
    assert!(matches!(resp, PeerResponse::Ok) && ev.is_none(), "{resp:?}");
    assert_eq!(inbox.history.get(to_bob.id).await.expect("read").expect("message").state, "read");
}

#[tokio::test]
async fn a_reaction_counts_only_within_its_messages_conversation() {
    let (_dir, inbox) = alice().await;
    let from_bob = text(1, "bob", "alice");
    inbox.history.insert_incoming("alice", &from_bob, "direct").await.expect("stored");
    let to_bob = text(2, "alice", "bob");
    inbox.history.insert_outgoing("alice", &to_bob, OutState::Sent).await.expect("stored");

    // Carol reacts to both messages of alice and bob's conversation, and to
    // one that does not exist.
    for (id, target) in [(10, 1), (11, 2), (12, 99)] {
        let r = reaction(id, "carol", "alice", target);
        let (resp, events) = inbox.message("carol", &r, "direct").await;
        assert!(refused(&resp), "{resp:?}");
        assert!(events.is_empty());
        assert!(inbox.history.get(r.id).await.expect("read").is_none(), "the refused reaction is not stored");
    }
    assert!(inbox.history.reactions(from_bob.id).await.expect("read").is_empty());
    assert!(inbox.history.reactions(to_bob.id).await.expect("read").is_empty());

    // Bob reacts to alice's message, and alice (from her other device) to bob's.
    let (resp, events) = inbox.message("bob", &reaction(20, "bob", "alice", 2), "direct").await;
    assert!(matches!(resp, PeerResponse::Stored { .. }), "{resp:?}");
    assert_eq!(events.len(), 1);
    let (resp, _) = inbox.message("alice", &reaction(21, "alice", "bob", 1), "direct").await;
    assert!(matches!(resp, PeerResponse::Stored { .. }), "{resp:?}");
    assert_eq!(inbox.history.reactions(to_bob.id).await.expect("read"), vec![("👍".to_owned(), "bob".to_owned())]);
    assert_eq!(inbox.history.reactions(from_bob.id).await.expect("read"), vec![("👍".to_owned(), "alice".to_owned())]);

    // A reaction cannot target a reaction.
    let (resp, _) = inbox.message("bob", &reaction(22, "bob", "alice", 20), "direct").await;
    assert!(refused(&resp), "{resp:?}");
}

#[tokio::test]
async fn a_group_receipt_counts_only_from_a_member_the_message_was_sent_to() {
    use skein_node::history::MemberState;
    let (_dir, inbox) = alice().await;
    let to_group = text(3, "alice", "#67676767676767676767676767676767");
    inbox.history.insert_outgoing("alice", &to_group, OutState::Sent).await.expect("stored");
    inbox.history.members_queued(to_group.id, &["bob".to_owned()]).await.expect("members");
    // Carol was not sent it: her receipt is refused and leaves no trace.
    let r = Receipt { ids: vec![to_group.id], kind: ReceiptKind::Read, by_user: "carol".into(), at_ms: 5_000 };
    let (resp, _) = inbox.receipt("carol", &r).await;
    assert!(refused(&resp), "{resp:?}");
    assert_eq!(
        inbox.history.member_states(to_group.id).await.expect("states"),
        [("bob".to_owned(), "queued".to_owned())]
    );
    // Bob's counts.
    let r = Receipt { ids: vec![to_group.id], kind: ReceiptKind::Read, by_user: "bob".into(), at_ms: 6_000 };
    assert!(matches!(inbox.receipt("bob", &r).await.0, PeerResponse::Ok));
    assert_eq!(
        inbox.history.member_states(to_group.id).await.expect("states"),
        [("bob".to_owned(), "read".to_owned())]
    );
    // States only move forward.
    assert!(!inbox.history.move_member(to_group.id, "bob", MemberState::Delivered, 7_000).await.expect("move"));
}
