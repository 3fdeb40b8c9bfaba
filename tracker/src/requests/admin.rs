//! Admin requests over the control plane; the operations themselves live in
//! [`crate::admin`] and are shared with the admin CLI. What a change ends
//! (sessions, relay access, peers' trust) ends here at once, not at the
//! next poll of the admin watch.

use super::{ConnCtx, store_error};
use crate::state::State;
use crate::{admin, admin_watch};
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
    let passwords = &state.passwords;
    let change = match req {
        AdminRequest::AddUser(new) => {
            admin::add_user(store, new, passwords).await?;
            None
        }
        AdminRequest::SetDisabled { user, disabled } => Some(admin::set_disabled(store, &user, disabled).await?),
        AdminRequest::SetPassword { user, password } => {
            Some(admin::set_password(store, &user, password, passwords).await?)
        }
        AdminRequest::AddDepartment { path } => {
            admin::add_department(store, &path).await?;
            None
        }
        AdminRequest::RevokeDevice { user, device_id } => Some(admin::revoke_device(store, &user, device_id.0).await?),
        AdminRequest::RelayStats => {
            if !state.config.roles.relay {
                return Err(ErrorBody::new(
                    ErrorCode::Unavailable,
                    "this tracker runs no relay (--roles control); the organisation's relays run apart and log \
                     their counts",
                ));
            }
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
    match change.and_then(|c| c.event) {
        // Acting here is immediate; the admin watch would within a poll.
        Some(event) => {
            let count = admin_watch::apply(store, &state.hub, &state.relay, &event).await.map_err(store_error)?;
            Ok(Response::Admin(AdminResponse::SessionsEnded { count }))
        }
        None => Ok(Response::Admin(AdminResponse::Done)),
    }
}
