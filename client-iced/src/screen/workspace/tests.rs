//! The main window's update logic, without a window or a node: the node's
//! events go in as they would come, and the state is checked.

use super::{Message, Workspace};
use serde_json::json;

fn incoming(id: &str, from: &str, text: &str, extra: serde_json::Value) -> Message {
    let mut v = json!({"type": "message", "id": id, "from": from, "to": "alice", "conversation": from,
        "sent_at_ms": 1_796_000_000_000u64, "path": "direct", "text": text});
    if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(x.clone());
    }
    Message::Node(v)
}

#[test]
fn an_incoming_message_raises_the_unread_count_unless_its_conversation_is_open_and_seen() {
    let mut w = Workspace::new("alice", None);
    let _ = w.update(incoming("01", "bob", "hi", json!({})));
    let _ = w.update(incoming("02", "bob", "there?", json!({})));
    assert_eq!(w.conversations.total_unread(), 2);
    assert_eq!(w.conversations.rows()[0].last_text, "there?");
    // Opened with the window focused: read, and new ones come in read.
    let _ = w.update(Message::Open("bob".into()));
    assert_eq!(w.conversations.total_unread(), 0);
    let _ = w.update(incoming("03", "bob", "ok", json!({})));
    assert_eq!(w.conversations.total_unread(), 0);
    assert_eq!(w.chat.as_ref().map(|c| c.messages.len()), Some(1), "the open conversation shows it");
    // Another conversation's message counts.
    let _ = w.update(incoming("04", "carol", "hey", json!({})));
    assert_eq!((w.conversations.total_unread(), w.conversations.rows()[0].id.as_str()), (1, "carol"));
    assert!(w.notices.is_empty(), "no notification while the window has focus");
}

#[test]
fn an_unfocused_window_notifies_except_for_a_muted_conversation_unless_mentioned() {
    let mut w = Workspace::new("alice", None);
    let _ = w.set_focus(false);
    let _ = w.update(incoming("01", "bob", "lunch?", json!({})));
    let _ = w.update(incoming("02", "dave", "muted chatter", json!({"muted": true})));
    let _ = w.update(incoming("03", "dave", "@alice look", json!({"muted": true, "mentions_me": true})));
    let _ = w.update(incoming("04", "alice", "from my phone", json!({})));
    let bodies: Vec<&str> = w.notices.iter().map(|n| n.body.as_str()).collect();
    assert_eq!(bodies, ["lunch?", "@alice look"]);
    assert_eq!(w.notices[0].conversation, "bob");
}

#[test]
fn file_progress_events_move_the_bar() {
    let mut w = Workspace::new("alice", None);
    let _ = w.update(Message::Node(json!({"type": "message", "id": "f1", "from": "bob", "conversation": "bob",
        "sent_at_ms": 5, "path": "direct", "text": null, "file": {"name": "big.bin", "size": 1000, "root": "00"}})));
    let _ = w.update(Message::Node(json!({"type": "transfer", "id": "f1", "direction": "in", "state": "receiving",
        "bytes_done": 250, "size": 1000, "rate_bps": 100, "eta_s": 8})));
    let t = w.transfers.get("f1").expect("a transfer");
    assert_eq!((t.fraction(), t.eta_s), (0.25, Some(8)));
    let _ = w.update(Message::Node(json!({"type": "transfer", "id": "f1", "state": "receiving", "bytes_done": 900,
        "size": 1000})));
    assert_eq!(w.transfers.get("f1").map(|t| t.fraction()), Some(0.9));
    let _ = w.update(Message::Node(json!({"type": "transfer", "id": "f1", "state": "completed",
        "saved_path": "/home/alice/Downloads/big.bin"})));
    let t = w.transfers.get("f1").expect("a transfer");
    assert_eq!((t.fraction(), t.active()), (1.0, false));
}

#[test]
fn receipts_and_reactions_reach_the_open_conversation_and_the_connection_shows() {
    let mut w = Workspace::new("alice", None);
    let _ = w.update(Message::Node(json!({"type": "connected", "tracker": "t:7400", "status": "busy"})));
    assert_eq!((w.connection.clone(), w.status.as_str()), (super::Connection::Connected("t:7400".into()), "busy"));
    let _ = w.update(Message::Open("bob".into()));
    let _ = w.update(incoming("01", "bob", "hi", json!({})));
    let _ =
        w.update(Message::Node(json!({"type": "reaction", "id": "01", "by": "bob", "emoji": "👍", "removed": false})));
    let m = &w.chat.as_ref().expect("open").messages[0];
    assert_eq!(m.reactions, vec![("👍".to_owned(), vec!["bob".to_owned()])]);
    let _ = w.update(Message::Node(json!({"type": "disconnected", "reason": "gone", "retry_in_ms": 1000})));
    assert_eq!(w.connection, super::Connection::Reconnecting("gone".into()));
}

#[test]
fn the_composer_completes_shortcodes_and_sending_empties_it() {
    use iced::widget::text_editor::{Action, Edit};
    use std::sync::Arc;
    let mut w = Workspace::new("alice", None);
    let _ = w.update(Message::Open("bob".into()));
    let _ = w.update(Message::Edit(Action::Edit(Edit::Paste(Arc::new("see you :tad".into())))));
    assert_eq!(w.shortcode().as_deref(), Some("tad"));
    let _ = w.update(Message::Complete("🎉".into()));
    assert_eq!(w.composer.text().trim_end(), "see you 🎉");
    assert_eq!(w.shortcode(), None);
    let _ = w.update(Message::Send);
    assert_eq!(w.composer.text().trim_end(), "");
    assert_eq!(w.conversations.rows()[0].last_text, "see you 🎉", "the conversation shows what was sent");
    // Whitespace alone is not sent.
    let _ = w.update(Message::Edit(Action::Edit(Edit::Paste(Arc::new("   \n".into())))));
    let _ = w.update(Message::Send);
    assert_eq!(w.composer.text().trim_end_matches('\n'), "   \n".trim_end_matches('\n'));
}

#[test]
fn enter_sends_and_shift_enter_makes_a_new_line_in_the_composer() -> Result<(), iced_test::Error> {
    use iced::keyboard::{self, key};
    use iced_test::selector::id;
    let mut w = Workspace::new("alice", None);
    let _ = w.update(Message::Open("bob".into()));
    let mut ui = iced_test::simulator(w.view());
    ui.click(id(super::COMPOSER))?;
    let _ = ui.typewrite("first");
    let _ = ui.simulate([iced::Event::Keyboard(keyboard::Event::KeyPressed {
        key: key::Named::Enter.into(),
        modified_key: key::Named::Enter.into(),
        physical_key: key::Physical::Code(key::Code::Enter),
        location: keyboard::Location::Standard,
        modifiers: keyboard::Modifiers::SHIFT,
        text: None,
        repeat: false,
    })]);
    let _ = ui.typewrite("second");
    let messages: Vec<Message> = ui.into_messages().collect();
    for m in messages {
        let _ = w.update(m);
    }
    assert_eq!(w.composer.text().trim_end_matches('\n'), "first\nsecond");

    let mut ui = iced_test::simulator(w.view());
    ui.click(id(super::COMPOSER))?;
    let _ = ui.tap_key(key::Named::Enter);
    let messages: Vec<Message> = ui.into_messages().collect();
    assert!(messages.iter().any(|m| matches!(m, Message::Send)), "Enter sends");
    for m in messages {
        let _ = w.update(m);
    }
    assert_eq!(w.composer.text().trim_end_matches('\n'), "");
    Ok(())
}

#[test]
fn a_new_group_needs_a_name_and_opens_once_made() {
    let mut w = Workspace::new("alice", None);
    let _ = w.update(Message::NewGroup(true));
    let _ = w.update(Message::GroupMember("bob".into(), true));
    let _ = w.update(Message::GroupMember("carol".into(), true));
    let _ = w.update(Message::GroupMember("carol".into(), false));
    let _ = w.update(Message::CreateGroup);
    let g = w.new_group.as_ref().expect("the form stays");
    assert_eq!((g.error.as_deref(), g.members.len()), (Some("Give the group a name."), 1));
    let _ = w.update(Message::GroupCreated(Err("bob is not a user here".into())));
    assert_eq!(w.new_group.as_ref().and_then(|g| g.error.as_deref()), Some("bob is not a user here"));
    let _ = w.update(Message::GroupCreated(Ok(("#00ff".into(), "Launch".into()))));
    assert!(w.new_group.is_none());
    assert_eq!(w.chat.as_ref().map(|c| (c.id.as_str(), c.title.as_str())), Some(("#00ff", "Launch")));
    assert_eq!(w.conversations.rows()[0].title, "Launch");
}

#[test]
fn search_results_of_an_older_query_are_dropped() {
    let mut w = Workspace::new("alice", None);
    let _ = w.update(Message::Query("gree".into()));
    let _ = w.update(Message::Query("green".into()));
    let hit = skein_node::history::SearchHit {
        id: skein_proto::bytes::MailId([1; 16]),
        conversation: "bob".into(),
        from_user: "bob".into(),
        sent_at_ms: 1,
        text: "green".into(),
        snippet: "green".into(),
    };
    let _ = w.update(Message::Results("gree".into(), Ok(vec![hit.clone(), hit.clone()])));
    assert!(w.results.is_empty(), "a result for what is no longer asked is not shown");
    let _ = w.update(Message::Results("green".into(), Ok(vec![hit])));
    assert_eq!(w.results.len(), 1);
    let _ = w.update(Message::JumpFirst);
    assert_eq!(w.chat.as_ref().map(|c| c.id.as_str()), Some("bob"));
    assert_eq!(w.marked.as_deref(), Some("01010101010101010101010101010101"));
    let _ = w.update(Message::Query(String::new()));
    assert!(w.results.is_empty());
}

#[test]
fn a_send_from_the_cli_on_the_same_node_and_idleness_show_in_the_window() {
    let mut w = Workspace::new("alice", None);
    let _ = w.update(Message::Node(json!({"type": "connected", "tracker": "t", "status": "away"})));
    assert!(w.auto_away, "an away status kept from last time ends with the first input");
    let _ = w.idle(false);
    assert_eq!(w.status, "online");
    let _ = w.idle(true);
    assert_eq!((w.status.as_str(), w.auto_away), ("away", true));
    let _ = w.update(Message::Status("busy".into()));
    let _ = w.idle(false);
    assert_eq!(w.status, "busy", "a status the user chose is kept");
    let _ = w.update(Message::Node(json!({"type": "connected", "tracker": "t", "status": "away"})));
    assert!(!w.auto_away, "only the first connection counts");
    // The CLI's send is parsed as a sent event for its conversation.
    let ev = crate::model::event::parse(
        &json!({"type": "sent", "id": "aa", "to": "bob", "conversation": "bob", "path": "direct"}),
    );
    assert_eq!(ev, Some(crate::model::event::NodeEvent::Sent { conversation: "bob".into() }));
}

#[test]
fn a_groups_panel_knows_its_owner_and_the_newest_version_wins() {
    use skein_proto::bytes::{GroupId, Signature};
    use skein_proto::group::{GroupKind, MEMBERSHIP_CERT_VERSION, MembershipBody, MembershipCert};
    let cert = |version: u64, name: &str, owner: &str| MembershipCert {
        body: MembershipBody {
            format: MEMBERSHIP_CERT_VERSION,
            org: "Acme".into(),
            group: GroupId([7; 16]),
            version,
            name: name.into(),
            kind: GroupKind::Discussion { owner: owner.into() },
            members: vec!["alice".into(), "bob".into()],
            closed: false,
            issued_at_ms: 1,
        },
        signature: Signature([0; 64]),
    };
    let mut w = Workspace::new("alice", None);
    let _ = w.update(Message::GroupCerts(vec![cert(2, "Launch", "alice")]));
    let address = skein_proto::peer::group_address(&GroupId([7; 16]));
    assert_eq!(w.title_of(&address), "Launch");
    assert!(w.owns(&w.group_certs[&address]));
    let _ = w.update(Message::GroupChanged(Ok(cert(1, "Old name", "alice"))));
    assert_eq!(w.title_of(&address), "Launch", "an older version does not win");
    let _ = w.update(Message::GroupChanged(Ok(cert(3, "Launch v2", "alice"))));
    assert_eq!(w.title_of(&address), "Launch v2");
    let bob = Workspace::new("bob", None);
    assert!(!bob.owns(&cert(3, "Launch v2", "alice")), "a member who did not make it cannot change it");
    let _ = w.update(Message::GroupChanged(Err("only the owner may do that".into())));
    assert_eq!(w.error.as_deref(), Some("only the owner may do that"));
}
