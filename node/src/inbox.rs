//! Receiving: messages and receipts from peers and from the mailbox.
//!
//! A message is stored in the local history before it is acknowledged, and
//! the history ignores ids it already has, so a retried or duplicated
//! delivery shows once. Mailbox items are opened with this device's X25519
//! key and acked only after they are stored.

use crate::delivery::seal_aad;
use crate::history::{History, OutState, conversation_of};
use crate::mesh::Verified;
use crate::seal;
use crate::tracker_client::TrackerClient;
use serde_json::{Value, json};
use skein_proto::bytes::DeviceId;
use skein_proto::control::{Request, Response};
use skein_proto::peer::{ChatMessage, MessageBody, PeerResponse, Receipt, ReceiptKind, SealedPayload};
use skein_proto::{ErrorBody, ErrorCode};

/// A message as a daemon event line.
pub fn message_event(me: &str, msg: &ChatMessage, path: &str) -> Value {
    let MessageBody::Text(text) = &msg.body;
    json!({
        "type": "message",
        "id": msg.id.to_hex(),
        "from": msg.from_user,
        "to": msg.to_user,
        "conversation": conversation_of(me, msg),
        "text": text,
        "sent_at_ms": msg.sent_at_ms,
        "path": path,
    })
}

/// Checks a message against who sent it, then stores it.
/// Returns the answer for the sender and, if the message is new, its event.
pub async fn accept_message(
    history: &History,
    me: &str,
    sender: &str,
    msg: &ChatMessage,
    path: &str,
) -> (PeerResponse, Option<Value>) {
    if msg.from_user != sender {
        let why = format!("message claims to be from {} but the sender is {sender}", msg.from_user);
        return (PeerResponse::Refused(ErrorBody::new(ErrorCode::PermissionDenied, why)), None);
    }
    if msg.to_user != me && msg.from_user != me {
        return (
            PeerResponse::Refused(ErrorBody::new(ErrorCode::InvalidInput, "that message is not for this user")),
            None,
        );
    }
    let MessageBody::Text(t) = &msg.body;
    if t.len() > skein_proto::peer::MAX_TEXT {
        return (PeerResponse::Refused(ErrorBody::new(ErrorCode::TooLarge, "message text is too long")), None);
    }
    match history.insert_incoming(me, msg, path).await {
        Ok(true) => (PeerResponse::Stored { id: msg.id }, Some(message_event(me, msg, path))),
        Ok(false) => (PeerResponse::Stored { id: msg.id }, None),
        Err(e) => {
            tracing::error!(error = %e, "cannot store an incoming message");
            (
                PeerResponse::Refused(ErrorBody::new(
                    ErrorCode::Unavailable,
                    "the recipient could not store it; retry",
                )),
                None,
            )
        }
    }
}

/// Applies a receipt for messages we sent. Returns its event.
pub async fn accept_receipt(history: &History, sender: &str, r: &Receipt) -> (PeerResponse, Option<Value>) {
    if r.by_user != sender {
        return (
            PeerResponse::Refused(ErrorBody::new(ErrorCode::PermissionDenied, "receipt from the wrong user")),
            None,
        );
    }
    let state = match r.kind {
        ReceiptKind::Delivered => OutState::Delivered,
        ReceiptKind::Read => OutState::Read,
    };
    let mut changed = Vec::new();
    for id in r.ids.iter().take(1024) {
        if let Ok(true) = history.set_outgoing_state(*id, state, r.at_ms, None).await {
            changed.push(id.to_hex());
        }
    }
    let ev = (!changed.is_empty())
        .then(|| json!({"type": "receipt", "kind": state.as_str(), "by": r.by_user, "ids": changed}));
    (PeerResponse::Ok, ev)
}

/// Handles a peer request from a verified peer.
pub async fn handle_peer(
    history: &History,
    me: &str,
    from: &Verified,
    path: &str,
    req: skein_proto::peer::PeerRequest,
) -> (PeerResponse, Option<Value>) {
    use skein_proto::peer::PeerRequest;
    match req {
        PeerRequest::Deliver(msg) => accept_message(history, me, &from.user, &msg, path).await,
        PeerRequest::Receipt(r) => accept_receipt(history, &from.user, &r).await,
        PeerRequest::Hello(_) => (PeerResponse::Ok, None),
    }
}

/// Takes everything waiting in this device's mailbox: opens, stores, acks.
/// Returns event lines and the newly stored messages (to send delivery receipts).
pub async fn drain_mailbox(
    client: &TrackerClient,
    history: &History,
    me: &str,
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
                    let (resp, ev) = accept_message(history, me, &item.from_user, &msg, "mailbox").await;
                    if matches!(resp, PeerResponse::Refused(ref b) if b.code == ErrorCode::Unavailable) {
                        // Not stored: leave it in the mailbox for the next attempt.
                        continue;
                    }
                    if let Some(ev) = ev {
                        events.push(ev);
                        if msg.from_user != me {
                            fresh.push(msg);
                        }
                    }
                }
                Ok(SealedPayload::Receipt(r)) => {
                    if let (_, Some(ev)) = accept_receipt(history, &item.from_user, &r).await {
                        events.push(ev);
                    }
                }
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
