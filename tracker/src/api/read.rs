//! Reading through the API (scope `presence`): the presence of one or
//! many users, and the directory.

use super::{Api, Caller, Problem};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Users asked about at once, at most.
pub const MAX_USERS: usize = 100;
/// Directory entries answered at once, at most.
pub const MAX_PAGE: u32 = 200;

/// `?users=alice,bob`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// User names, comma-separated (at most 100).
    #[param(min_length = 1)]
    users: Option<String>,
}

/// One user's presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct Presence {
    /// The user name.
    user: String,
    /// `online`, `away`, `busy` or `offline`.
    status: &'static str,
    /// The status note of the device that set the status.
    note: Option<String>,
    /// Devices connected now.
    devices: u16,
    /// When a device of the user was last connected, ms since the Unix epoch (0: never).
    last_seen_ms: u64,
}

/// Each user's presence, combined over their devices on every tracker.
#[utoipa::path(
    get,
    path = "/v1/presence",
    tag = "read",
    params(UsersQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Each user's presence, in the order asked", body = [Presence]),
        (status = 400, description = "No users named, or too many", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No live app's token", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The app lacks the presence scope", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The app's rate limit", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The store does not answer", body = super::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn presence(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Json<Vec<Presence>>, Problem> {
    let Query(q) = q?;
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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    /// Matches the user name, display name, title or e-mail.
    q: Option<String>,
    /// A department path, such as `Engineering/Backend`.
    dept: Option<String>,
    /// At most this many (1 to 200; 50 when left out).
    limit: Option<u32>,
    /// Skip this many.
    offset: Option<u32>,
}

/// One person of the directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct Person {
    /// The user name.
    name: String,
    /// The full name.
    display_name: String,
    /// The department path.
    department: Option<String>,
    /// The job title.
    title: Option<String>,
    /// The e-mail address.
    email: Option<String>,
    /// The phone number.
    phone: Option<String>,
    /// `online`, `away`, `busy` or `offline`.
    status: &'static str,
}

/// A page of the directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page {
    /// The people of this page, by name.
    users: Vec<Person>,
    /// How many match in all.
    total: i64,
}

/// The organisation's enabled users matching the text and department, by name.
#[utoipa::path(
    get,
    path = "/v1/directory",
    tag = "read",
    params(DirectoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the directory", body = Page),
        (status = 400, description = "A malformed query", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No live app's token", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The app lacks the presence scope", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The app's rate limit", body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The store does not answer", body = super::problem::ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn directory(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<DirectoryQuery>, QueryRejection>,
) -> Result<Json<Page>, Problem> {
    caller.need("presence")?;
    let Query(q) = q?;
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
