//! Groups: make, list and change them. Every change is a new version of the
//! group, signed by the organisation as a membership certificate and pushed
//! to the group's connected members (and to those it removed), so every
//! node can check who may speak in it.

use super::{ConnCtx, store_error};
use crate::clock::now_ms;
use crate::state::State;
use crate::store::{GroupKindRecord, GroupRecord, GroupStoreChange};
use skein_proto::bytes::GroupId;
use skein_proto::control::{Event, GroupCreate, GroupUpdate, Response};
use skein_proto::group::{
    GroupChange, GroupEvent, GroupKind, LoggedChange, MAX_CHANGES, MAX_GROUP_MEMBERS, MAX_GROUP_NAME,
    MEMBERSHIP_CERT_VERSION, MembershipBody, MembershipCert,
};
use skein_proto::limits::valid_user_name;
use skein_proto::{ErrorBody, ErrorCode};
use std::collections::HashSet;

fn invalid(message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorCode::InvalidInput, message)
}

fn denied(message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorCode::PermissionDenied, message)
}

fn check_name(name: &str) -> Result<String, ErrorBody> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_GROUP_NAME || name.chars().any(char::is_control) {
        return Err(invalid(format!(
            "a group name is 1-{MAX_GROUP_NAME} bytes without control characters; {name:?} is not"
        )));
    }
    Ok(name.to_owned())
}

fn check_users(users: &[String]) -> Result<Vec<String>, ErrorBody> {
    if users.len() > MAX_GROUP_MEMBERS {
        return Err(invalid(format!("a group has at most {MAX_GROUP_MEMBERS} members")));
    }
    let mut out: Vec<String> = users.iter().map(|u| u.trim().to_lowercase()).collect();
    if let Some(bad) = out.iter().find(|u| !valid_user_name(u)) {
        return Err(invalid(format!("{bad:?} is not a user name")));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The organisation's signed statement of `g` at its current version.
pub fn certify(org: &crate::org::Org, g: &GroupRecord) -> MembershipCert {
    let kind = match &g.kind {
        GroupKindRecord::Org => GroupKind::Org,
        GroupKindRecord::Department(path) => GroupKind::Department { path: path.clone() },
        GroupKindRecord::Discussion(owner) => GroupKind::Discussion { owner: owner.clone().unwrap_or_default() },
    };
    org.signing.sign_membership(MembershipBody {
        format: MEMBERSHIP_CERT_VERSION,
        org: org.name.clone(),
        group: GroupId(g.id),
        version: u64::try_from(g.version).unwrap_or(0),
        name: g.name.clone(),
        kind,
        members: g.members.clone(),
        closed: g.closed,
        issued_at_ms: now_ms(),
    })
}

/// Keeps what a group's new version changed, for members who were away.
pub async fn log_change(store: &crate::store::Store, g: &GroupRecord, actor: &str, change: &GroupChange) {
    let logged = match skein_proto::frame::encode_payload(change) {
        Ok(bytes) => {
            store.log_group_change(g.id, g.version, actor, &bytes, now_ms() as i64).await.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = logged {
        tracing::warn!(error = %e, "could not log a group change");
    }
}

/// The newest logged changes of a group the caller is in.
pub async fn changes(state: &State, ctx: &mut ConnCtx, group: GroupId, after: u64) -> Result<Response, ErrorBody> {
    let me = ctx.authed()?.clone();
    let g = state.store.group(group.0).await.map_err(store_error)?;
    if !g.is_some_and(|g| g.has_member(&me.live.user)) {
        return Err(ErrorBody::new(ErrorCode::NotFound, format!("you are in no group {group}")));
    }
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let rows = state.store.group_changes(group.0, after, MAX_CHANGES as i64).await.map_err(store_error)?;
    let logged = rows
        .into_iter()
        .filter_map(|(version, actor, change, at_ms)| {
            let change = skein_proto::frame::decode_payload::<GroupChange>(&change).ok()?;
            Some(LoggedChange {
                version: u64::try_from(version).ok()?,
                actor,
                change,
                at_ms: u64::try_from(at_ms).ok()?,
            })
        })
        .collect();
    Ok(Response::GroupChanges(logged))
}

/// Signs the group's new version and tells its members, and anyone the
/// change removed.
async fn announce(state: &State, actor: &str, change: GroupChange, g: &GroupRecord, also: &[String]) -> GroupEvent {
    log_change(&state.store, g, actor, &change).await;
    let event = GroupEvent { actor: actor.to_owned(), change, cert: certify(&state.org, g) };
    let users: HashSet<String> = g.members.iter().chain(also).cloned().collect();
    state.hub.to_users(users, Event::GroupChanged(event.clone())).await;
    event
}

/// Makes a discussion group owned by the caller, or an org group.
pub async fn create(state: &State, ctx: &mut ConnCtx, c: GroupCreate) -> Result<Response, ErrorBody> {
    let me = ctx.authed()?.clone();
    if c.org && !me.admin {
        return Err(denied("only administrators make org groups; make a discussion group instead"));
    }
    let name = check_name(&c.name)?;
    let members = check_users(&c.members)?;
    let owner = (!c.org).then_some(me.live.user_id);
    let id: [u8; 16] = rand::random();
    let g = state
        .store
        .create_group(id, &name, owner, &members, MAX_GROUP_MEMBERS, now_ms() as i64)
        .await
        .map_err(group_error)?;
    tracing::info!(user = %me.live.user, group = %GroupId(id), members = g.members.len(), "group created");
    Ok(Response::Group(announce(state, &me.live.user, GroupChange::Created, &g, &[]).await))
}

/// The caller's groups, each at its newest version.
pub async fn list(state: &State, ctx: &mut ConnCtx) -> Result<Response, ErrorBody> {
    let me = ctx.authed()?.clone();
    let groups = state.store.groups_of(me.live.user_id).await.map_err(store_error)?;
    Ok(Response::Groups(groups.iter().map(|g| certify(&state.org, g)).collect()))
}

/// Changes a group, if the caller may.
pub async fn update(
    state: &State,
    ctx: &mut ConnCtx,
    group: GroupId,
    update: GroupUpdate,
) -> Result<Response, ErrorBody> {
    let me = ctx.authed()?.clone();
    let user = me.live.user.clone();
    let g = state
        .store
        .group(group.0)
        .await
        .map_err(store_error)?
        .filter(|g| g.has_member(&user) || me.admin)
        .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, format!("you are in no group {group}")))?;
    let may_manage = match &g.kind {
        GroupKindRecord::Org => me.admin,
        GroupKindRecord::Department(path) => {
            return Err(denied(format!(
                "the group of department {path} follows the department; an administrator moves users instead"
            )));
        }
        GroupKindRecord::Discussion(owner) => owner.as_deref() == Some(user.as_str()) || me.admin,
    };
    let owner = match &g.kind {
        GroupKindRecord::Discussion(Some(owner)) => Some(owner.clone()),
        _ => None,
    };
    if g.closed {
        return Err(ErrorBody::new(ErrorCode::Conflict, format!("group {} is closed", g.name)));
    }
    let manager = || {
        if matches!(g.kind, GroupKindRecord::Org) { "an administrator" } else { "its owner" }
    };
    let (change, store_change, removed) = match update {
        GroupUpdate::Leave => {
            if !g.has_member(&user) {
                return Err(ErrorBody::new(ErrorCode::NotFound, format!("you are not in group {}", g.name)));
            }
            if owner.as_deref() == Some(user.as_str()) {
                return Err(ErrorBody::new(ErrorCode::Conflict, "you own this group: close it instead of leaving"));
            }
            if matches!(g.kind, GroupKindRecord::Org) {
                return Err(denied("an org group is left by asking an administrator to remove you"));
            }
            (GroupChange::Left, GroupStoreChange::Remove(vec![user.clone()]), vec![user.clone()])
        }
        _ if !may_manage => return Err(denied(format!("only {} changes group {}", manager(), g.name))),
        GroupUpdate::Add(users) => {
            let users = check_users(&users)?;
            let new: Vec<String> = users.into_iter().filter(|u| !g.has_member(u)).collect();
            if new.is_empty() {
                return Err(invalid("everyone named is already a member"));
            }
            (GroupChange::Added(new.clone()), GroupStoreChange::Add(new), Vec::new())
        }
        GroupUpdate::Remove(users) => {
            let users = check_users(&users)?;
            if owner.as_ref().is_some_and(|o| users.contains(o)) {
                return Err(ErrorBody::new(
                    ErrorCode::Conflict,
                    "the owner cannot be removed; close the group instead",
                ));
            }
            let gone: Vec<String> = users.into_iter().filter(|u| g.has_member(u)).collect();
            if gone.is_empty() {
                return Err(invalid("no one named is a member"));
            }
            (GroupChange::Removed(gone.clone()), GroupStoreChange::Remove(gone.clone()), gone)
        }
        GroupUpdate::Rename(name) => {
            let name = check_name(&name)?;
            (GroupChange::Renamed { from: g.name.clone() }, GroupStoreChange::Rename(name), Vec::new())
        }
        GroupUpdate::Close => (GroupChange::Closed, GroupStoreChange::Close, Vec::new()),
    };
    let after = state
        .store
        .change_group(group.0, store_change, MAX_GROUP_MEMBERS, now_ms() as i64)
        .await
        .map_err(group_error)?;
    tracing::info!(%user, %group, version = after.version, "group changed");
    Ok(Response::Group(announce(state, &user, change, &after, &removed).await))
}

/// Store failures, with the group limits as the caller's mistakes.
fn group_error(e: crate::store::StoreError) -> ErrorBody {
    match e {
        crate::store::StoreError::InvalidInput(m) => invalid(m),
        other => store_error(other),
    }
}
