//! Receiving: messages, receipts and file statuses from peers and from the
//! mailbox.
//!
//! A message is checked against who sent it and against the limits of its
//! kind (text length, a file offer's name and size, an image's thumbnail,
//! a reaction's emoji), then stored in the local history before it is
//! acknowledged; the history ignores ids it already has, so a retried or
//! duplicated delivery shows once. A new file offer is handed to the
//! transfer engine; a reaction is applied to its message. Receipts and
//! reactions are tied to their message's conversation: a receipt counts only
//! from the user the message was sent to, a reaction only for a message of
//! the conversation it comes in, so knowing a message's id is not enough to
//! mark it read or react to it. Mailbox items
//! are opened with this device's X25519 key and acked only after they are
//! stored.

use crate::delivery::seal_aad;
use crate::group_book::GroupBook;
use crate::history::{History, OutState, conversation_of};
use crate::mesh::Verified;
use crate::seal;
use crate::tracker_client::TrackerClient;
use crate::transfer::Transfers;
use crate::transfer::image::{check_thumbnail, known_format};
use crate::transfer::manifest::MAX_FILE_SIZE;
use serde_json::{Value, json};
use skein_proto::bytes::DeviceId;
use skein_proto::bytes::GroupId;
use skein_proto::control::{Request, Response};
use skein_proto::file::{FileOffer, FileStatus, MAX_FILE_NAME, Reaction};
use skein_proto::peer::{
    Backfill, ChatMessage, Conversation, MAX_BACKFILL, MessageBody, PeerRequest, PeerResponse, Receipt, ReceiptKind,
    SealedPayload, group_address,
};
use skein_proto::{ErrorBody, ErrorCode};

/// A message as a daemon event line.
pub fn message_event(me: &str, msg: &ChatMessage, path: &str) -> Value {
    let mut v = json!({
        "type": "message",
        "id": msg.id.to_hex(),
        "from": msg.from_user,
        "to": msg.to_user,
        "conversation": conversation_of(me, msg),
        "sent_at_ms": msg.sent_at_ms,
        "path": path,
    });
    crate::json::add_body(&mut v, &msg.body);
    v
}

/// Where received messages go.
#[derive(Debug, Clone)]
pub struct Inbox {
    /// The local history.
    pub history: History,
    /// The local user.
    pub me: String,
    /// The transfer engine, told about new file offers (none in tests of
    /// messaging alone).
    pub transfers: Option<Transfers>,
    /// The groups this node knows; group messages are refused without it.
    pub groups: Option<GroupBook>,
    /// Where gaps noticed in a device's messages to a group go, to be
    /// asked for (none: gaps are not filled).
    pub gaps: Option<tokio::sync::mpsc::Sender<Gap>>,
}

/// Messages a device sent to a group that never came: ask that device.
#[derive(Debug, Clone)]
pub struct Gap {
    /// The device's user.
    pub user: String,
    /// What to ask for.
    pub backfill: Backfill,
}

fn refused(code: ErrorCode, why: impl Into<String>) -> PeerResponse {
    PeerResponse::Refused(ErrorBody::new(code, why))
}

fn check_offer(f: &FileOffer) -> Result<(), String> {
    if f.name.trim().is_empty() || f.name.len() > MAX_FILE_NAME {
        return Err(format!("a file name must be 1 to {MAX_FILE_NAME} bytes"));
    }
    if f.size > MAX_FILE_SIZE {
        return Err(format!("a file may be at most {} GiB", MAX_FILE_SIZE >> 30));
    }
    Ok(())
}

/// Checks a message body against its kind's limits.
async fn check_body(body: &MessageBody) -> Result<(), PeerResponse> {
    match body {
        MessageBody::Text(t) if t.len() > skein_proto::peer::MAX_TEXT => {
            Err(refused(ErrorCode::TooLarge, "message text is too long"))
        }
        MessageBody::Text(_) => Ok(()),
        MessageBody::File(f) => check_offer(f).map_err(|e| refused(ErrorCode::InvalidInput, e)),
        MessageBody::Image(i) => {
            check_offer(&i.file).map_err(|e| refused(ErrorCode::InvalidInput, e))?;
            if !known_format(&i.format) {
                return Err(refused(ErrorCode::InvalidInput, format!("unknown image format {:?}", i.format)));
            }
            let thumb = i.thumbnail.clone();
            match tokio::task::spawn_blocking(move || check_thumbnail(&thumb)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(refused(ErrorCode::InvalidInput, format!("the image's thumbnail: {e}"))),
                Err(e) => Err(refused(ErrorCode::Internal, e.to_string())),
            }
        }
        MessageBody::Reaction(r) if crate::emoji::is_emoji(&r.emoji) => Ok(()),
        MessageBody::Reaction(r) => Err(refused(ErrorCode::InvalidInput, format!("{:?} is not an emoji", r.emoji))),
        MessageBody::App(p) => p.check().map_err(|e| refused(ErrorCode::InvalidInput, e)),
        MessageBody::Card(c) => c.check().map_err(|e| refused(ErrorCode::InvalidInput, e)),
        MessageBody::Call(_) => Ok(()),
    }
}

impl Inbox {
    /// Checks a message against who sent it, then stores it. Returns the
    /// answer for the sender and, if the message is new, its events.
    pub async fn message(&self, sender: &str, msg: &ChatMessage, path: &str) -> (PeerResponse, Vec<Value>) {
        let me = self.me.as_str();
        if msg.from_user != sender {
            let why = format!("message claims to be from {} but the sender is {sender}", msg.from_user);
            return (refused(ErrorCode::PermissionDenied, why), Vec::new());
        }
        match &msg.conversation {
            Conversation::Direct if msg.to_user != me && msg.from_user != me => {
                return (refused(ErrorCode::InvalidInput, "that message is not for this user"), Vec::new());
            }
            Conversation::Direct => {}
            Conversation::Group { group, version, hlc, seq } => {
                if let Err(r) = self.check_group(sender, msg, group, *version).await {
                    return (r, Vec::new());
                }
                if let Some(book) = &self.groups {
                    book.observe(*hlc);
                }
                self.notice_gap(msg, *group, *seq).await;
            }
        }
        if matches!(msg.body, MessageBody::App(_)) {
            // Only the organisation's signed mailbox items carry those.
            let why = "a message from an app comes only from the tracker, signed";
            return (refused(ErrorCode::PermissionDenied, why), Vec::new());
        }
        if let Err(r) = check_body(&msg.body).await {
            return (r, Vec::new());
        }
        if let MessageBody::Reaction(r) = &msg.body
            && let Err(refusal) = self.check_reaction(msg, r).await
        {
            return (refusal, Vec::new());
        }
        match self.history.insert_incoming(me, msg, path).await {
            Ok(true) => (PeerResponse::Stored { id: msg.id }, self.stored(msg, path).await),
            Ok(false) => (PeerResponse::Stored { id: msg.id }, Vec::new()),
            Err(e) => {
                tracing::error!(error = %e, "cannot store an incoming message");
                (refused(ErrorCode::Unavailable, "the recipient could not store it; retry"), Vec::new())
            }
        }
    }

    /// Takes a group message only from a member, to a member, of an open
    /// group, under the newest membership certificate known (asking the
    /// tracker when the message names a newer version).
    async fn check_group(
        &self,
        sender: &str,
        msg: &ChatMessage,
        group: &GroupId,
        version: u64,
    ) -> Result<(), PeerResponse> {
        let me = self.me.as_str();
        if msg.to_user != group_address(group) {
            return Err(refused(ErrorCode::InvalidInput, "a group message must be addressed to its group"));
        }
        let Some(book) = &self.groups else {
            return Err(refused(ErrorCode::Unsupported, "this node takes no group messages"));
        };
        let Some(cert) = book.current(*group, version).await else {
            tracing::info!(from = %sender, %group, "refusing a message for a group this user is not in");
            return Err(refused(ErrorCode::NotFound, "this user is in no such group"));
        };
        let b = &cert.body;
        if !b.has_member(sender) {
            tracing::info!(from = %sender, %group, version = b.version, "refusing a group message from a non-member");
            return Err(refused(
                ErrorCode::PermissionDenied,
                format!("{sender} is not a member of group {} (version {})", b.name, b.version),
            ));
        }
        if !b.has_member(me) {
            return Err(refused(ErrorCode::NotFound, "this user is no longer in that group"));
        }
        if b.closed {
            return Err(refused(ErrorCode::Conflict, format!("group {} is closed", b.name)));
        }
        Ok(())
    }

    /// Asks for the messages a device numbered between the last one held
    /// here and `seq`, if any are missing (none before the first one held:
    /// a member who joined late was not sent the earlier ones).
    async fn notice_gap(&self, msg: &ChatMessage, group: GroupId, seq: u64) {
        let Some(gaps) = &self.gaps else { return };
        if seq == 0 {
            return;
        }
        let address = group_address(&group);
        let last = match self.history.max_group_seq(&address, msg.from_device).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a group message for a gap");
                return;
            }
        };
        if last > 0 && seq > last + 1 {
            tracing::info!(from = %msg.from_user, %group, missing = seq - last - 1, "asking for group messages that never came");
            let backfill = Backfill { group, device: msg.from_device, after_seq: last, before_seq: seq };
            let _ = gaps.try_send(Gap { user: msg.from_user.clone(), backfill });
        }
    }

    /// Answers a member asking for a device's messages to a group that it
    /// never got, from this history (the asker must be a member).
    async fn backfill(&self, asker: &str, b: &Backfill) -> PeerResponse {
        let Some(book) = &self.groups else {
            return refused(ErrorCode::Unsupported, "this node keeps no groups");
        };
        match book.current(b.group, 0).await {
            Some(c) if c.body.has_member(asker) => {}
            _ => return refused(ErrorCode::NotFound, "no such group of yours here"),
        }
        let address = group_address(&b.group);
        let limit = u32::try_from(MAX_BACKFILL).unwrap_or(u32::MAX);
        match self.history.group_messages_between(&address, b.device, b.after_seq, b.before_seq, limit).await {
            Ok(found) => PeerResponse::Messages(found.iter().map(|m| m.to_chat_message()).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read group messages asked for");
                refused(ErrorCode::Unavailable, "the history could not be read; retry")
            }
        }
    }

    /// Checks that a reaction's target is a message of the conversation the
    /// reaction comes in, so its sender is one of that message's two users.
    /// An unknown target is refused like a stranger's: the answer does not
    /// tell whether the message exists.
    async fn check_reaction(&self, msg: &ChatMessage, r: &Reaction) -> Result<(), PeerResponse> {
        let target = match self.history.get(r.target).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the message a reaction is for");
                return Err(refused(ErrorCode::Unavailable, "the recipient could not check it; retry"));
            }
        };
        match target {
            Some(t)
                if t.conversation == conversation_of(&self.me, msg) && !matches!(t.body, MessageBody::Reaction(_)) =>
            {
                Ok(())
            }
            _ => {
                tracing::info!(from = %msg.from_user, target = %r.target, "refusing a reaction to a message outside its conversation");
                Err(refused(ErrorCode::NotFound, "no such message in this conversation"))
            }
        }
    }

    /// What a newly stored message sets off, as events.
    async fn stored(&self, msg: &ChatMessage, path: &str) -> Vec<Value> {
        let mut events = Vec::new();
        match &msg.body {
            MessageBody::Reaction(r) => {
                match self.history.apply_reaction(r.target, &msg.from_user, &r.emoji, !r.remove, msg.sent_at_ms).await {
                    Ok(true) => events.push(json!({
                        "type": "reaction", "id": r.target.to_hex(), "by": msg.from_user, "emoji": r.emoji,
                        "removed": r.remove,
                    })),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot store a reaction"),
                }
                return events;
            }
            MessageBody::Text(_) | MessageBody::App(_) | MessageBody::Card(_) | MessageBody::Call(_) => {
                events.push(message_event(&self.me, msg, path))
            }
            MessageBody::File(f) => {
                events.push(message_event(&self.me, msg, path));
                if let Some(ev) = self.offered(msg, f, false).await {
                    events.push(ev);
                }
            }
            MessageBody::Image(i) => {
                events.push(message_event(&self.me, msg, path));
                if let Some(ev) = self.offered(msg, &i.file, true).await {
                    events.push(ev);
                }
            }
        }
        self.annotate(msg, &mut events).await;
        events
    }

    /// Adds to a message's event what a client needs to decide whether to
    /// notify: whether the conversation is muted, who the text mentions and
    /// whether that is this user (a mention notifies even when muted), and
    /// for a group message, the group's name.
    async fn annotate(&self, msg: &ChatMessage, events: &mut [Value]) {
        let conversation = conversation_of(&self.me, msg);
        let muted = self.history.is_muted(&conversation).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read whether a conversation is muted");
            false
        });
        let text = match &msg.body {
            MessageBody::Text(t) => t.as_str(),
            _ => "",
        };
        let mentions = crate::groups::mentions(text);
        let group = match (&msg.conversation, &self.groups) {
            (Conversation::Group { group, .. }, Some(book)) => book.current(*group, 0).await.map(|c| c.body.name),
            _ => None,
        };
        for ev in events.iter_mut().filter(|e| e["type"] == "message") {
            ev["muted"] = json!(muted);
            ev["mentions_me"] = json!(mentions.contains(&self.me));
            ev["mentions"] = json!(mentions);
            if let Some(name) = &group {
                ev["group"] = json!(name);
            }
        }
    }

    async fn offered(&self, msg: &ChatMessage, f: &FileOffer, image: bool) -> Option<Value> {
        self.transfers.as_ref()?.offered(msg, f, image).await
    }

    /// Applies a receipt for messages we sent, to those sent to its sender
    /// only. Returns its event.
    pub async fn receipt(&self, sender: &str, r: &Receipt) -> (PeerResponse, Option<Value>) {
        if r.by_user != sender {
            return (refused(ErrorCode::PermissionDenied, "receipt from the wrong user"), None);
        }
        let state = match r.kind {
            ReceiptKind::Delivered => OutState::Delivered,
            ReceiptKind::Read => OutState::Read,
        };
        let mut changed = Vec::new();
        let mut theirs = false;
        for id in r.ids.iter().take(1024) {
            match self.history.apply_receipt(*id, &r.by_user, state, r.at_ms).await {
                Ok(Some(c)) => {
                    theirs = true;
                    if c {
                        changed.push(id.to_hex());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a receipt");
                    return (refused(ErrorCode::Unavailable, "the recipient could not store it; retry"), None);
                }
            }
        }
        if !theirs && !r.ids.is_empty() {
            tracing::info!(by = %r.by_user, "refusing a receipt for messages not sent to its sender");
            return (refused(ErrorCode::NotFound, "no such messages were sent to you"), None);
        }
        let ev = (!changed.is_empty())
            .then(|| json!({"type": "receipt", "kind": state.as_str(), "by": r.by_user, "ids": changed}));
        (PeerResponse::Ok, ev)
    }

    /// Applies a recipient's report on a file we offered. Returns its event.
    pub async fn file_status(&self, sender: &str, st: &FileStatus) -> (PeerResponse, Option<Value>) {
        if st.by_user != sender {
            return (refused(ErrorCode::PermissionDenied, "file status from the wrong user"), None);
        }
        let ev = match &self.transfers {
            Some(t) => t.status(sender, st).await,
            None => None,
        };
        (PeerResponse::Ok, ev)
    }

    /// Handles a peer request from a verified peer.
    pub async fn handle_peer(&self, from: &Verified, path: &str, req: PeerRequest) -> (PeerResponse, Vec<Value>) {
        match req {
            PeerRequest::Deliver(msg) => self.message(&from.user, &msg, path).await,
            PeerRequest::Receipt(r) => {
                let (resp, ev) = self.receipt(&from.user, &r).await;
                (resp, ev.into_iter().collect())
            }
            PeerRequest::FileStatus(st) => {
                let (resp, ev) = self.file_status(&from.user, &st).await;
                (resp, ev.into_iter().collect())
            }
            PeerRequest::Backfill(b) => (self.backfill(&from.user, &b).await, Vec::new()),
            PeerRequest::Hello(_) => (PeerResponse::Ok, Vec::new()),
            // Calls are answered by the node's calls task, before the inbox.
            PeerRequest::Call(_) => (refused(ErrorCode::Unavailable, "this device takes no calls"), Vec::new()),
        }
    }

    /// Takes everything waiting in this device's mailbox: opens, stores, acks.
    /// Returns event lines and the newly stored messages (to send delivery receipts).
    pub async fn drain_mailbox(
        &self,
        client: &TrackerClient,
        device: DeviceId,
        secret: &x25519_dalek::StaticSecret,
    ) -> Result<(Vec<Value>, Vec<ChatMessage>), String> {
        let mut events = Vec::new();
        let mut fresh = Vec::new();
        for _round in 0..1000 {
            let items = match client.request(Request::MailboxFetch { limit: 64 }).await.map_err(|e| e.to_string())? {
                Response::Mail(items) => items,
                other => return Err(format!("unexpected answer {other:?}")),
            };
            if items.is_empty() {
                break;
            }
            let mut ack = Vec::new();
            for item in items {
                match seal::open_payload(secret, &item.sealed, &seal_aad(&item.id, &device)) {
                    Ok(SealedPayload::Message(msg)) => {
                        let (resp, evs) = self.message(&item.from_user, &msg, "mailbox").await;
                        if matches!(resp, PeerResponse::Refused(ref b) if b.code == ErrorCode::Unavailable) {
                            // Not stored: leave it in the mailbox for the next attempt.
                            continue;
                        }
                        if !evs.is_empty() && msg.from_user != self.me {
                            fresh.push(msg);
                        }
                        events.extend(evs);
                    }
                    Ok(SealedPayload::Receipt(r)) => {
                        if let (_, Some(ev)) = self.receipt(&item.from_user, &r).await {
                            events.push(ev);
                        }
                    }
                    Ok(SealedPayload::FileStatus(st)) => {
                        if let (_, Some(ev)) = self.file_status(&item.from_user, &st).await {
                            events.push(ev);
                        }
                    }
                    Ok(SealedPayload::App(m)) => match self.app_message(&item.from_user, &m).await {
                        Ok(evs) => events.extend(evs),
                        Err(e) if e.keep() => {
                            tracing::warn!(id = %item.id, error = %e, "an app message stays in the mailbox");
                            continue;
                        }
                        Err(e) => tracing::warn!(id = %item.id, error = %e, "dropping a mailbox item"),
                    },
                    Err(e) => {
                        tracing::warn!(id = %item.id, from = %item.from_user, error = %e, "dropping a mailbox item this device cannot open")
                    }
                }
                ack.push(item.id);
            }
            if ack.is_empty() {
                break;
            }
            client.request(Request::MailboxAck { ids: ack }).await.map_err(|e| e.to_string())?;
        }
        Ok((events, fresh))
    }
}
