//! Reading through the API (scope `presence`): the presence of one or
//! many users, and the directory.

use super::{Api, Caller, Problem};
use axum::Json;
use axum::extract::{Extension, Query, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Users asked about at once, at most.
pub const MAX_USERS: usize = 100;
/// Directory entries answered at once, at most.
pub const MAX_PAGE: u32 = 200;

/// `?users=alice,bob`.
#[derive(Debug, Deserialize)]
pub struct UsersQuery {
    users: Option<String>,
}

/// One user's presence.
#[derive(Debug, Serialize)]
pub struct Presence {
    user: String,
    status: &'static str,
    note: Option<String>,
    devices: u16,
    last_seen_ms: u64,
}

/// `GET /v1/presence?users=alice,bob`: each user's presence, combined over
/// their devices on every tracker.
pub async fn presence(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<UsersQuery>,
) -> Result<Json<Vec<Presence>>, Problem> {
    caller.need("presence")?;
    let users: Vec<String> = q
        .users
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(|u| u.trim().to_lowercase())
        .filter(|u| !u.is_empty())
        .collect();
    if users.is_empty() {
        return Err(Problem::bad_request("name the users: ?users=alice,bob"));
    }
    if users.len() > MAX_USERS {
        return Err(Problem::bad_request(format!("at most {MAX_USERS} users at once; {} were named", users.len())));
    }
    let mut unknown = Vec::new();
    for u in &users {
        if api.state.store.user_by_name(u).await?.is_none() {
            unknown.push(u.as_str());
        }
    }
    if !unknown.is_empty() {
        return Err(Problem::not_found(format!("no such user: {}", unknown.join(", "))));
    }
    let entries = api.state.hub.entries(users).await;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| Presence {
                user: e.user,
                status: e.status.as_str(),
                note: e.note,
                devices: e.devices,
                last_seen_ms: e.last_seen_ms,
            })
            .collect(),
    ))
}

/// `?q=TEXT&dept=PATH&limit=N&offset=N`.
#[derive(Debug, Deserialize)]
pub struct DirectoryQuery {
    q: Option<String>,
    dept: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// One person of the directory.
#[derive(Debug, Serialize)]
pub struct Person {
    name: String,
    display_name: String,
    department: Option<String>,
    title: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    status: &'static str,
}

/// A page of the directory.
#[derive(Debug, Serialize)]
pub struct Page {
    users: Vec<Person>,
    total: i64,
}

/// `GET /v1/directory?q=…`: the organisation's enabled users matching the
/// text (name, display name, title or e-mail) and department, by name.
pub async fn directory(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DirectoryQuery>,
) -> Result<Json<Page>, Problem> {
    caller.need("presence")?;
    if q.q.as_ref().is_some_and(|t| t.len() > 256) {
        return Err(Problem::bad_request("the search text is at most 256 bytes"));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let (users, total) = api
        .state
        .store
        .search_users(text, q.dept.as_deref(), false, i64::from(q.offset.unwrap_or(0)), i64::from(limit))
        .await?;
    let presence = api.state.hub.entries(users.iter().map(|u| u.name.clone()).collect()).await;
    let users = users
        .into_iter()
        .zip(presence)
        .map(|(u, p)| Person {
            name: u.name,
            display_name: u.display_name,
            department: u.department,
            title: u.title,
            email: u.email,
            phone: u.phone,
            status: p.status.as_str(),
        })
        .collect();
    Ok(Json(Page { users, total }))
}
