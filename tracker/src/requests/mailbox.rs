//! The offline mailbox: sealed items wait here for a device that is away.
//! The tracker stores ciphertext only, within per-recipient limits, of
//! which any one sender may fill only a share.

use super::{ConnCtx, store_error};
use crate::clock::now_ms;
use crate::hub::LiveSession;
use crate::state::State;
use crate::store::{MailRecord, MailboxLimits as StoreLimits};
use skein_proto::bytes::{DeviceId, MailId};
use skein_proto::control::{MailItem, MailboxPut, Response};
use skein_proto::limits::{MAX_MAIL_BATCH, MAX_MAIL_MANY_ITEMS, MAX_SEALED_ITEM};
use skein_proto::{ErrorBody, ErrorCode};
use std::collections::HashSet;

fn limits(state: &State) -> StoreLimits {
    state.config.mailbox.for_store()
}

/// Stores sealed items for the recipient's devices.
pub async fn put(state: &State, ctx: &mut ConnCtx, put: MailboxPut) -> Result<Response, ErrorBody> {
    let sender = ctx.authed()?.live.clone();
    if put.items.is_empty() || put.items.len() > MAX_MAIL_BATCH {
        return Err(ErrorBody::new(
            ErrorCode::InvalidInput,
            format!("send between 1 and {MAX_MAIL_BATCH} mailbox items at a time"),
        ));
    }
    let (user_id, records) = records_for(state, &sender, &put).await?;
    let stored = state.store.mailbox_put(&records, limits(state)).await.map_err(store_error)?;
    announce(state, user_id, &put).await?;
    Ok(Response::MailboxStored { stored })
}

/// Stores sealed items for several users' devices in one transaction,
/// each user's on their own: an unknown user, a bad item or a full
/// mailbox refuses that user's items only.
pub async fn put_many(state: &State, ctx: &mut ConnCtx, puts: Vec<MailboxPut>) -> Result<Response, ErrorBody> {
    let sender = ctx.authed()?.live.clone();
    let total: usize = puts.iter().map(|p| p.items.len()).sum();
    if puts.is_empty() || total > MAX_MAIL_MANY_ITEMS || puts.iter().any(|p| p.items.is_empty()) {
        return Err(ErrorBody::new(
            ErrorCode::InvalidInput,
            format!("send between 1 and {MAX_MAIL_MANY_ITEMS} mailbox items at a time, at least one per user"),
        ));
    }
    let mut answers: Vec<Result<u32, ErrorBody>> = Vec::with_capacity(puts.len());
    let mut accepted: Vec<(usize, i64, Vec<MailRecord>)> = Vec::new();
    for (i, put) in puts.iter().enumerate() {
        match records_for(state, &sender, put).await {
            Ok((user_id, records)) => {
                accepted.push((i, user_id, records));
                answers.push(Ok(0));
            }
            Err(e) => answers.push(Err(e)),
        }
    }
    let batches: Vec<Vec<MailRecord>> = accepted.iter().map(|(_, _, r)| r.clone()).collect();
    let outcomes = state.store.mailbox_put_each(&batches, limits(state)).await.map_err(store_error)?;
    for ((i, user_id, _), outcome) in accepted.into_iter().zip(outcomes) {
        answers[i] = match outcome {
            Ok(stored) => {
                announce(state, user_id, &puts[i]).await?;
                Ok(stored)
            }
            Err(e) => Err(store_error(e)),
        };
    }
    Ok(Response::MailboxStoredEach(answers))
}

/// Checks one user's items and makes them records: each item within the
/// size limit, the user known and enabled, each item for one of the
/// user's devices.
async fn records_for(
    state: &State,
    sender: &LiveSession,
    put: &MailboxPut,
) -> Result<(i64, Vec<MailRecord>), ErrorBody> {
    if let Some(big) = put.items.iter().find(|i| i.sealed.len() > MAX_SEALED_ITEM) {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!("mailbox item {} is {} bytes; the limit is {MAX_SEALED_ITEM}", big.id, big.sealed.len()),
        ));
    }
    let to = state
        .store
        .user_by_name(&put.to_user)
        .await
        .map_err(store_error)?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, format!("no user named {}", put.to_user)))?;
    let devices: HashSet<[u8; 16]> =
        state.store.devices_of(to.id, false).await.map_err(store_error)?.into_iter().map(|d| d.device_id).collect();
    if let Some(bad) = put.items.iter().find(|i| !devices.contains(&i.to_device.0)) {
        return Err(ErrorBody::new(
            ErrorCode::InvalidInput,
            format!("{} has no device {}; look the user up again", put.to_user, bad.to_device),
        ));
    }
    let now = now_ms() as i64;
    let records = put
        .items
        .iter()
        .map(|i| MailRecord {
            id: i.id.0,
            to_user_id: to.id,
            to_device: i.to_device.0,
            from_user_id: sender.user_id,
            from_user: sender.user.clone(),
            from_app: None,
            sealed: i.sealed.clone(),
            stored_at_ms: now,
        })
        .collect();
    Ok((to.id, records))
}

/// Tells each connected device that items came for it, and how many wait.
async fn announce(state: &State, user_id: i64, put: &MailboxPut) -> Result<(), ErrorBody> {
    let targets: HashSet<[u8; 16]> = put.items.iter().map(|i| i.to_device.0).collect();
    announce_to(state, user_id, targets).await
}

/// Tells each of `devices` of the user, wherever it is connected, that
/// items came for it, and how many wait.
pub async fn announce_to(
    state: &State,
    user_id: i64,
    devices: impl IntoIterator<Item = [u8; 16]>,
) -> Result<(), ErrorBody> {
    for d in devices {
        let count = state.store.mailbox_count(user_id, d).await.map_err(store_error)?;
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        state.hub.mail_waiting(user_id, DeviceId(d), count).await;
        // The device may be connected to another tracker of the store.
        let me = state.relay.peer_id().to_string();
        state.store.announce_mail(&me, user_id, DeviceId(d), count).await.map_err(store_error)?;
    }
    Ok(())
}

/// Takes waiting items for this device, oldest first. Items stay until acked.
pub async fn fetch(state: &State, ctx: &mut ConnCtx, limit: u32) -> Result<Response, ErrorBody> {
    let me = ctx.authed()?.live.clone();
    let limit = i64::from(limit.clamp(1, MAX_MAIL_BATCH as u32));
    let items = state.store.mailbox_fetch(me.user_id, me.device_id.0, limit).await.map_err(store_error)?;
    Ok(Response::Mail(
        items
            .into_iter()
            .map(|r| MailItem {
                id: MailId(r.id),
                from_user: r.from_user,
                sealed: r.sealed,
                stored_at_ms: u64::try_from(r.stored_at_ms).unwrap_or(0),
            })
            .collect(),
    ))
}

/// Deletes items this device has safely stored.
pub async fn ack(state: &State, ctx: &mut ConnCtx, ids: Vec<MailId>) -> Result<Response, ErrorBody> {
    let me = ctx.authed()?.live.clone();
    if ids.len() > MAX_MAIL_BATCH {
        return Err(ErrorBody::new(ErrorCode::TooLarge, format!("ack at most {MAX_MAIL_BATCH} items at a time")));
    }
    let ids: Vec<[u8; 16]> = ids.into_iter().map(|i| i.0).collect();
    let removed = state.store.mailbox_ack(me.user_id, me.device_id.0, &ids).await.map_err(store_error)?;
    Ok(Response::MailboxAcked { removed: u32::try_from(removed).unwrap_or(u32::MAX) })
}
