//! Apps of the HTTP API and their tokens: what `skein-tracker app create`,
//! `app list` and `app revoke` do, and how a presented token is checked.
//!
//! A token is `skn_` and 43 characters of URL-safe base64 (32 random
//! bytes). The store keeps only its BLAKE3 hash, so a copy of the
//! database cannot call the API; the token is printed once, at creation.
//!
//! An incoming webhook (`skein-tracker hook create`) is an app too: its
//! token is the secret in its URL, its only scope is [`HOOK_SCOPE`] (which
//! opens no `/v1` route), and it posts only where it was made to post.

use crate::store::{AppRecord, Store, StoreError};
use base64::Engine;

/// What an app may do.
pub const SCOPES: [&str; 3] = ["send", "presence", "admin"];
/// Largest icon accepted, in bytes.
pub const MAX_ICON: usize = 256 * 1024;
/// The one scope of an incoming webhook.
pub const HOOK_SCOPE: &str = "hook";
/// The name a webhook gets when none is given (then "Webhook 2", …).
pub const HOOK_NAME: &str = "Webhook";
/// What every token starts with, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "skn_";

/// Why an app could not be created or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The name, a scope or the icon is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The store refused (a name in use, no such app) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new app and the token to give it, shown this once.
#[derive(Debug)]
pub struct Created {
    /// The app.
    pub app: AppRecord,
    /// Its bearer token.
    pub token: String,
}

/// The BLAKE3 hash of a token, as the store keeps it.
pub fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Parses `send,presence` into scopes, naming one that does not exist.
pub fn parse_scopes(text: &str) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_lowercase();
        if !SCOPES.contains(&word.as_str()) {
            return Err(format!("unknown scope {word:?}: the scopes are {}", SCOPES.join(", ")));
        }
        if !scopes.contains(&word) {
            scopes.push(word);
        }
    }
    if scopes.is_empty() {
        return Err(format!("no scope given: name one or more of {}", SCOPES.join(", ")));
    }
    Ok(scopes)
}

/// Checks an app's name: what users see beside what it posts.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        && name.trim() == name;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid app name {name:?}: 1 to 64 letters, digits, spaces, '-', '_' or '.', not starting or ending with a space"
        ))
    }
}

/// Creates an app with `scopes` and an optional PNG `icon`.
pub async fn create(
    store: &Store,
    name: &str,
    scopes: &[String],
    icon: Option<&[u8]>,
    now_ms: i64,
) -> Result<Created, AppError> {
    create_with(store, name, scopes, icon, None, now_ms).await
}

/// Creates an incoming webhook that posts to `to` (a user, `#group` or
/// `dept:/path`, which must exist), named `name` or else the first free
/// of "Webhook", "Webhook 2", …
pub async fn create_hook(
    store: &Store,
    name: Option<&str>,
    to: &str,
    icon: Option<&[u8]>,
    now_ms: i64,
) -> Result<Created, AppError> {
    crate::api::messages::recipients(store, to).await.map_err(|p| AppError::Invalid(p.detail))?;
    let scopes = [HOOK_SCOPE.to_owned()];
    if let Some(name) = name {
        return create_with(store, name, &scopes, icon, Some(to.trim()), now_ms).await;
    }
    for n in 1..=100 {
        let name = if n == 1 { HOOK_NAME.to_owned() } else { format!("{HOOK_NAME} {n}") };
        match create_with(store, &name, &scopes, icon, Some(to.trim()), now_ms).await {
            Err(AppError::Store(StoreError::Conflict(_))) => continue,
            other => return other,
        }
    }
    Err(AppError::Invalid("name the webhook: --name NAME".into()))
}

async fn create_with(
    store: &Store,
    name: &str,
    scopes: &[String],
    icon: Option<&[u8]>,
    hook_to: Option<&str>,
    now_ms: i64,
) -> Result<Created, AppError> {
    check_name(name).map_err(AppError::Invalid)?;
    if let Some(icon) = icon {
        if icon.len() > MAX_ICON {
            return Err(AppError::Invalid(format!(
                "the icon is {} KiB; at most {} KiB is taken",
                icon.len() / 1024,
                MAX_ICON / 1024
            )));
        }
        if !icon.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(AppError::Invalid("the icon is not a PNG image; give a .png file".into()));
        }
    }
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    let token = format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let app = store.create_app(name, &token_hash(&token), scopes, icon, hook_to, now_ms).await?;
    Ok(Created { app, token })
}

/// The app `token` belongs to, if it is one of a live app.
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<AppRecord>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    store.app_by_token(&token_hash(token)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &std::path::Path) -> Store {
        Store::open(&crate::config::sqlite_url(dir)).await.expect("store")
    }

    #[test]
    fn scopes_are_checked_and_named() {
        assert_eq!(parse_scopes("send, Presence,send").expect("scopes"), ["send", "presence"]);
        let e = parse_scopes("send,admn").expect_err("a typo");
        assert!(e.contains("\"admn\"") && e.contains("send, presence, admin"), "{e}");
        assert!(parse_scopes(" , ").expect_err("none").contains("no scope"));
    }

    #[tokio::test]
    async fn a_token_is_shown_once_kept_as_a_hash_and_ends_with_its_revocation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path()).await;
        let scopes = vec!["send".to_owned()];
        let made = create(&s, "Ticket system", &scopes, None, 1).await.expect("created");
        assert!(made.token.starts_with(TOKEN_PREFIX) && made.token.len() == 4 + 43, "{}", made.token);
        let found = authenticate(&s, &made.token).await.expect("store").expect("the app");
        assert_eq!((found.name.as_str(), found.scopes.clone()), ("Ticket system", scopes.clone()));
        assert!(authenticate(&s, "skn_wrong").await.expect("store").is_none());
        assert!(authenticate(&s, "not even a token").await.expect("store").is_none());
        let again = create(&s, "Ticket system", &scopes, None, 2).await.expect_err("the name is taken");
        assert!(again.to_string().contains("exists already"), "{again}");
        s.revoke_app("Ticket system", 3).await.expect("revoked");
        assert!(authenticate(&s, &made.token).await.expect("store").is_none(), "a revoked token opens nothing");
        assert_eq!(s.list_apps().await.expect("list")[0].revoked_at_ms, Some(3));
        assert!(matches!(s.revoke_app("nobody", 4).await, Err(StoreError::NotFound(_))));
        // The database holds no token.
        let db = std::fs::read(dir.path().join("tracker.db")).expect("the database file");
        assert!(!db.windows(made.token.len()).any(|w| w == made.token.as_bytes()));
    }

    #[tokio::test]
    async fn names_and_icons_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path()).await;
        let scopes = vec!["send".to_owned()];
        assert!(matches!(create(&s, " padded", &scopes, None, 1).await, Err(AppError::Invalid(_))));
        assert!(matches!(create(&s, "a/b", &scopes, None, 1).await, Err(AppError::Invalid(_))));
        let not_png = create(&s, "x", &scopes, Some(b"GIF89a"), 1).await.expect_err("a GIF");
        assert!(not_png.to_string().contains("PNG"), "{not_png}");
        let icon = [&b"\x89PNG\r\n\x1a\n"[..], &[0u8; 16]].concat();
        let made = create(&s, "With icon", &scopes, Some(&icon), 1).await.expect("created");
        assert_eq!(made.app.icon.as_deref(), Some(&icon[..]));
    }
}
