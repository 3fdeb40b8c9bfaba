//! The department tree. A department is named by its `/`-separated path
//! (`Engineering/Backend`); each row points at its parent, and missing
//! parents are created on the way. Each department has a group (see
//! `groups.rs`), made with it.

use super::{Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A department as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeptRecord {
    /// Row id.
    pub id: i64,
    /// Full path, such as `Engineering/Backend`.
    pub path: String,
    /// The parent's path; `None` at the top level.
    pub parent_path: Option<String>,
    /// Enabled users directly in this department (not in sub-departments).
    pub members: i64,
}

const DEPT_SELECT: &str = "SELECT d.id, d.path, p.path AS parent_path, \
     (SELECT COUNT(*) FROM users u WHERE u.dept_id = d.id AND u.disabled = 0) AS members \
     FROM departments d LEFT JOIN departments p ON p.id = d.parent_id";

impl Store {
    /// Creates the department at `path`, creating missing parents silently.
    /// Fails with [`StoreError::Conflict`] if `path` itself already exists.
    pub async fn add_department(&self, path: &str) -> Result<DeptRecord, StoreError> {
        let segments = split_path(path)?;
        let mut tx = self.begin_write().await?;
        let parent_id = match segments.len() {
            0 | 1 => None,
            n => Some(ensure_path(&mut tx, &segments[..n - 1].join("/")).await?),
        };
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO departments (path, parent_id) VALUES ($1, $2) ON CONFLICT (path) DO NOTHING RETURNING id",
        )
        .bind(path)
        .bind(parent_id)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            return Err(StoreError::Conflict(format!("department {path} already exists")));
        }
        super::groups::sync_department_groups(&mut tx, super::now_ms()).await?;
        let record = department_in(&mut tx, path).await?;
        tx.commit().await?;
        record.ok_or_else(|| StoreError::NotFound(format!("no department {path}")))
    }

    /// Every department, ordered by path (so parents precede children).
    pub async fn list_departments(&self) -> Result<Vec<DeptRecord>, StoreError> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{DEPT_SELECT} ORDER BY d.path"))).fetch_all(self.pool()).await?;
        rows.iter().map(dept_from_row).collect()
    }

    /// The department at exactly `path`.
    pub async fn department_by_path(&self, path: &str) -> Result<Option<DeptRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        department_in(&mut conn, path).await
    }
}

/// Looks a department up on a given connection or transaction.
async fn department_in(conn: &mut AnyConnection, path: &str) -> Result<Option<DeptRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{DEPT_SELECT} WHERE d.path = $1")))
        .bind(path)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(dept_from_row).transpose()
}

fn dept_from_row(row: &AnyRow) -> Result<DeptRecord, StoreError> {
    Ok(DeptRecord {
        id: row.try_get("id")?,
        path: row.try_get("path")?,
        parent_path: row.try_get("parent_path")?,
        members: row.try_get("members")?,
    })
}

/// Ensures `path` and all its ancestors exist, returning the id of `path`.
/// Race-safe: concurrent creators of the same path end up with one row.
pub(super) async fn ensure_path(conn: &mut AnyConnection, path: &str) -> Result<i64, StoreError> {
    let segments = split_path(path)?;
    let mut parent_id: Option<i64> = None;
    for end in 1..=segments.len() {
        let prefix = segments[..end].join("/");
        sqlx::query("INSERT INTO departments (path, parent_id) VALUES ($1, $2) ON CONFLICT (path) DO NOTHING")
            .bind(&prefix)
            .bind(parent_id)
            .execute(&mut *conn)
            .await?;
        let id = sqlx::query_scalar::<_, i64>("SELECT id FROM departments WHERE path = $1")
            .bind(&prefix)
            .fetch_one(&mut *conn)
            .await?;
        parent_id = Some(id);
    }
    super::groups::sync_department_groups(conn, super::now_ms()).await?;
    parent_id.ok_or_else(|| StoreError::InvalidInput("empty department path".into()))
}

/// Splits a path into segments, refusing empty or padded segments and
/// control characters, which would make the tree ambiguous.
pub(super) fn split_path(path: &str) -> Result<Vec<&str>, StoreError> {
    let segments: Vec<&str> = path.split('/').collect();
    let bad = segments.iter().any(|s| s.is_empty() || s.trim() != *s || s.chars().any(char::is_control));
    if path.is_empty() || bad {
        return Err(StoreError::InvalidInput(format!(
            "department path {path:?} must be non-empty '/'-separated names without leading or trailing spaces"
        )));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn paths() {
        assert_eq!(split_path("Eng/Backend").ok(), Some(vec!["Eng", "Backend"]));
        assert!(split_path("").is_err());
        assert!(split_path("/Eng").is_err());
        assert!(split_path("Eng//Backend").is_err());
        assert!(split_path("Eng/ Backend").is_err());
    }
}
