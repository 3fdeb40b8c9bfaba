//! Administrator operations, shared by the `skein-tracker` admin commands
//! (which work on the store directly, even while a tracker runs) and by
//! admin requests over the control plane.
//!
//! Operations that must end live sessions record an admin event; every
//! tracker on the store polls those events (see `admin_watch.rs`) and closes
//! the affected connections within [`crate::config::TrackerConfig::admin_poll`].

use crate::auth::{PasswordCost, check_password_policy, hash_password};
use crate::clock::now_ms;
use crate::store::{NewUserRecord, Store, StoreError, UserRecord};
use skein_proto::control::NewUser;
use skein_proto::limits::{MAX_TEXT_FIELD, valid_dept_path, valid_user_name};
use skein_proto::{ErrorBody, ErrorCode};

/// Event kind: a user was disabled; end their sessions.
pub const EVENT_USER_DISABLED: &str = "user_disabled";
/// Event kind: a user's sessions were revoked (password change).
pub const EVENT_SESSIONS_REVOKED: &str = "sessions_revoked";
/// Event kind: one device was revoked.
pub const EVENT_DEVICE_REVOKED: &str = "device_revoked";

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A field is invalid; the message names it and says how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

impl From<AdminError> for ErrorBody {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(m) => ErrorBody::new(ErrorCode::InvalidInput, m),
            AdminError::Store(s) => crate::requests::store_error(s),
            AdminError::Auth(a) => ErrorBody::new(ErrorCode::Internal, a.to_string()),
        }
    }
}

fn check_text(field: &str, value: &Option<String>) -> Result<(), AdminError> {
    match value {
        Some(v) if v.len() > MAX_TEXT_FIELD => {
            Err(AdminError::Invalid(format!("{field} is longer than {MAX_TEXT_FIELD} bytes")))
        }
        Some(v) if v.chars().any(char::is_control) => {
            Err(AdminError::Invalid(format!("{field} contains control characters")))
        }
        _ => Ok(()),
    }
}

/// Checks a user name, explaining the rule when it fails.
pub fn check_user_name(name: &str) -> Result<(), AdminError> {
    if valid_user_name(name) {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "invalid user name {name:?}: use 1-64 lowercase letters, digits, '.', '-' or '_', starting with a letter or digit"
        )))
    }
}

/// Checks a department path, explaining the rule when it fails.
pub fn check_dept(path: &str) -> Result<(), AdminError> {
    if valid_dept_path(path) {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "invalid department {path:?}: use names separated by '/', such as Engineering/Backend, without empty parts"
        )))
    }
}

/// Creates a user.
pub async fn add_user(store: &Store, new: NewUser, cost: &PasswordCost) -> Result<UserRecord, AdminError> {
    check_user_name(&new.name)?;
    check_password_policy(&new.password).map_err(AdminError::Invalid)?;
    let display =
        if new.display_name.trim().is_empty() { new.name.clone() } else { new.display_name.trim().to_owned() };
    check_text("display name", &Some(display.clone()))?;
    check_text("title", &new.title)?;
    check_text("email", &new.email)?;
    check_text("phone", &new.phone)?;
    if let Some(d) = &new.department {
        check_dept(d)?;
    }
    let hash = hash_password(new.password, cost.clone()).await?;
    let rec = store
        .add_user(NewUserRecord {
            name: new.name,
            display_name: display,
            password_hash: hash,
            department: new.department,
            title: new.title,
            email: new.email,
            phone: new.phone,
            admin: new.admin,
        })
        .await?;
    Ok(rec)
}

/// Disables or enables a user. Disabling revokes every session and tells
/// running trackers to close the user's connections.
pub async fn set_disabled(store: &Store, name: &str, disabled: bool) -> Result<UserRecord, AdminError> {
    let user = find_user(store, name).await?;
    store.set_disabled(name, disabled).await?;
    if disabled {
        store.revoke_user_sessions(user.id).await?;
        store.record_event(EVENT_USER_DISABLED, user.id, None, now_ms() as i64).await?;
    }
    Ok(user)
}

/// Sets a user's password and revokes their sessions.
pub async fn set_password(
    store: &Store,
    name: &str,
    password: String,
    cost: &PasswordCost,
) -> Result<UserRecord, AdminError> {
    check_password_policy(&password).map_err(AdminError::Invalid)?;
    let user = find_user(store, name).await?;
    let hash = hash_password(password, cost.clone()).await?;
    store.set_password_hash(name, &hash).await?;
    store.revoke_user_sessions(user.id).await?;
    store.record_event(EVENT_SESSIONS_REVOKED, user.id, None, now_ms() as i64).await?;
    Ok(user)
}

/// Creates a department and any missing parents.
pub async fn add_department(store: &Store, path: &str) -> Result<(), AdminError> {
    check_dept(path)?;
    store.add_department(path).await?;
    Ok(())
}

/// Revokes one device: its certificate is refused and its sessions end.
pub async fn revoke_device(store: &Store, name: &str, device: [u8; 16]) -> Result<UserRecord, AdminError> {
    let user = find_user(store, name).await?;
    if !store.revoke_device(user.id, device).await? {
        return Err(StoreError::NotFound(format!("user {name} has no device {}", hex::encode(device))).into());
    }
    store.revoke_device_sessions(user.id, device).await?;
    store.record_event(EVENT_DEVICE_REVOKED, user.id, Some(device), now_ms() as i64).await?;
    Ok(user)
}

async fn find_user(store: &Store, name: &str) -> Result<UserRecord, AdminError> {
    check_user_name(name)?;
    store.user_by_name(name).await?.ok_or_else(|| StoreError::NotFound(format!("no user named {name}")).into())
}
