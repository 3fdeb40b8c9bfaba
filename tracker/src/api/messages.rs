//! Pushing messages (scope `send`): `POST /v1/messages`.
//!
//! An app posts text, a card, an image or several of them to a user
//! (`bob`), a group (`#team`) or a department and everyone under it
//! (`dept:/Engineering`). The tracker makes one [`AppMessage`] per
//! recipient, signs it with the organisation's key, seals it to each of
//! the recipient's devices and puts it in their mailboxes, as a node puts
//! mail for a device that is away; connected devices are told at once
//! (on whichever tracker they are) and take it over their tracker
//! connection, the others when they next connect. The peer-to-peer
//! messages between users never pass here; these are the tracker's own.
//!
//! A user with no device yet (provisioned, never logged in) gets theirs
//! when their first device logs in ([`release_pending`]).
//!
//! With an `Idempotency-Key` header the message's id comes from the app
//! and the key, so a retried post is the same message: mailboxes keep an
//! id once, and a device that already took it stores it once.

use super::{Api, Caller, Problem};
use crate::clock::now_ms;
use crate::requests::mailbox::announce_to;
use crate::store::{AppRecord, GroupKindRecord, MailRecord, PendingApp, Store, UserRecord, department_group_id};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde::{Deserialize, Serialize};
use skein_certs::seal::{seal_aad, seal_payload};
use skein_proto::app::{AppImage, AppMessageBody, AppPost, Card, CardButton, CardField, image_mime};
use skein_proto::bytes::{DeviceId, GroupId, MailId, PublicKey};
use skein_proto::limits::{MAX_SEALED_ITEM, valid_user_name};
use skein_proto::peer::SealedPayload;
use std::sync::Arc;
use utoipa::ToSchema;

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Most users one post may reach.
pub const MAX_RECIPIENTS: usize = 5_000;

/// A message to push.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// Whom to: a user (`bob`), a group (`#team`) or a department with its
    /// sub-departments (`dept:/Engineering`).
    #[schema(min_length = 1)]
    to: String,
    /// Plain text.
    text: Option<String>,
    /// A card, beside or instead of the text.
    card: Option<NewCard>,
    /// An image (PNG, JPEG, GIF or WebP, at most 256 KiB).
    image: Option<NewImage>,
}

/// A card: a title, a text, fields and link buttons.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCard {
    /// The title.
    title: String,
    /// Text under the title.
    text: Option<String>,
    /// Name and value pairs, shown in order (at most 20).
    #[serde(default)]
    fields: Vec<NewField>,
    /// Buttons that open `https://` or `http://` links (at most 5).
    #[serde(default)]
    buttons: Vec<NewButton>,
}

/// One field of a card.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewField {
    /// The field's name.
    name: String,
    /// Its value.
    value: String,
}

/// A link button.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewButton {
    /// What the button says.
    label: String,
    /// Where it leads.
    url: String,
}

/// An image, inline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewImage {
    /// The encoded image, base64 (standard alphabet, padded).
    base64: String,
}

/// The message was taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The message's id (32 hex digits), the same for every recipient.
    pub id: String,
    /// The users it is for.
    pub recipients: usize,
    /// Their devices it was put in the mailbox of (connected ones are told at once).
    pub devices: usize,
    /// Recipients with no device yet (never logged in): their copy waits
    /// for their first device.
    pub waiting: usize,
}

/// Pushes a message to a user, a group or a department.
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "send",
    request_body = NewMessage,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried post the same message (1 to 255 visible ASCII characters)")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Taken: in every recipient device's mailbox, and connected devices told", body = Accepted),
        (status = 400, description = "A malformed body, or a part of the message over its limits", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No live app's token", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The app lacks the send scope", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user, group or department", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Several groups have that name, or the Idempotency-Key was used for a different message", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 1 MiB", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "The body is not sent as application/json", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The app's rate limit", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The store does not answer", body = super::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn send(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Json<NewMessage>, JsonRejection>,
) -> Result<(StatusCode, Json<Accepted>), Problem> {
    caller.need("send")?;
    let Json(m) = body.map_err(json_problem)?;
    let post = post_of(&caller.app.name, &m.text, &m.card, &m.image)?;
    let id = message_id(caller.app.id, &headers)?;
    if headers.contains_key("idempotency-key") {
        // A retry is the same post; the same key for another one is a mistake.
        let mut h = blake3::Hasher::new();
        h.update(m.to.trim().as_bytes());
        h.update(&[0]);
        h.update(&skein_proto::frame::encode_payload(&post).map_err(|e| Problem::bad_request(e.to_string()))?);
        let fingerprint = *h.finalize().as_bytes();
        if !api.state.store.claim_idempotency(caller.app.id, &id.0, &fingerprint, now_ms() as i64).await? {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "this Idempotency-Key was already used for a different message; use a new key for a new message",
            ));
        }
    }
    let accepted = deliver(&api, &caller.app, &m.to, post, id).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// Puts `post` from `app`, as message `id`, in the mailbox of every
/// device of everyone `to` names, and tells the connected ones.
pub async fn deliver(api: &Api, app: &AppRecord, to: &str, post: AppPost, id: MailId) -> Result<Accepted, Problem> {
    let (recipients, group) = recipients(&api.state.store, to).await?;
    let state = &api.state;
    let sent_at_ms = now_ms();
    // Every recipient's copies, sealed first, then stored in one
    // transaction: one savepoint per user, so a full mailbox spoils no one
    // else's.
    let mut puts: Vec<(i64, Vec<MailRecord>)> = Vec::with_capacity(recipients.len());
    let mut waiting = 0;
    for user in &recipients {
        let body = AppMessageBody {
            id,
            to_user: user.name.clone(),
            group,
            sent_at_ms,
            icon_png: app.icon.clone(),
            post: post.clone(),
        };
        let payload = SealedPayload::App(state.org.signing.sign_app_message(body));
        let targets = state.store.devices_of(user.id, false).await?;
        if targets.is_empty() {
            waiting += usize::from(keep_for_first_device(state, user, app, id, &payload, sent_at_ms).await?);
            continue;
        }
        let mut records = Vec::with_capacity(targets.len());
        for d in &targets {
            records.push(sealed_for(user.id, &app.name, id, &payload, d.device_id, d.x25519, sent_at_ms as i64)?);
        }
        if !records.is_empty() {
            puts.push((user.id, records));
        }
    }
    let batches: Vec<Vec<MailRecord>> = puts.iter().map(|(_, r)| r.clone()).collect();
    let outcomes = state.store.mailbox_put_each(&batches, state.config.mailbox.for_store()).await?;
    let mut devices = 0;
    for ((user_id, records), outcome) in puts.into_iter().zip(outcomes) {
        match outcome {
            Ok(_) => {
                devices += records.len();
                let ids: Vec<[u8; 16]> = records.iter().map(|r| r.to_device).collect();
                announce_to(state, user_id, ids).await.map_err(|e| Problem::unavailable(e.message))?;
            }
            Err(crate::store::StoreError::MailboxFull { user, limit }) => {
                tracing::warn!(app = %app.name, %user, %limit, "an app message did not fit a mailbox");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Accepted { id: id.to_hex(), recipients: recipients.len(), devices, waiting })
}

/// One device's mailbox item of an app message.
fn sealed_for(
    user_id: i64,
    app: &str,
    id: MailId,
    payload: &SealedPayload,
    device_id: [u8; 16],
    x25519: [u8; 32],
    at_ms: i64,
) -> Result<MailRecord, Problem> {
    let sealed = seal_payload(&PublicKey(x25519), payload, &seal_aad(&id, &DeviceId(device_id)))
        .map_err(|e| Problem::bad_request(format!("cannot seal the message: {e}")))?;
    if sealed.len() > MAX_SEALED_ITEM {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the message comes to {} bytes sealed; at most {MAX_SEALED_ITEM} fit", sealed.len()),
        ));
    }
    Ok(MailRecord {
        id: id.0,
        to_user_id: user_id,
        to_device: device_id,
        from_user_id: user_id,
        from_user: String::new(),
        from_app: Some(app.to_owned()),
        sealed,
        stored_at_ms: at_ms,
    })
}

/// Keeps the message of a user with no device yet for their first one;
/// false when too many wait for them already.
async fn keep_for_first_device(
    state: &crate::state::State,
    user: &UserRecord,
    app: &AppRecord,
    id: MailId,
    payload: &SealedPayload,
    at_ms: u64,
) -> Result<bool, Problem> {
    let encoded = skein_proto::frame::encode_payload(payload)
        .map_err(|e| Problem::bad_request(format!("cannot encode the message: {e}")))?;
    // Its size as a device will get it, checked now: a message too large
    // to seal later is refused here.
    sealed_for(user.id, &app.name, id, payload, [0; 16], [9; 32], at_ms as i64)?;
    let pending = PendingApp { id: id.0, from_app: app.name.clone(), payload: encoded, stored_at_ms: at_ms as i64 };
    let kept = state.store.app_pending_put(user.id, &pending).await?;
    if !kept {
        tracing::warn!(app = %app.name, user = %user.name, "too many app messages wait for this user's first device");
    }
    Ok(kept)
}

/// Moves the app messages waiting for `user_id`'s first device into the
/// mailbox of `device_id` (which just logged in), sealed to its key.
pub async fn release_pending(
    state: &crate::state::State,
    user_id: i64,
    device_id: [u8; 16],
) -> Result<usize, crate::store::StoreError> {
    let pending = state.store.app_pending(user_id).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let Some(device) = state.store.device(user_id, device_id).await? else { return Ok(0) };
    let mut records = Vec::with_capacity(pending.len());
    for p in &pending {
        let sealed = skein_proto::frame::decode_payload::<SealedPayload>(&p.payload).ok().and_then(|payload| {
            sealed_for(user_id, &p.from_app, MailId(p.id), &payload, device_id, device.x25519, p.stored_at_ms).ok()
        });
        match sealed {
            Some(r) => records.push(r),
            None => tracing::warn!(app = %p.from_app, "a waiting app message could not be sealed; dropping it"),
        }
    }
    let outcome = state.store.mailbox_put_each(&[records.clone()], state.config.mailbox.for_store()).await?;
    if let Some(Err(e)) = outcome.into_iter().next() {
        return Err(e);
    }
    let ids: Vec<[u8; 16]> = pending.iter().map(|p| p.id).collect();
    state.store.app_pending_done(user_id, &ids).await?;
    Ok(records.len())
}

/// A malformed or unreadable body as a problem that says what is wrong.
pub fn json_problem(e: JsonRejection) -> Problem {
    match e {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the message as JSON: Content-Type: application/json")
        }
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is over 1 MiB; link to large content from a card")
        }
        other => Problem::bad_request(format!("the body is not a message: {}", other.body_text())),
    }
}

/// The post of `app` with these parts, checked.
pub fn post_of(
    app: &str,
    text: &Option<String>,
    card: &Option<NewCard>,
    image: &Option<NewImage>,
) -> Result<AppPost, Problem> {
    let image = match image {
        None => None,
        Some(i) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(i.base64.trim())
                .map_err(|e| Problem::bad_request(format!("`image.base64` is not base64: {e}")))?;
            let mime = image_mime(&bytes)
                .ok_or_else(|| Problem::bad_request("the image is not a PNG, JPEG, GIF or WebP image"))?;
            let (width, height) = image::ImageReader::new(std::io::Cursor::new(&bytes))
                .with_guessed_format()
                .ok()
                .and_then(|r| r.into_dimensions().ok())
                .ok_or_else(|| Problem::bad_request("the image cannot be read: it is damaged or cut short"))?;
            Some(AppImage { mime: mime.into(), width, height, bytes })
        }
    };
    let card = card.as_ref().map(|c| Card {
        title: c.title.clone(),
        text: c.text.clone(),
        fields: c.fields.iter().map(|f| CardField { name: f.name.clone(), value: f.value.clone() }).collect(),
        buttons: c.buttons.iter().map(|b| CardButton { label: b.label.clone(), url: b.url.clone() }).collect(),
    });
    let post = AppPost { app: app.to_owned(), text: text.clone(), card, image };
    post.check().map_err(Problem::bad_request)?;
    Ok(post)
}

/// The message's id: from the app and its idempotency key when it gave
/// one, else fresh.
fn message_id(app_id: i64, headers: &HeaderMap) -> Result<MailId, Problem> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(MailId(rand::random()));
    };
    let key = key.to_str().ok().filter(|k| {
        !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY && k.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    });
    let key = key.ok_or_else(|| {
        Problem::bad_request(format!(
            "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        ))
    })?;
    let mut h = blake3::Hasher::new();
    h.update(b"skein/app-idempotency/v1\0");
    h.update(&app_id.to_le_bytes());
    h.update(key.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    Ok(MailId(id))
}

/// The enabled users `to` names, and the group whose conversation the
/// message goes into (none for a user).
pub async fn recipients(store: &Store, to: &str) -> Result<(Vec<UserRecord>, Option<GroupId>), Problem> {
    let to = to.trim();
    let group = if let Some(name) = to.strip_prefix('#') {
        let all = store.all_groups().await?;
        let named: Vec<_> = all
            .into_iter()
            .filter(|g| g.name == name && !g.closed && !matches!(g.kind, GroupKindRecord::Department(_)))
            .collect();
        match named.len() {
            0 => return Err(Problem::not_found(format!("no open group is named {name:?}"))),
            1 => named.into_iter().next(),
            n => {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    format!("{n} groups are named {name:?}; rename one (skein group rename) so the name says which"),
                ));
            }
        }
    } else if let Some(path) = to.strip_prefix("dept:") {
        let path = path.trim_matches('/');
        if store.department_by_path(path).await?.is_none() {
            return Err(Problem::not_found(format!(
                "no department {path:?}; departments are named by their path, such as dept:/Engineering/Backend"
            )));
        }
        store.group(department_group_id(path)).await?
    } else {
        let name = to.to_lowercase();
        if !valid_user_name(&name) {
            return Err(Problem::bad_request(format!(
                "`to` is {to:?}: name a user (bob), a group (#team) or a department (dept:/Engineering)"
            )));
        }
        let user = store.user_by_name(&name).await?.filter(|u| !u.disabled);
        let user = user.ok_or_else(|| Problem::not_found(format!("no enabled user named {name:?}")))?;
        return Ok((vec![user], None));
    };
    let Some(group) = group else {
        return Ok((Vec::new(), None));
    };
    if group.members.len() > MAX_RECIPIENTS {
        return Err(Problem::bad_request(format!(
            "{to} has {} members; one post reaches at most {MAX_RECIPIENTS}",
            group.members.len()
        )));
    }
    let mut users = Vec::with_capacity(group.members.len());
    for m in &group.members {
        if let Some(u) = store.user_by_name(m).await?.filter(|u| !u.disabled) {
            users.push(u);
        }
    }
    Ok((users, Some(GroupId(group.id))))
}
