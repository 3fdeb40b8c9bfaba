//! Administrator operations, shared by the `skein-tracker` admin commands
//! (which work on the store directly, even while a tracker runs) and by
//! admin requests over the control plane.
//!
//! Operations that end access record an admin event in the same
//! transaction; every tracker on the store reads those events (see
//! `admin_watch.rs`: as they commit on PostgreSQL, within
//! [`crate::config::TrackerConfig::admin_poll`] on SQLite) and closes the
//! affected connections, relay access and peer connections.

use crate::auth::check_password_policy;
use crate::clock::now_ms;
use crate::passwords::{PasswordError, Passwords};
use crate::store::{AccessEnd, AdminEvent, DeviceScope, NewUserRecord, Store, StoreError, UserRecord};
use skein_proto::control::NewUser;
use skein_proto::limits::{MAX_TEXT_FIELD, valid_dept_path, valid_user_name};
use skein_proto::{ErrorBody, ErrorCode};

/// Event kind: a user was disabled; end their sessions.
pub const EVENT_USER_DISABLED: &str = "user_disabled";
/// Event kind: a user's sessions were revoked (password change).
pub const EVENT_SESSIONS_REVOKED: &str = "sessions_revoked";
/// Event kind: one device was revoked.
pub const EVENT_DEVICE_REVOKED: &str = "device_revoked";
/// Event kind: one device logged out.
pub const EVENT_SIGNED_OUT: &str = "signed_out";
/// Event kind: an org group was made outside a tracker.
pub const EVENT_GROUP_CREATED: &str = "group_created";
pub use crate::store::EVENT_GROUP_CHANGED;

/// What an operation that may end access did.
#[derive(Debug)]
pub struct AccessChange {
    /// The user concerned, as found before the change.
    pub user: UserRecord,
    /// The admin event recorded, when access ended.
    pub event: Option<AdminEvent>,
}

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
    /// Hashing failed or the hasher is busy.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

impl From<AdminError> for ErrorBody {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(m) => ErrorBody::new(ErrorCode::InvalidInput, m),
            AdminError::Store(s) => crate::requests::store_error(s),
            AdminError::Password(p) => crate::requests::password_error(p),
        }
    }
}

/// Checks an optional text field against the length limit, naming it.
pub fn check_text(field: &str, value: &Option<String>) -> Result<(), AdminError> {
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
pub async fn add_user(store: &Store, new: NewUser, passwords: &Passwords) -> Result<UserRecord, AdminError> {
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
    let hash = passwords.hash(new.password).await?;
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

/// Disables or enables a user. Disabling revokes every session, ends every
/// device certificate and tells running trackers to close the user's
/// connections and their peers to drop the user's devices.
pub async fn set_disabled(store: &Store, name: &str, disabled: bool) -> Result<AccessChange, AdminError> {
    let user = find_user(store, name).await?;
    if !disabled {
        store.set_disabled(name, false).await?;
        return Ok(AccessChange { user, event: None });
    }
    let mut end = AccessEnd::new(user.id, DeviceScope::All, EVENT_USER_DISABLED, now_ms() as i64);
    end.disable = true;
    let event = Some(store.end_access(end).await?);
    Ok(AccessChange { user, event })
}

/// Sets a user's password (an administrator's reset): every session and
/// device certificate of the user ends.
pub async fn set_password(
    store: &Store,
    name: &str,
    password: String,
    passwords: &Passwords,
) -> Result<AccessChange, AdminError> {
    check_password_policy(&password).map_err(AdminError::Invalid)?;
    let user = find_user(store, name).await?;
    let mut end = AccessEnd::new(user.id, DeviceScope::All, EVENT_SESSIONS_REVOKED, now_ms() as i64);
    end.password_hash = Some(passwords.hash(password).await?);
    let event = Some(store.end_access(end).await?);
    Ok(AccessChange { user, event })
}

/// Creates a department and any missing parents.
pub async fn add_department(store: &Store, path: &str) -> Result<(), AdminError> {
    check_dept(path)?;
    store.add_department(path).await?;
    Ok(())
}

/// Revokes one device for good: its certificate is refused, its sessions
/// end and it can never log in again.
pub async fn revoke_device(store: &Store, name: &str, device: [u8; 16]) -> Result<AccessChange, AdminError> {
    let user = find_user(store, name).await?;
    let mut end = AccessEnd::new(user.id, DeviceScope::One(device), EVENT_DEVICE_REVOKED, now_ms() as i64);
    end.revoke_device = true;
    let event = store.end_access(end).await.map_err(|e| match e {
        StoreError::NotFound(_) => StoreError::NotFound(format!("user {name} has no device {}", hex::encode(device))),
        other => other,
    })?;
    Ok(AccessChange { user, event: Some(event) })
}

async fn find_user(store: &Store, name: &str) -> Result<UserRecord, AdminError> {
    check_user_name(name)?;
    store.user_by_name(name).await?.ok_or_else(|| StoreError::NotFound(format!("no user named {name}")).into())
}
