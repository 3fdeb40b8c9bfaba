//! The daemon's answers about files, images and reactions: offering a file
//! or an image (to a user, or to a group as one group message that every
//! member fetches), accepting or declining an offer, listing transfers, and
//! reacting to a message. Each is answered from its own task, since
//! hashing a file or reaching a peer takes a while.

use super::{
    Node, Undelivered, deliver, deliver_to, group_stamp, is_group_spec, new_message, recipient, sendable_group,
};
use crate::control::{ControlReply, ControlRequest};
use crate::transfer::image::{MAX_IMAGE_FILE, thumbnail};
use serde_json::{Value, json};
use skein_proto::bytes::MailId;
use skein_proto::file::{FileOffer, ImageMessage, Reaction};
use skein_proto::peer::{ChatMessage, Conversation, MessageBody, group_address};
use std::path::PathBuf;
use tokio::sync::oneshot;

fn transfer_id(id: &str) -> Result<MailId, ControlReply> {
    MailId::from_hex(id).ok_or_else(|| {
        ControlReply::err("invalid_input", format!("{id:?} is not a transfer or message id (32 hex digits)"))
    })
}

fn answer(r: Result<Value, String>, code: &str) -> ControlReply {
    r.map_or_else(|e| ControlReply::err(code, e), ControlReply::ok)
}

impl Node {
    /// Answers a file, image or reaction request on `reply`.
    pub(super) fn answer_files(&self, req: ControlRequest, reply: oneshot::Sender<ControlReply>) {
        let transfers = self.transfers.clone();
        match req {
            ControlRequest::SendFile { to, path, name } => self.spawn_offer(to, path, name, false, reply),
            ControlRequest::SendImage { to, path } => self.spawn_offer(to, path, None, true, reply),
            ControlRequest::Accept { id, dir } => {
                tokio::spawn(async move {
                    let r = match transfer_id(&id) {
                        Ok(id) => answer(transfers.accept(id, dir.map(PathBuf::from)).await, "refused"),
                        Err(e) => e,
                    };
                    let _ = reply.send(r);
                });
            }
            ControlRequest::Decline { id } => {
                tokio::spawn(async move {
                    let r = match transfer_id(&id) {
                        Ok(id) => answer(transfers.decline(id).await, "refused"),
                        Err(e) => e,
                    };
                    let _ = reply.send(r);
                });
            }
            ControlRequest::Transfers { id } => {
                tokio::spawn(async move {
                    let r = match id.as_deref().map(transfer_id) {
                        Some(Ok(id)) => answer(transfers.describe(id).await, "not_found"),
                        Some(Err(e)) => e,
                        None => answer(transfers.list(500).await.map(Value::Array), "internal"),
                    };
                    let _ = reply.send(r);
                });
            }
            ControlRequest::React { id, emoji, remove } => self.spawn_react(id, emoji, remove, reply),
            _ => {
                let _ = reply.send(ControlReply::err("internal", "not a file request"));
            }
        }
    }

    /// Offers the file at `path` to `to` (as an image message with `image`).
    fn spawn_offer(
        &self,
        to: String,
        path: String,
        name: Option<String>,
        image: bool,
        reply: oneshot::Sender<ControlReply>,
    ) {
        if is_group_spec(&to) {
            self.spawn_group_offer(to, path, name, image, reply);
            return;
        }
        let to = match recipient(&to) {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(e);
                return;
            }
        };
        // The id is fixed now; the body is filled in once the file is hashed.
        let mut msg = self.message(to.clone(), MessageBody::Text(String::new()));
        let (sender, transfers) = (self.sender(), self.transfers.clone());
        tokio::spawn(async move {
            let r = async {
                let path = PathBuf::from(&path);
                let (offer, manifest, source) =
                    transfers.prepare(&path, name).await.map_err(|e| ControlReply::err("invalid_input", e))?;
                msg.body =
                    if image { image_body(&source, offer.clone()).await? } else { MessageBody::File(offer.clone()) };
                // Recorded before the offer leaves, so a recipient that accepts
                // at once finds it.
                transfers
                    .record_outgoing(msg.id, &to, &offer, &manifest, &source, image)
                    .await
                    .map_err(|e| ControlReply::err("internal", e))?;
                let sent = deliver(&sender, &msg).await;
                if let Err(Undelivered::NoSuchUser(why)) = &sent {
                    transfers.offer_failed(msg.id, why).await;
                }
                let path = sent?;
                Ok::<_, ControlReply>(json!({
                    "id": msg.id.to_hex(), "path": path, "name": offer.name, "size": offer.size,
                    "root": offer.root.to_hex(), "source": source.display().to_string(),
                }))
            }
            .await;
            let _ = reply.send(r.map_or_else(|e| e, ControlReply::ok));
        });
    }

    /// Offers the file at `path` to the group `spec` names: one group
    /// message, which every member's devices fetch from this device and
    /// from each other.
    fn spawn_group_offer(
        &self,
        spec: String,
        path: String,
        name: Option<String>,
        image: bool,
        reply: oneshot::Sender<ControlReply>,
    ) {
        let (groups, sender, transfers) = (self.groups.clone(), self.sender(), self.transfers.clone());
        let (me, device) = (self.me.clone(), self.device.device_id);
        tokio::spawn(async move {
            let r = async {
                let b = sendable_group(&groups, &spec, &me).await?;
                let path = PathBuf::from(&path);
                let (offer, manifest, source) =
                    transfers.prepare(&path, name).await.map_err(|e| ControlReply::err("invalid_input", e))?;
                let body =
                    if image { image_body(&source, offer.clone()).await? } else { MessageBody::File(offer.clone()) };
                let address = group_address(&b.group);
                let mut msg: ChatMessage = new_message(&me, device, address.clone(), Conversation::Direct, body);
                // Recorded before the offer leaves, so a member that accepts
                // at once finds it.
                transfers
                    .record_outgoing(msg.id, &address, &offer, &manifest, &source, image)
                    .await
                    .map_err(|e| ControlReply::err("internal", e))?;
                // Numbered and stamped as any group message, just before it is
                // stored, so a failure above leaves no number unused.
                msg.conversation = group_stamp(&groups, &sender, &b).await;
                let sent = deliver_to(&sender, &msg, &b.members).await;
                if let Err(Undelivered::Local(why)) = &sent {
                    transfers.offer_failed(msg.id, why).await;
                }
                let path = sent?;
                Ok::<_, ControlReply>(json!({
                    "id": msg.id.to_hex(), "path": path, "name": offer.name, "size": offer.size,
                    "root": offer.root.to_hex(), "source": source.display().to_string(),
                    "group": b.group.to_hex(),
                }))
            }
            .await;
            let _ = reply.send(r.map_or_else(|e| e, ControlReply::ok));
        });
    }

    /// Reacts to the message `id` with `emoji`, or takes it back.
    fn spawn_react(&self, id: String, emoji: String, remove: bool, reply: oneshot::Sender<ControlReply>) {
        let (sender, node_msg) = (self.sender(), self.message(String::new(), MessageBody::Text(String::new())));
        tokio::spawn(async move {
            let r = async {
                let target = transfer_id(&id)?;
                let emoji = crate::emoji::reaction(&emoji).map_err(|e| ControlReply::err("invalid_input", e))?;
                let original = sender
                    .history
                    .get(target)
                    .await
                    .map_err(|e| ControlReply::err("internal", e.to_string()))?
                    .ok_or_else(|| {
                        ControlReply::err("not_found", format!("no message {id}; `skein history` shows ids"))
                    })?;
                if matches!(original.body, MessageBody::Reaction(_)) {
                    return Err(ControlReply::err("invalid_input", "a reaction cannot be reacted to"));
                }
                let other = if original.outgoing { original.to_user } else { original.from_user };
                let mut msg = node_msg;
                msg.to_user = other;
                msg.body = MessageBody::Reaction(Reaction { target, emoji: emoji.clone(), remove });
                sender
                    .history
                    .apply_reaction(target, &sender.me, &emoji, !remove, msg.sent_at_ms)
                    .await
                    .map_err(|e| ControlReply::err("internal", e.to_string()))?;
                let path = deliver(&sender, &msg).await?;
                Ok(json!({"id": target.to_hex(), "emoji": emoji, "removed": remove, "path": path}))
            }
            .await;
            let _ = reply.send(r.map_or_else(|e| e, ControlReply::ok));
        });
    }
}

/// The body of an image message: the offer plus a thumbnail made from the file.
async fn image_body(source: &std::path::Path, offer: FileOffer) -> Result<MessageBody, ControlReply> {
    if offer.size > MAX_IMAGE_FILE {
        return Err(ControlReply::err(
            "invalid_input",
            format!("{} is over {} MiB; send it with send-file instead", source.display(), MAX_IMAGE_FILE >> 20),
        ));
    }
    let bytes = tokio::fs::read(source)
        .await
        .map_err(|e| ControlReply::err("invalid_input", format!("cannot read {}: {e}", source.display())))?;
    let thumb = tokio::task::spawn_blocking(move || thumbnail(&bytes))
        .await
        .map_err(|e| ControlReply::err("internal", e.to_string()))?
        .map_err(|e| ControlReply::err("invalid_input", format!("{}: {e}", source.display())))?;
    Ok(MessageBody::Image(ImageMessage {
        file: offer,
        format: thumb.format.to_owned(),
        width: thumb.width,
        height: thumb.height,
        thumbnail: thumb.jpeg,
    }))
}
