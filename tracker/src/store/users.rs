//! User accounts: creation, lookup, directory search, password and
//! disabled-state changes. Names are compared exactly; callers validate and
//! normalise them (Skein user names are lowercase ASCII).

use super::departments::ensure_path;
use super::{Store, StoreError, escape_like, flag, now_ms};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::fmt;

/// A user to create.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUserRecord {
    /// Login name.
    pub name: String,
    /// Full name.
    pub display_name: String,
    /// Password hash (PHC string); the store never sees passwords.
    pub password_hash: String,
    /// Department path; created, with its parents, if missing.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Grant the admin role.
    pub admin: bool,
}

/// A user as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Full name.
    pub display_name: String,
    /// Password hash (PHC string).
    pub password_hash: String,
    /// Department path.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Holds the admin role.
    pub admin: bool,
    /// Cannot log in.
    pub disabled: bool,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// Last change to the account, ms since the Unix epoch.
    pub updated_at_ms: i64,
    /// Last time any device was connected; `None` if never.
    pub last_seen_ms: Option<i64>,
    /// Bumped each time all the user's sessions end (a password set, the
    /// account disabled): a login that read an older one is refused.
    pub session_epoch: i64,
    /// The password is a one-time password that must be changed first.
    pub must_change_password: bool,
}

impl fmt::Debug for NewUserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUserRecord")
            .field("name", &self.name)
            .field("department", &self.department)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("department", &self.department)
            .field("admin", &self.admin)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

pub(super) const USER_COLUMNS: &str = "u.id, u.name, u.display_name, u.password_hash, d.path AS dept_path, \
     u.title, u.email, u.phone, u.is_admin, u.disabled, u.created_at_ms, u.updated_at_ms, u.last_seen_ms, u.session_epoch, u.must_change_password";

const USER_SELECT: &str = "SELECT u.id, u.name, u.display_name, u.password_hash, d.path AS dept_path, \
     u.title, u.email, u.phone, u.is_admin, u.disabled, u.created_at_ms, u.updated_at_ms, u.last_seen_ms, \
     u.session_epoch, u.must_change_password FROM users u LEFT JOIN departments d ON d.id = u.dept_id";

/// A bind value for dynamically built queries.
enum Arg {
    Text(String),
    Int(i64),
}

impl Store {
    /// Creates a user (and their department, if missing).
    /// Fails with [`StoreError::Conflict`] if the name is taken.
    pub async fn add_user(&self, user: NewUserRecord) -> Result<UserRecord, StoreError> {
        if user.name.is_empty() {
            return Err(StoreError::InvalidInput("user name must not be empty".into()));
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let dept_id = match &user.department {
            Some(path) => Some(ensure_path(&mut tx, path).await?),
            None => None,
        };
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (name, display_name, password_hash, dept_id, title, email, phone, \
             is_admin, disabled, created_at_ms, updated_at_ms, last_seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9, NULL) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(&user.name)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(dept_id)
        .bind(user.title.as_deref())
        .bind(user.email.as_deref())
        .bind(user.phone.as_deref())
        .bind(i64::from(user.admin))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("user {} already exists", user.name)))?;
        if let Some(path) = &user.department {
            // The department's group (and its parents') gains a member.
            super::groups::bump_department_groups(&mut tx, path, now).await?;
        }
        let record = user_where(&mut tx, "u.id = $1", Arg::Int(id)).await?;
        tx.commit().await?;
        record.ok_or_else(|| StoreError::NotFound(format!("no user with id {id}")))
    }

    /// The user named `name`.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        user_where(&mut conn, "u.name = $1", Arg::Text(name.to_owned())).await
    }

    /// The user with row id `id`.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        user_where(&mut conn, "u.id = $1", Arg::Int(id)).await
    }

    /// Replaces a user's password hash. Does not end sessions or record an
    /// admin event; callers do both.
    pub async fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1, updated_at_ms = $2 WHERE name = $3")
            .bind(password_hash)
            .bind(now_ms())
            .bind(name)
            .execute(self.pool())
            .await?;
        require_user(done.rows_affected(), name)
    }

    /// Replaces a user's display name, title, e-mail and phone (what an
    /// identity provider keeps up to date).
    pub async fn set_profile(
        &self,
        name: &str,
        display_name: &str,
        title: Option<&str>,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET display_name = $1, title = $2, email = $3, phone = $4, updated_at_ms = $5 WHERE name = $6",
        )
        .bind(display_name)
        .bind(title)
        .bind(email)
        .bind(phone)
        .bind(now_ms())
        .bind(name)
        .execute(self.pool())
        .await?;
        require_user(done.rows_affected(), name)
    }

    /// Disables or re-enables a user. Does not end sessions or record an
    /// admin event; callers do both.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET disabled = $1, updated_at_ms = $2 WHERE name = $3")
            .bind(i64::from(disabled))
            .bind(now_ms())
            .bind(name)
            .execute(self.pool())
            .await?;
        require_user(done.rows_affected(), name)
    }

    /// Marks a user's password as one to change before anything else (or
    /// clears the mark).
    pub async fn set_must_change_password(&self, user_id: i64, must: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET must_change_password = $1 WHERE id = $2")
            .bind(i64::from(must))
            .bind(user_id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no user with id {user_id}")));
        }
        Ok(())
    }

    /// Records when a user was last connected.
    pub async fn set_last_seen(&self, user_id: i64, at_ms: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET last_seen_ms = $1 WHERE id = $2")
            .bind(at_ms)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no user with id {user_id}")));
        }
        Ok(())
    }

    /// Every user, ordered by name.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{USER_SELECT} ORDER BY u.name"))).fetch_all(self.pool()).await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Number of users, disabled ones included.
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(self.pool()).await?)
    }

    /// One page of the directory, ordered by name, and the total number of
    /// matches.
    ///
    /// `text` matches name, display name, title or e-mail, case-insensitively,
    /// as a substring (`%` and `_` match literally). `dept` restricts to that
    /// department and its sub-departments. Case folding is the database's
    /// `LOWER`: ASCII-only on SQLite, locale-aware on PostgreSQL.
    pub async fn search_users(
        &self,
        text: Option<&str>,
        dept: Option<&str>,
        include_disabled: bool,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<UserRecord>, i64), StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        if !include_disabled {
            conditions.push("u.disabled = 0".into());
        }
        if let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) {
            args.push(Arg::Text(format!("%{}%", escape_like(text))));
            let n = args.len();
            let like = |col: &str| format!(r"LOWER({col}) LIKE LOWER(${n}) ESCAPE '\'");
            conditions.push(format!(
                "({} OR {} OR {} OR {})",
                like("u.name"),
                like("u.display_name"),
                like("u.title"),
                like("u.email")
            ));
        }
        if let Some(dept) = dept {
            args.push(Arg::Text(dept.to_owned()));
            args.push(Arg::Text(format!("{}/%", escape_like(dept))));
            let n = args.len();
            conditions.push(format!(r"(d.path = ${} OR d.path LIKE ${n} ESCAPE '\')", n - 1));
        }
        let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };

        let count_sql = format!("SELECT COUNT(*) FROM users u LEFT JOIN departments d ON d.id = u.dept_id{filter}");
        let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
        for arg in &args {
            count = match arg {
                Arg::Text(s) => count.bind(s.clone()),
                Arg::Int(i) => count.bind(*i),
            };
        }
        let total = count.fetch_one(self.pool()).await?;

        let page_sql =
            format!("{USER_SELECT}{filter} ORDER BY u.name LIMIT ${} OFFSET ${}", args.len() + 1, args.len() + 2);
        args.push(Arg::Int(limit.max(0)));
        args.push(Arg::Int(offset.max(0)));
        let mut page = sqlx::query(sqlx::AssertSqlSafe(page_sql));
        for arg in args {
            page = match arg {
                Arg::Text(s) => page.bind(s),
                Arg::Int(i) => page.bind(i),
            };
        }
        let rows = page.fetch_all(self.pool()).await?;
        let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok((users, total))
    }
}

fn require_user(rows_affected: u64, name: &str) -> Result<(), StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound(format!("no user named {name}")));
    }
    Ok(())
}

/// Fetches one user matching `condition` (which uses `$1`).
async fn user_where(conn: &mut AnyConnection, condition: &str, arg: Arg) -> Result<Option<UserRecord>, StoreError> {
    let query = sqlx::query(sqlx::AssertSqlSafe(format!("{USER_SELECT} WHERE {condition}")));
    let query = match arg {
        Arg::Text(s) => query.bind(s),
        Arg::Int(i) => query.bind(i),
    };
    let row = query.fetch_optional(&mut *conn).await?;
    row.as_ref().map(user_from_row).transpose()
}

pub(super) fn user_from_row(row: &AnyRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        department: row.try_get("dept_path")?,
        title: row.try_get("title")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        admin: flag(row.try_get("is_admin")?),
        disabled: flag(row.try_get("disabled")?),
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        session_epoch: row.try_get("session_epoch")?,
        must_change_password: flag(row.try_get("must_change_password")?),
    })
}
