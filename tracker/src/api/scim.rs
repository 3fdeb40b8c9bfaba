//! Provisioning from an identity provider: a SCIM 2.0 subset (RFC 7643,
//! RFC 7644) at `/scim/v2`, for an app with the `admin` scope.
//!
//! - **Users**: list (with `filter=userName eq "…"`, `startIndex`,
//!   `count`), read, create, replace (`PUT`) and change (`PATCH`, the
//!   operations identity providers send: `replace`/`add` with or without a
//!   path, `remove`). `active: false` deactivates the user as `user
//!   disable` does: every session and device certificate ends at once. A
//!   user is never deleted (`DELETE` is refused, 405): their history stays
//!   theirs; deactivate instead.
//! - **Groups are departments**: `displayName` is the department's path
//!   (`Engineering/Backend`) and its members the users directly in it.
//!   List, read, create (with members), `PATCH` members in (moving each
//!   user into the department), out, or replaced, and `PUT` the members.
//!
//! The user's id is their row id; `userName` is the Skein user name (1 to
//! 64 lowercase letters, digits, `.`, `-` or `_`), which identity
//! providers map from an attribute. A user created without a `password`
//! gets a random one that nobody knows, until an administrator sets one
//! (`skein-tracker user passwd`). Errors are SCIM error bodies
//! (`application/scim+json`) with the status, a `scimType` where RFC 7644
//! has one, and a `detail` that says what to do. The discovery endpoints
//! (`/ResourceTypes`, `/Schemas`) are in [`super::scim_schemas`].

use super::scim_schemas as discovery;
use super::{Api, Caller};
use crate::admin::{self, AdminError};
use crate::store::{DeptRecord, StoreError, UserRecord};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use skein_proto::control::NewUser;
use std::sync::Arc;

pub(super) const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(super) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(super) const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(super) const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const CONFIG: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// Most resources in one page.
pub const MAX_COUNT: usize = 500;
/// SCIM's media type.
const SCIM_JSON: &str = "application/scim+json";

/// The routes, under `/scim/v2`; the caller adds authentication.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/scim/v2/ServiceProviderConfig", get(config))
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route("/scim/v2/Users/{id}", get(get_user).put(replace_user).patch(patch_user).delete(no_delete))
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route("/scim/v2/Groups/{id}", get(get_group).put(replace_group).patch(patch_group).delete(no_delete))
        .route("/scim/v2/ResourceTypes", get(discovery::list_resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(discovery::get_resource_type))
        .route("/scim/v2/Schemas", get(discovery::list_schemas))
        .route("/scim/v2/Schemas/{id}", get(discovery::get_schema))
        .route("/scim/v2/{*rest}", axum::routing::any(discovery::unknown))
}

/// A SCIM error (RFC 7644 §3.12).
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    pub(super) fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self { status, scim_type, detail: detail.into() }
    }
    fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
    }
    fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, format!("no {what} with id {id:?}"))
    }
}

/// A refusal of the API's own checks (a missing token, the rate limit) in
/// SCIM's form, for the routes under `/scim/v2`.
pub fn refusal(p: super::Problem) -> Response {
    let wait = p.retry_after;
    let mut res = ScimError::new(p.status, None, p.detail).into_response();
    if let Some(v) = wait.and_then(|w| header::HeaderValue::from_str(&w.as_secs().to_string()).ok()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({"schemas": [ERROR], "status": self.status.as_u16().to_string(), "detail": self.detail});
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        (self.status, [(header::CONTENT_TYPE, SCIM_JSON)], body.to_string()).into_response()
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, None, m),
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, Some("uniqueness"), m),
            StoreError::InvalidInput(m) => Self::invalid(m),
            other => {
                tracing::warn!(error = %other, "SCIM: the store failed");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, None, "the store does not answer; try again shortly")
            }
        }
    }
}

impl From<AdminError> for ScimError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(m) => Self::invalid(m),
            AdminError::Store(s) => s.into(),
            AdminError::Password(p) => Self::new(StatusCode::SERVICE_UNAVAILABLE, None, p.to_string()),
        }
    }
}

fn query_error(e: axum::extract::rejection::QueryRejection) -> ScimError {
    ScimError::new(
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
        format!("the query string is malformed: {}", e.body_text()),
    )
}

fn body_error(e: JsonRejection) -> ScimError {
    ScimError::new(StatusCode::BAD_REQUEST, Some("invalidSyntax"), format!("the body is not JSON: {}", e.body_text()))
}

/// A SCIM answer: `status`, the media type, and `body`.
pub(super) fn scim(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, SCIM_JSON)], body.to_string()).into_response()
}

pub(super) type Answer = Result<Response, ScimError>;

pub(super) fn admin_only(caller: &Caller) -> Result<(), ScimError> {
    caller.need("admin").map_err(|p| ScimError::new(StatusCode::FORBIDDEN, None, p.detail))
}

fn rfc3339(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn user_json(u: &UserRecord) -> Value {
    let mut v = json!({
        "schemas": [USER, ENTERPRISE],
        "id": u.id.to_string(),
        "userName": u.name,
        "displayName": u.display_name,
        "name": {"formatted": u.display_name},
        "active": !u.disabled,
        "meta": {
            "resourceType": "User",
            "created": rfc3339(u.created_at_ms),
            "lastModified": rfc3339(u.updated_at_ms),
            "location": format!("/scim/v2/Users/{}", u.id),
        },
    });
    if let Some(t) = &u.title {
        v["title"] = json!(t);
    }
    if let Some(e) = &u.email {
        v["emails"] = json!([{"value": e, "type": "work", "primary": true}]);
    }
    if let Some(p) = &u.phone {
        v["phoneNumbers"] = json!([{"value": p, "type": "work"}]);
    }
    if let Some(d) = &u.department {
        v[ENTERPRISE] = json!({"department": d});
    }
    v
}

fn group_json(d: &DeptRecord, members: &[&UserRecord]) -> Value {
    json!({
        "schemas": [GROUP],
        "id": d.id.to_string(),
        "displayName": d.path,
        "members": members.iter().map(|u| json!({"value": u.id.to_string(), "display": u.name, "$ref": format!("/scim/v2/Users/{}", u.id)})).collect::<Vec<_>>(),
        "meta": {"resourceType": "Group", "location": format!("/scim/v2/Groups/{}", d.id)},
    })
}

fn list_json(resources: Vec<Value>, total: usize, start: usize) -> Value {
    json!({"schemas": [LIST], "totalResults": total, "startIndex": start, "itemsPerPage": resources.len(), "Resources": resources})
}

async fn config(Extension(caller): Extension<Caller>) -> Answer {
    admin_only(&caller)?;
    Ok(scim(
        StatusCode::OK,
        json!({
            "schemas": [CONFIG],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_COUNT},
            "changePassword": {"supported": true},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{"type": "oauthbearertoken", "name": "Bearer token", "description": "An app's token with the admin scope (skein-tracker app create NAME --scopes admin)"}],
        }),
    ))
}

/// `?filter=…&startIndex=…&count=…`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    filter: Option<String>,
    start_index: Option<usize>,
    count: Option<usize>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

impl ListQuery {
    fn projection(&self) -> discovery::Projection {
        discovery::Projection {
            attributes: self.attributes.clone(),
            excluded_attributes: self.excluded_attributes.clone(),
        }
    }
}

/// A resource as the query asks for it.
fn projected(mut v: Value, p: &discovery::Projection) -> Value {
    p.apply(&mut v);
    v
}

/// `ATTR eq "VALUE"`, the one filter form supported: (attribute, value).
fn parse_filter(filter: &str, allowed: &[&str]) -> Result<(String, String), ScimError> {
    let bad = || {
        ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidFilter"),
            format!("filter {filter:?} is not supported: use {} eq \"VALUE\"", allowed.join(" or ")),
        )
    };
    let mut parts = filter.trim().splitn(3, ' ');
    let (attr, op, value) =
        (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
    let value = value.trim().strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or_else(bad)?;
    let attr = allowed.iter().find(|a| a.eq_ignore_ascii_case(attr)).ok_or_else(bad)?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(bad());
    }
    Ok(((*attr).to_owned(), value.replace("\\\"", "\"")))
}

/// One page of `items` (1-based `startIndex`).
fn page<T>(items: Vec<T>, q: &ListQuery) -> (Vec<T>, usize, usize) {
    let total = items.len();
    let start = q.start_index.unwrap_or(1).max(1);
    let count = q.count.unwrap_or(100).min(MAX_COUNT);
    (items.into_iter().skip(start - 1).take(count).collect(), total, start)
}

async fn list_users(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Query(q) = q.map_err(query_error)?;
    let mut users = api.state.store.list_users().await?;
    if let Some(f) = &q.filter {
        let (_, value) = parse_filter(f, &["userName"])?;
        users.retain(|u| u.name.eq_ignore_ascii_case(&value));
    }
    let (users, total, start) = page(users, &q);
    let p = q.projection();
    Ok(scim(StatusCode::OK, list_json(users.iter().map(|u| projected(user_json(u), &p)).collect(), total, start)))
}

async fn user_by_id(api: &Api, id: &str) -> Result<UserRecord, ScimError> {
    let n: i64 = id.parse().map_err(|_| ScimError::not_found("user", id))?;
    api.state.store.user_by_id(n).await?.ok_or_else(|| ScimError::not_found("user", id))
}

async fn get_user(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: Result<Query<discovery::Projection>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Query(p) = q.map_err(query_error)?;
    Ok(scim(StatusCode::OK, projected(user_json(&user_by_id(&api, &id).await?), &p)))
}

/// What a SCIM user body sets, each `None` when it does not say.
#[derive(Debug, Default)]
struct Fields {
    display_name: Option<String>,
    title: Option<Option<String>>,
    email: Option<Option<String>>,
    phone: Option<Option<String>>,
    department: Option<Option<String>>,
    active: Option<bool>,
    password: Option<String>,
}

fn text(v: &Value, what: &str) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_owned())),
        other => Err(ScimError::invalid(format!("{what} must be a string, not {other}"))),
    }
}

/// `true`, `false`, or the strings some providers send for them.
fn boolean(v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(ScimError::invalid(format!("active must be true or false, not {other}"))),
    }
}

/// The first `value` of a multi-valued attribute (`emails`, `phoneNumbers`),
/// the primary one when one is marked.
fn first_value(v: &Value, what: &str) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let chosen = items.iter().find(|i| i["primary"] == true).or_else(|| items.first());
            chosen.map_or(Ok(None), |i| text(&i["value"], what))
        }
        other => text(other, what),
    }
}

impl Fields {
    /// Takes one attribute, by its SCIM path (case-insensitive).
    fn set(&mut self, path: &str, v: &Value) -> Result<(), ScimError> {
        let p = path.to_ascii_lowercase();
        let dept_path = format!("{}:department", ENTERPRISE.to_ascii_lowercase());
        match p.as_str() {
            "displayname" | "name.formatted" => self.display_name = text(v, "displayName")?,
            "name" => self.display_name = text(&v["formatted"], "name.formatted")?.or(self.display_name.take()),
            "title" => self.title = Some(text(v, "title")?),
            "emails" => self.email = Some(first_value(v, "emails")?),
            "phonenumbers" => self.phone = Some(first_value(v, "phoneNumbers")?),
            "active" => self.active = Some(boolean(v)?),
            "password" => self.password = text(v, "password")?,
            p if p.starts_with("emails[") => self.email = Some(text(v, "emails")?),
            p if p.starts_with("phonenumbers[") => self.phone = Some(text(v, "phoneNumbers")?),
            p if p == dept_path || p == "department" => self.department = Some(text(v, "department")?),
            // The whole extension: removed (null) or set.
            p if p == ENTERPRISE.to_ascii_lowercase() && v.is_null() => self.department = Some(None),
            p if p == ENTERPRISE.to_ascii_lowercase() => {
                if let Some(d) = v.get("department") {
                    self.department = Some(text(d, "department")?);
                }
            }
            // Read-only or unknown to Skein: ignored, as RFC 7644 allows.
            _ => {}
        }
        Ok(())
    }

    /// Every attribute of a whole user body.
    fn from_body(body: &Value) -> Result<Fields, ScimError> {
        let mut f = Fields::default();
        let Some(obj) = body.as_object() else {
            return Err(ScimError::invalid("the body must be a JSON object"));
        };
        for (k, v) in obj {
            f.set(k, v)?;
        }
        Ok(f)
    }
}

/// Applies `f` to the user `u`: profile, department, password, and last
/// whether they are active (deactivating ends their sessions at once).
async fn apply(api: &Api, u: &UserRecord, f: Fields) -> Result<(), ScimError> {
    let store = &api.state.store;
    let display = f.display_name.clone().unwrap_or_else(|| u.display_name.clone());
    let title = f.title.clone().unwrap_or_else(|| u.title.clone());
    let email = f.email.clone().unwrap_or_else(|| u.email.clone());
    let phone = f.phone.clone().unwrap_or_else(|| u.phone.clone());
    for (field, value) in
        [("displayName", &Some(display.clone())), ("title", &title), ("emails", &email), ("phoneNumbers", &phone)]
    {
        admin::check_text(field, value)?;
    }
    store.set_profile(&u.name, &display, title.as_deref(), email.as_deref(), phone.as_deref()).await?;
    if let Some(dept) = f.department.filter(|d| *d != u.department) {
        if let Some(d) = &dept {
            admin::check_dept(d)?;
        }
        store.set_user_department(&u.name, dept.as_deref()).await?;
    }
    if let Some(password) = f.password {
        let change = admin::set_password(store, &u.name, password, &api.state.passwords).await?;
        end_access(api, change).await?;
    }
    if let Some(active) = f.active.filter(|a| *a == u.disabled) {
        let change = admin::set_disabled(store, &u.name, !active).await?;
        end_access(api, change).await?;
    }
    Ok(())
}

/// Ends the sessions and connections a change ended, here and now (other
/// trackers hear of it from the store).
async fn end_access(api: &Api, change: admin::AccessChange) -> Result<(), ScimError> {
    if let Some(event) = change.event {
        let s = &api.state;
        crate::admin_watch::apply(&s.store, &s.hub, &s.relay, &event).await?;
    }
    Ok(())
}

async fn create_user(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Json(body) = body.map_err(body_error)?;
    let name = text(&body["userName"], "userName")?.ok_or_else(|| ScimError::invalid("userName is required"))?;
    let name = name.to_lowercase();
    admin::check_user_name(&name).map_err(|e| {
        ScimError::invalid(format!(
            "userName {name:?} is not a Skein user name ({e}); map it from an attribute that is one"
        ))
    })?;
    let mut f = Fields::from_body(&body)?;
    // Without a password the account gets one nobody knows, until an
    // administrator sets one.
    let password = f.password.take().unwrap_or_else(|| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
    });
    let new = NewUser {
        name: name.clone(),
        display_name: f.display_name.clone().unwrap_or_else(|| name.clone()),
        password,
        department: f.department.clone().flatten(),
        title: f.title.clone().flatten(),
        email: f.email.clone().flatten(),
        phone: f.phone.clone().flatten(),
        admin: false,
    };
    let made = admin::add_user(&api.state.store, new, &api.state.passwords).await.map_err(|e| match e {
        AdminError::Store(StoreError::Conflict(_)) => {
            ScimError::new(StatusCode::CONFLICT, Some("uniqueness"), format!("a user named {name:?} exists already"))
        }
        other => other.into(),
    })?;
    if f.active == Some(false) {
        admin::set_disabled(&api.state.store, &made.name, true).await?;
    }
    let u =
        api.state.store.user_by_id(made.id).await?.ok_or_else(|| ScimError::not_found("user", &made.id.to_string()))?;
    let mut r = scim(StatusCode::CREATED, user_json(&u));
    if let Ok(v) = format!("/scim/v2/Users/{}", u.id).parse() {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn replace_user(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Json(body) = body.map_err(body_error)?;
    let u = user_by_id(&api, &id).await?;
    if let Some(n) = body["userName"].as_str().filter(|n| !n.eq_ignore_ascii_case(&u.name)) {
        return Err(ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("mutability"),
            format!("userName cannot change ({} to {n}): a user name is how colleagues and history know them", u.name),
        ));
    }
    let mut f = Fields::from_body(&body)?;
    // A replacement says everything: what it leaves out is cleared.
    f.title.get_or_insert(None);
    f.email.get_or_insert(None);
    f.phone.get_or_insert(None);
    f.department.get_or_insert(None);
    apply(&api, &u, f).await?;
    Ok(scim(StatusCode::OK, user_json(&user_by_id(&api, &id).await?)))
}

async fn patch_user(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Json(body) = body.map_err(body_error)?;
    let u = user_by_id(&api, &id).await?;
    let mut f = Fields::default();
    for op in operations(&body)? {
        let (kind, path, value) = op;
        match (kind.as_str(), path) {
            ("remove", Some(p)) => f.set(&p, &Value::Null)?,
            ("remove", None) => {
                return Err(ScimError::new(StatusCode::BAD_REQUEST, Some("noTarget"), "remove needs a path"));
            }
            (_, Some(p)) => f.set(&p, &value)?,
            (_, None) => {
                let Some(obj) = value.as_object() else {
                    return Err(ScimError::invalid("an operation without a path needs an object of attributes"));
                };
                for (k, v) in obj {
                    f.set(k, v)?;
                }
            }
        }
    }
    apply(&api, &u, f).await?;
    Ok(scim(StatusCode::OK, user_json(&user_by_id(&api, &id).await?)))
}

/// A PatchOp body's operations: (op in lower case, path, value).
fn operations(body: &Value) -> Result<Vec<(String, Option<String>, Value)>, ScimError> {
    let ops = body["Operations"].as_array().ok_or_else(|| ScimError::invalid("a PATCH needs Operations: [...]"))?;
    ops.iter()
        .map(|o| {
            let op = o["op"].as_str().map(str::to_ascii_lowercase).unwrap_or_default();
            if !matches!(op.as_str(), "add" | "replace" | "remove") {
                return Err(ScimError::invalid(format!("op must be add, replace or remove, not {:?}", o["op"])));
            }
            Ok((op, o["path"].as_str().map(str::to_owned), o["value"].clone()))
        })
        .collect()
}

async fn no_delete(Extension(caller): Extension<Caller>) -> Answer {
    admin_only(&caller)?;
    Err(ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "Skein keeps users and departments so that history stays attributable: deactivate a user with \
         PATCH active=false, and move users out of a department instead",
    ))
}

async fn list_groups(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Query(q) = q.map_err(query_error)?;
    let store = &api.state.store;
    let mut depts = store.list_departments().await?;
    if let Some(f) = &q.filter {
        let (_, value) = parse_filter(f, &["displayName"])?;
        let value = value.trim_matches('/').to_owned();
        depts.retain(|d| d.path.eq_ignore_ascii_case(&value));
    }
    let users = store.list_users().await?;
    let (depts, total, start) = page(depts, &q);
    let p = q.projection();
    let resources = depts.iter().map(|d| projected(group_json(d, &members(&users, d)), &p)).collect();
    Ok(scim(StatusCode::OK, list_json(resources, total, start)))
}

fn members<'u>(users: &'u [UserRecord], d: &DeptRecord) -> Vec<&'u UserRecord> {
    users.iter().filter(|u| u.department.as_deref() == Some(d.path.as_str())).collect()
}

async fn dept_by_id(api: &Api, id: &str) -> Result<DeptRecord, ScimError> {
    let n: i64 = id.parse().map_err(|_| ScimError::not_found("group", id))?;
    let all = api.state.store.list_departments().await?;
    all.into_iter().find(|d| d.id == n).ok_or_else(|| ScimError::not_found("group", id))
}

async fn group_answer(api: &Api, d: &DeptRecord, status: StatusCode) -> Answer {
    let users = api.state.store.list_users().await?;
    Ok(scim(status, group_json(d, &members(&users, d))))
}

async fn get_group(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: Result<Query<discovery::Projection>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Query(p) = q.map_err(query_error)?;
    let d = dept_by_id(&api, &id).await?;
    let users = api.state.store.list_users().await?;
    Ok(scim(StatusCode::OK, projected(group_json(&d, &members(&users, &d)), &p)))
}

/// The user ids of a `members` value: `[{"value": "12"}, …]`.
fn member_ids(v: &Value) -> Result<Vec<String>, ScimError> {
    let items = match v {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![v.clone()],
        Value::Null => Vec::new(),
        other => return Err(ScimError::invalid(format!("members must be a list of {{\"value\": ID}}, not {other}"))),
    };
    items
        .iter()
        .map(|m| {
            m["value"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| ScimError::invalid("each member needs a value: the user's id"))
        })
        .collect()
}

/// Moves the users `ids` into the department `path` (or out of it, to
/// none, when `path` is `None` and they are in `from`).
async fn move_members(api: &Api, ids: &[String], path: Option<&str>, from: &str) -> Result<(), ScimError> {
    for id in ids {
        let u = user_by_id(api, id).await?;
        if path.is_none() && u.department.as_deref() != Some(from) {
            continue;
        }
        api.state.store.set_user_department(&u.name, path).await?;
    }
    Ok(())
}

async fn create_group(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Json(body) = body.map_err(body_error)?;
    let path = text(&body["displayName"], "displayName")?.ok_or_else(|| {
        ScimError::invalid("displayName is required: the department's path, such as Engineering/Backend")
    })?;
    let path = path.trim_matches('/').to_owned();
    if api.state.store.department_by_path(&path).await?.is_some() {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("the department {path:?} exists already"),
        ));
    }
    admin::add_department(&api.state.store, &path).await?;
    move_members(&api, &member_ids(&body["members"])?, Some(&path), &path).await?;
    let d = api.state.store.department_by_path(&path).await?.ok_or_else(|| ScimError::not_found("group", &path))?;
    group_answer(&api, &d, StatusCode::CREATED).await
}

/// A department's `displayName` may be sent again, not changed.
fn same_path(d: &DeptRecord, name: &Value) -> Result<(), ScimError> {
    if name.as_str().is_some_and(|v| v.trim_matches('/').eq_ignore_ascii_case(&d.path)) {
        return Ok(());
    }
    Err(ScimError::new(
        StatusCode::BAD_REQUEST,
        Some("mutability"),
        "a department's path cannot change here; make the new department and move its members",
    ))
}

/// Makes `ids` the department's direct members: those listed are moved in,
/// the others out (to no department).
async fn set_members(api: &Api, d: &DeptRecord, ids: &[String]) -> Result<(), ScimError> {
    move_members(api, ids, Some(&d.path), &d.path).await?;
    let users = api.state.store.list_users().await?;
    let out: Vec<String> = members(&users, d).iter().map(|u| u.id.to_string()).filter(|id| !ids.contains(id)).collect();
    move_members(api, &out, None, &d.path).await
}

/// `PUT /Groups/{id}`: the department's members become those listed (its
/// path stays as it is).
async fn replace_group(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Json(body) = body.map_err(body_error)?;
    let d = dept_by_id(&api, &id).await?;
    same_path(&d, &body["displayName"])?;
    let ids = if body["members"].is_null() { Vec::new() } else { member_ids(&body["members"])? };
    set_members(&api, &d, &ids).await?;
    group_answer(&api, &d, StatusCode::OK).await
}

async fn patch_group(
    State(api): State<Arc<Api>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer {
    admin_only(&caller)?;
    let Json(body) = body.map_err(body_error)?;
    let d = dept_by_id(&api, &id).await?;
    for (op, path, value) in operations(&body)? {
        let path = path.unwrap_or_default();
        let lower = path.to_ascii_lowercase();
        match (op.as_str(), lower.as_str()) {
            ("add", "members") => move_members(&api, &member_ids(&value)?, Some(&d.path), &d.path).await?,
            ("replace", "members") => set_members(&api, &d, &member_ids(&value)?).await?,
            // Without a value: every member (RFC 7644 §3.5.2.2).
            ("remove", "members") if value.is_null() => set_members(&api, &d, &[]).await?,
            ("remove", "members") => move_members(&api, &member_ids(&value)?, None, &d.path).await?,
            // `members[value eq "12"]`, as some providers name one member.
            ("remove", p) if p.starts_with("members[value eq ") => {
                let id = path.split('"').nth(1).unwrap_or_default().to_owned();
                move_members(&api, &[id], None, &d.path).await?;
            }
            (_, "displayname") => same_path(&d, &value)?,
            _ => {
                return Err(ScimError::new(
                    StatusCode::BAD_REQUEST,
                    Some("invalidPath"),
                    format!("cannot {op} {path:?} of a group"),
                ));
            }
        }
    }
    group_answer(&api, &d, StatusCode::OK).await
}
