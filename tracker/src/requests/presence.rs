//! Presence: set the own status, subscribe to others'.

use super::{ConnCtx, store_error};
use crate::state::State;
use skein_proto::control::{PresenceEntry, Response, SetPresence, Subscription};
use skein_proto::limits::{MAX_SUBSCRIBE_USERS, MAX_TEXT_FIELD};
use skein_proto::{ErrorBody, ErrorCode};
use std::collections::HashMap;

/// Sets this device's status.
pub async fn set(state: &State, ctx: &mut ConnCtx, p: SetPresence) -> Result<Response, ErrorBody> {
    ctx.authed()?;
    if p.note.as_ref().is_some_and(|n| n.len() > MAX_TEXT_FIELD || n.chars().any(char::is_control)) {
        return Err(ErrorBody::new(
            ErrorCode::InvalidInput,
            format!("status note must be at most {MAX_TEXT_FIELD} bytes without control characters"),
        ));
    }
    // Every change is pushed to every subscriber: a flood from one device
    // would be multiplied by the whole organisation.
    ctx.presence_rate.take(std::time::Instant::now()).map_err(|wait| {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ErrorBody::new(ErrorCode::Throttled, format!("too many status changes; try again in {secs} s"))
            .retry_after(u32::try_from(wait.as_millis()).unwrap_or(u32::MAX))
    })?;
    state.hub.set_status(ctx.id, p.status, p.note).await;
    Ok(Response::Ok)
}

/// Subscribes; answers with the current presence of everyone followed.
/// For `All`, every user in the directory is listed, with the last-seen time
/// from the store for those the tracker has not seen since it started.
pub async fn subscribe(state: &State, ctx: &mut ConnCtx, sub: Subscription) -> Result<Response, ErrorBody> {
    ctx.authed()?;
    if let Subscription::Users(u) = &sub
        && u.len() > MAX_SUBSCRIBE_USERS
    {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!("subscribe to at most {MAX_SUBSCRIBE_USERS} users, or to all"),
        ));
    }
    let all = matches!(sub, Subscription::All);
    // Only the users followed are read from the store: reading the whole
    // directory for every subscription made connecting N clients cost N².
    let named = match &sub {
        Subscription::All => None,
        Subscription::Users(u) => Some(u.clone()),
    };
    let live = state.hub.subscribe(ctx.id, sub).await;
    let users = match named {
        None => state.store.list_users().await.map_err(store_error)?,
        Some(names) => {
            let mut found = Vec::with_capacity(names.len());
            for name in &names {
                if let Some(u) = state.store.user_by_name(name).await.map_err(store_error)? {
                    found.push(u);
                }
            }
            found
        }
    };
    let stored: HashMap<&str, u64> = users
        .iter()
        .filter(|u| !u.disabled)
        .map(|u| (u.name.as_str(), u.last_seen_ms.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)))
        .collect();
    let mut by_user: HashMap<String, PresenceEntry> = live.into_iter().map(|e| (e.user.clone(), e)).collect();
    if all {
        for name in stored.keys() {
            by_user.entry((*name).to_owned()).or_insert_with(|| PresenceEntry {
                user: (*name).to_owned(),
                status: skein_proto::control::PresenceStatus::Offline,
                note: None,
                last_seen_ms: 0,
                devices: 0,
            });
        }
    }
    let mut entries: Vec<PresenceEntry> = by_user
        .into_values()
        .filter(|e| stored.contains_key(e.user.as_str()))
        .map(|mut e| {
            e.last_seen_ms = e.last_seen_ms.max(stored.get(e.user.as_str()).copied().unwrap_or(0));
            e
        })
        .collect();
    entries.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(Response::PresenceSnapshot(entries))
}

/// Stops presence pushes.
pub async fn unsubscribe(state: &State, ctx: &mut ConnCtx) -> Result<Response, ErrorBody> {
    ctx.authed()?;
    state.hub.unsubscribe(ctx.id).await;
    Ok(Response::Ok)
}
