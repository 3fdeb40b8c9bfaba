//! Apps of the HTTP API: company systems with a bearer token each, of
//! which the store keeps only a BLAKE3 hash, and the audit log of what
//! they did.

use super::{Store, StoreError};
use sqlx::Row;

/// One app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Its row id.
    pub id: i64,
    /// Its name, shown beside what it posts.
    pub name: String,
    /// What it may do (`send`, `presence`, `admin`).
    pub scopes: Vec<String>,
    /// Its icon (PNG bytes), if one was given.
    pub icon: Option<Vec<u8>>,
    /// When it was created, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// When its token was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
    /// For an incoming webhook: whom all its posts go to (`bob`, `#team`,
    /// `dept:/Engineering`).
    pub hook_to: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The app's name.
    pub app: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// The caller's address.
    pub remote: String,
    /// The HTTP method.
    pub method: String,
    /// The route (its pattern, not the full path).
    pub route: String,
    /// The status answered.
    pub status: u16,
}

fn app(row: &sqlx::any::AnyRow) -> Result<AppRecord, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    Ok(AppRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scopes: scopes.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        icon: row.try_get("icon")?,
        created_at_ms: row.try_get("created_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
        hook_to: row.try_get("hook_to")?,
    })
}

/// The columns [`app`] reads, for `concat!` (queries are static text).
macro_rules! app_columns {
    () => {
        "id, name, scopes, icon, created_at_ms, revoked_at_ms, hook_to"
    };
}

impl Store {
    /// Records a new app whose token hashes to `token_hash` (a webhook when
    /// `hook_to` names whom it posts to). A name in use (by a revoked app
    /// too) is a [`StoreError::Conflict`].
    pub async fn create_app(
        &self,
        name: &str,
        token_hash: &[u8; 32],
        scopes: &[String],
        icon: Option<&[u8]>,
        hook_to: Option<&str>,
        now_ms: i64,
    ) -> Result<AppRecord, StoreError> {
        let row = sqlx::query(concat!(
            "INSERT INTO apps (name, token_hash, scopes, icon, created_at_ms, hook_to) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            app_columns!()
        ))
        .bind(name)
        .bind(&token_hash[..])
        .bind(scopes.join(","))
        .bind(icon.map(<[u8]>::to_vec))
        .bind(now_ms)
        .bind(hook_to)
        .fetch_one(self.pool())
        .await
        .map_err(|e| StoreError::conflict_or_db(e, || format!("an app named {name:?} exists already")))?;
        app(&row)
    }

    /// Every app, revoked ones too, by name.
    pub async fn list_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let rows =
            sqlx::query(concat!("SELECT ", app_columns!(), " FROM apps ORDER BY name")).fetch_all(self.pool()).await?;
        rows.iter().map(app).collect()
    }

    /// The app whose token hashes to `token_hash`, if it is not revoked.
    pub async fn app_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<AppRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            app_columns!(),
            " FROM apps WHERE token_hash = $1 AND revoked_at_ms IS NULL"
        ))
        .bind(&token_hash[..])
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(app).transpose()
    }

    /// Revokes the app `name`'s token; [`StoreError::NotFound`] if there is
    /// no such app, and nothing changes if it was revoked already.
    pub async fn revoke_app(&self, name: &str, now_ms: i64) -> Result<(), StoreError> {
        let found = sqlx::query("SELECT id FROM apps WHERE name = $1").bind(name).fetch_optional(self.pool()).await?;
        if found.is_none() {
            return Err(StoreError::NotFound(format!("no app named {name:?}; `skein-tracker app list` shows them")));
        }
        sqlx::query("UPDATE apps SET revoked_at_ms = $1 WHERE name = $2 AND revoked_at_ms IS NULL")
            .bind(now_ms)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records that app `app_id` called `method route` from `remote` and
    /// was answered `status`.
    pub async fn audit(
        &self,
        app_id: i64,
        at_ms: i64,
        remote: &str,
        method: &str,
        route: &str,
        status: u16,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_audit (app_id, at_ms, remote, method, route, status) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(app_id)
        .bind(at_ms)
        .bind(remote)
        .bind(method)
        .bind(route)
        .bind(i64::from(status))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The newest `limit` lines of the audit log, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT apps.name AS app, a.at_ms, a.remote, a.method, a.route, a.status FROM api_audit a \
             JOIN apps ON apps.id = a.app_id ORDER BY a.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let status: i64 = r.try_get("status")?;
                Ok(AuditRecord {
                    app: r.try_get("app")?,
                    at_ms: r.try_get("at_ms")?,
                    remote: r.try_get("remote")?,
                    method: r.try_get("method")?,
                    route: r.try_get("route")?,
                    status: u16::try_from(status).unwrap_or(0),
                })
            })
            .collect()
    }
}

impl Store {
    /// Claims the message id an app's Idempotency-Key gives for the post
    /// with `fingerprint`: true when the key is new or was used for the
    /// same post (a retry), false when it was used for a different one.
    pub async fn claim_idempotency(
        &self,
        app_id: i64,
        message_id: &[u8; 16],
        fingerprint: &[u8; 32],
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_idempotency (app_id, message_id, fingerprint, at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app_id, message_id) DO NOTHING",
        )
        .bind(app_id)
        .bind(&message_id[..])
        .bind(&fingerprint[..])
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let kept: Vec<u8> =
            sqlx::query_scalar("SELECT fingerprint FROM api_idempotency WHERE app_id = $1 AND message_id = $2")
                .bind(app_id)
                .bind(&message_id[..])
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(kept == fingerprint[..])
    }
}
