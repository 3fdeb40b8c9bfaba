//! A call's history line ([`CallRecord`]), sent as a message once the
//! call is over, so every device of everyone in it shows the line (the
//! mailbox carries it to those offline).
//!
//! - One-to-one: the caller's device sends it to the callee. A callee
//!   device that rang out without hearing from the caller records the
//!   missed call itself, under the same message id, so it is never shown
//!   twice.
//! - Group: the host's device sends one line to the group's conversation.

use super::call::GroupCall;
use crate::delivery::Sender;
use crate::events::Events;
use crate::group_book::GroupBook;
use crate::inbox::Inbox;
use skein_proto::bytes::DeviceId;
use skein_proto::call::{CallOutcome, CallRecord, Media};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody};

fn message(sender: &Sender, to_user: String, conversation: Conversation, record: CallRecord) -> ChatMessage {
    ChatMessage {
        id: CallRecord::message_id(&record.call),
        from_user: sender.me.clone(),
        from_device: sender.device,
        to_user,
        conversation,
        sent_at_ms: crate::now_ms(),
        body: MessageBody::Call(record),
    }
}

/// The caller's device sends a one-to-one call's line to the callee (and
/// its own other devices), storing it here first.
pub(super) fn send_direct(sender: Sender, events: Events, to: String, record: CallRecord) {
    let msg = message(&sender, to, Conversation::Direct, record);
    tokio::spawn(async move {
        match sender.store_and_send(&msg).await {
            Ok(o) => events.emit(crate::daemon::sent_event(&msg, o.as_str())),
            Err(e) => tracing::warn!(error = %e, "the call's history line could not be sent"),
        }
    });
}

/// The host's device sends a group call's line to the group's members.
pub(super) fn send_group(sender: Sender, groups: GroupBook, events: Events, group: GroupCall, record: CallRecord) {
    tokio::spawn(async move {
        let Some(cert) = groups.current(group.id, 0).await else {
            tracing::warn!(group = %group.name, "the group call's line has no group to go to");
            return;
        };
        let conversation = crate::daemon::group_stamp(&groups, &sender, &cert.body).await;
        let msg = message(&sender, skein_proto::peer::group_address(&group.id), conversation, record);
        match sender.store_and_send_to(&msg, &cert.body.members).await {
            Ok(o) => events.emit(crate::daemon::sent_event(&msg, o.as_str())),
            Err(e) => tracing::warn!(error = %e, "the group call's history line could not be sent"),
        }
    });
}

/// What a callee device needs to record a call it missed.
pub(super) struct Missed {
    pub call: skein_proto::bytes::CallId,
    pub media: Media,
    pub caller: String,
    pub caller_device: DeviceId,
    pub started_ms: u64,
    /// How the caller's signals came: `direct` or `relayed`.
    pub path: String,
}

/// A callee device that rang out records the missed call itself, as if it
/// came the way the caller's signals did.
pub(super) async fn record_missed(inbox: &Inbox, events: &Events, m: Missed) {
    let msg = ChatMessage {
        id: CallRecord::message_id(&m.call),
        from_user: m.caller.clone(),
        from_device: m.caller_device,
        to_user: inbox.me.clone(),
        conversation: Conversation::Direct,
        sent_at_ms: m.started_ms,
        body: MessageBody::Call(CallRecord { call: m.call, media: m.media, outcome: CallOutcome::Missed }),
    };
    let (_, out) = inbox.message(&m.caller, &msg, &m.path).await;
    for ev in out {
        events.emit(ev);
    }
}
