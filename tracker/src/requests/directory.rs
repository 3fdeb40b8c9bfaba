//! The directory (users, departments), peer lookup and address reports.

use super::session::user_entry;
use super::{ConnCtx, store_error};
use crate::clock::now_ms;
use crate::state::State;
use skein_proto::control::{
    Addresses, Department, DeviceInfo, DirectoryPage, DirectoryQuery, PeerInfo, PresenceStatus, Response,
};
use skein_proto::device::DeviceCert;
use skein_proto::limits::{MAX_ADDR_LEN, MAX_ADDRS, MAX_DIRECTORY_PAGE, MAX_TEXT_FIELD};
use skein_proto::{ErrorBody, ErrorCode};

/// Searches or browses users, with live presence.
pub async fn search(state: &State, ctx: &mut ConnCtx, q: DirectoryQuery) -> Result<Response, ErrorBody> {
    let admin = ctx.authed()?.admin;
    if q.text.as_ref().is_some_and(|t| t.len() > MAX_TEXT_FIELD) {
        return Err(ErrorBody::new(ErrorCode::TooLarge, format!("search text must be at most {MAX_TEXT_FIELD} bytes")));
    }
    let limit = if q.limit == 0 { 100 } else { q.limit.min(MAX_DIRECTORY_PAGE) };
    let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let (users, total) = state
        .store
        .search_users(text, q.department.as_deref(), admin, i64::from(q.offset), i64::from(limit))
        .await
        .map_err(store_error)?;
    let presence = state.hub.entries(users.iter().map(|u| u.name.clone()).collect()).await;
    let users = users.iter().zip(presence).map(|(u, p)| user_entry(u, Some((p.status, p.last_seen_ms)))).collect();
    Ok(Response::Directory(DirectoryPage { users, total: u32::try_from(total).unwrap_or(u32::MAX) }))
}

/// Lists the department tree.
pub async fn departments(state: &State, ctx: &mut ConnCtx) -> Result<Response, ErrorBody> {
    ctx.authed()?;
    let depts = state.store.list_departments().await.map_err(store_error)?;
    Ok(Response::Departments(
        depts
            .into_iter()
            .map(|d| Department { path: d.path, parent: d.parent_path, members: u32::try_from(d.members).unwrap_or(0) })
            .collect(),
    ))
}

/// A user's online devices with addresses, and every device with a valid
/// certificate (for sealing offline mail).
pub async fn lookup(state: &State, ctx: &mut ConnCtx, name: &str) -> Result<Response, ErrorBody> {
    ctx.authed()?;
    peer_info(state, name)
        .await?
        .map(Response::Peer)
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, format!("no user named {name}")))
}

/// Several users' devices in one request; unknown and disabled users are
/// left out.
pub async fn lookup_many(state: &State, ctx: &mut ConnCtx, users: Vec<String>) -> Result<Response, ErrorBody> {
    ctx.authed()?;
    if users.len() > skein_proto::group::MAX_GROUP_MEMBERS {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!("look up at most {} users at a time", skein_proto::group::MAX_GROUP_MEMBERS),
        ));
    }
    let mut out = Vec::with_capacity(users.len());
    for name in users {
        if let Some(info) = peer_info(state, &name).await? {
            out.push(info);
        }
    }
    Ok(Response::Peers(out))
}

/// A user's devices, or `None` for an unknown or disabled user.
async fn peer_info(state: &State, name: &str) -> Result<Option<PeerInfo>, ErrorBody> {
    let Some(user) = state.store.user_by_name(name).await.map_err(store_error)?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let now = now_ms() as i64;
    let mut known: Vec<(DeviceCert, String)> = Vec::new();
    for d in state.store.devices_of(user.id, false).await.map_err(store_error)? {
        if d.cert_expires_at_ms <= now {
            continue;
        }
        match skein_proto::frame::decode_payload::<DeviceCert>(&d.cert) {
            Ok(c) => known.push((c, d.name)),
            Err(e) => tracing::warn!(user = %user.name, error = %e, "skipping undecodable stored device certificate"),
        }
    }
    let mut online: Vec<DeviceInfo> = state
        .hub
        .online(&user.name)
        .await
        .into_iter()
        .filter_map(|o| {
            let (cert, name) = known.iter().find(|(c, _)| c.body.device_id == o.device_id)?.clone();
            Some(DeviceInfo { device_id: o.device_id, name, cert, addresses: o.addresses, status: o.status })
        })
        .collect();
    // Devices online on the store's other trackers.
    let others = state.live_trackers.get();
    if !others.is_empty() {
        let elsewhere = state.store.online_devices_of(&user.name, &others).await.map_err(store_error)?;
        let status =
            state.hub.entries(vec![user.name.clone()]).await.first().map_or(PresenceStatus::Offline, |e| e.status);
        for (device_id, visible, addresses) in elsewhere {
            if online.iter().any(|d| d.device_id == device_id) {
                continue;
            }
            let Some((cert, name)) = known.iter().find(|(c, _)| c.body.device_id == device_id).cloned() else {
                continue;
            };
            let status = if visible { status } else { PresenceStatus::Offline };
            online.push(DeviceInfo { device_id, name, cert, addresses, status });
        }
    }
    let known = known.into_iter().map(|(c, _)| c).collect();
    Ok(Some(PeerInfo { user: user.name, online, known }))
}

/// Records where this device can be reached.
pub async fn report_addresses(state: &State, ctx: &mut ConnCtx, a: Addresses) -> Result<Response, ErrorBody> {
    ctx.authed()?;
    for (kind, list) in [("listen", &a.listen), ("observed", &a.observed), ("relayed", &a.relayed)] {
        if list.len() > MAX_ADDRS {
            return Err(ErrorBody::new(ErrorCode::TooLarge, format!("report at most {MAX_ADDRS} {kind} addresses")));
        }
        if let Some(bad) =
            list.iter().find(|s| s.is_empty() || s.len() > MAX_ADDR_LEN || s.chars().any(char::is_control))
        {
            return Err(ErrorBody::new(ErrorCode::InvalidInput, format!("invalid {kind} address {bad:?}")));
        }
    }
    state.hub.set_addresses(ctx.id, a).await;
    Ok(Response::Ok)
}
