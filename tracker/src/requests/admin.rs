//! Admin requests over the control plane; the operations themselves live in
//! [`crate::admin`] and are shared with the admin CLI. Disabling a user or
//! revoking a device also ends their relay access here, at once.

use super::{ConnCtx, store_error};
use crate::admin;
use crate::clock::now_ms;
use crate::hub::SessionFilter;
use crate::relay;
use crate::state::State;
use skein_proto::bytes::DeviceId;
use skein_proto::control::{AdminRequest, AdminResponse, RelayPeerBytes, RelayStats, Response};
use skein_proto::{ErrorBody, ErrorCode};

/// Runs an admin request for an administrator.
pub async fn handle(state: &State, ctx: &mut ConnCtx, req: AdminRequest) -> Result<Response, ErrorBody> {
    let authed = ctx.authed()?;
    if !authed.admin {
        return Err(ErrorBody::new(ErrorCode::PermissionDenied, "this needs an administrator account"));
    }
    tracing::info!(admin = %authed.live.user, request = ?req, "admin request");
    let store = &state.store;
    let cost = &state.config.password_cost;
    let ended = match req {
        AdminRequest::AddUser(new) => {
            admin::add_user(store, new, cost).await?;
            None
        }
        AdminRequest::SetDisabled { user, disabled } => {
            let u = admin::set_disabled(store, &user, disabled).await?;
            if disabled {
                relay::sync::revoke_user(store, &state.relay, u.id).await.map_err(store_error)?;
            }
            disabled.then(|| {
                (
                    SessionFilter::User(u.id),
                    ErrorBody::new(ErrorCode::AccountDisabled, "your account was disabled by an administrator"),
                )
            })
        }
        AdminRequest::SetPassword { user, password } => {
            let u = admin::set_password(store, &user, password, cost).await?;
            Some((
                SessionFilter::User(u.id),
                ErrorBody::new(ErrorCode::SessionRevoked, "your password was changed; log in again"),
            ))
        }
        AdminRequest::AddDepartment { path } => {
            admin::add_department(store, &path).await?;
            None
        }
        AdminRequest::RevokeDevice { user, device_id } => {
            let u = admin::revoke_device(store, &user, device_id.0).await?;
            relay::sync::revoke_device(store, &state.relay, u.id, device_id.0).await.map_err(store_error)?;
            Some((
                SessionFilter::Device(u.id, DeviceId(device_id.0)),
                ErrorBody::new(ErrorCode::SessionRevoked, "this device was revoked by an administrator"),
            ))
        }
        AdminRequest::RelayStats => {
            let s = state.relay.stats().await;
            let stats = RelayStats {
                total_relayed_bytes: s.total_relayed_bytes,
                reservations: u32::try_from(s.reservations).unwrap_or(u32::MAX),
                circuits: u32::try_from(s.circuits).unwrap_or(u32::MAX),
                peers: s
                    .per_peer
                    .iter()
                    .map(|(p, b)| RelayPeerBytes { peer_id: p.to_bytes(), rx: b.rx, tx: b.tx })
                    .collect(),
            };
            return Ok(Response::Admin(AdminResponse::RelayStats(stats)));
        }
    };
    match ended {
        // Ending here is immediate; the admin watcher would do it within a poll.
        Some((filter, reason)) => {
            let count = state.hub.end_sessions(filter, now_ms(), reason).await;
            Ok(Response::Admin(AdminResponse::SessionsEnded { count }))
        }
        None => Ok(Response::Admin(AdminResponse::Done)),
    }
}
