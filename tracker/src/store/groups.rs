//! Groups and their members: org groups, discussion groups, and one group
//! per department whose members are the department's users (and its
//! sub-departments'). Every change bumps the group's version in the same
//! transaction, so each version names exactly one member list.

use super::{Store, StoreError, fixed, flag};
use skein_proto::group::GroupChange;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// What kind of group, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKindRecord {
    /// An administrators' group.
    Org,
    /// The group of the department at this path.
    Department(String),
    /// A user's group; the owner's name (`None` if the owner is gone).
    Discussion(Option<String>),
}

/// A group at its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Its id.
    pub id: [u8; 16],
    /// Display name.
    pub name: String,
    /// Its kind.
    pub kind: GroupKindRecord,
    /// Bumped by every change.
    pub version: i64,
    /// Closed groups take no more messages or changes.
    pub closed: bool,
    /// Member user names, sorted.
    pub members: Vec<String>,
}

impl GroupRecord {
    /// Whether `user` is a member.
    pub fn has_member(&self, user: &str) -> bool {
        self.members.binary_search_by(|m| m.as_str().cmp(user)).is_ok()
    }
}

/// A change to an org or discussion group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupStoreChange {
    /// Add these users.
    Add(Vec<String>),
    /// Remove these users.
    Remove(Vec<String>),
    /// A new name.
    Rename(String),
    /// Close the group.
    Close,
}

/// The id of a department's group: fixed by its path, so every tracker and
/// every start agrees on it.
pub fn department_group_id(path: &str) -> [u8; 16] {
    let hash = blake3::hash([b"skein department group\0".as_slice(), path.as_bytes()].concat().as_slice());
    let mut id = [0u8; 16];
    id.copy_from_slice(&hash.as_bytes()[..16]);
    id
}

const GROUP_SELECT: &str = "SELECT g.id, g.name, g.kind, g.dept_path, o.name AS owner, g.version, g.closed \
     FROM groups g LEFT JOIN users o ON o.id = g.owner_id";

impl Store {
    /// Makes an org group (`owner_id: None`) or a discussion group owned by
    /// `owner_id`, with `members` (names; the owner is added). Fails with
    /// [`StoreError::NotFound`] naming an unknown user, and
    /// [`StoreError::InvalidInput`] past `max_members`.
    pub async fn create_group(
        &self,
        id: [u8; 16],
        name: &str,
        owner_id: Option<i64>,
        members: &[String],
        max_members: usize,
        now_ms: i64,
    ) -> Result<GroupRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let kind = if owner_id.is_some() { "discussion" } else { "org" };
        sqlx::query(
            "INSERT INTO groups (id, name, kind, dept_path, owner_id, version, closed, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, NULL, $4, 1, 0, $5, $5)",
        )
        .bind(&id[..])
        .bind(name)
        .bind(kind)
        .bind(owner_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_or_db(e, || "a group with this id exists".into()))?;
        let mut ids = user_ids(&mut tx, members).await?;
        ids.extend(owner_id);
        for user_id in ids {
            add_member(&mut tx, &id, user_id).await?;
        }
        let record = group_in(&mut tx, &id).await?.ok_or_else(|| StoreError::NotFound("the new group".into()))?;
        check_size(&record, max_members)?;
        tx.commit().await?;
        Ok(record)
    }

    /// The group with this id, if it exists.
    pub async fn group(&self, id: [u8; 16]) -> Result<Option<GroupRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        group_in(&mut conn, &id).await
    }

    /// Keeps what version `version` of a group changed (`change` is the
    /// encoded change); a version logged twice is kept once.
    pub async fn log_group_change(
        &self,
        group: [u8; 16],
        version: i64,
        actor: &str,
        change: &[u8],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        log_change_in(&mut conn, group, version, actor, change, at_ms).await?;
        Ok(())
    }

    /// The first `limit` logged changes of a group after `after_version`,
    /// oldest first: (version, actor, encoded change, at_ms).
    pub async fn group_changes(
        &self,
        group: [u8; 16],
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, Vec<u8>, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, actor, change, at_ms FROM group_changes WHERE group_id = $1 AND version > $2 \
             ORDER BY version LIMIT $3",
        )
        .bind(&group[..])
        .bind(after_version)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("version")?, r.try_get("actor")?, r.try_get("change")?, r.try_get("at_ms")?)))
            .collect()
    }

    /// Every group, ordered by name.
    pub async fn all_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let ids =
            sqlx::query_scalar::<_, Vec<u8>>("SELECT id FROM groups ORDER BY name, id").fetch_all(&mut *conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(g) = group_in(&mut conn, &fixed(id, "group id")?).await? {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// The groups `user_id` is a member of (department groups included),
    /// closed ones too, ordered by name.
    pub async fn groups_of(&self, user_id: i64) -> Result<Vec<GroupRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let ids = sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT g.id FROM groups g JOIN group_members m ON m.group_id = g.id WHERE m.user_id = $1 \
             UNION \
             SELECT g.id FROM groups g, users u JOIN departments d ON d.id = u.dept_id \
             WHERE u.id = $1 AND g.kind = 'department' \
               AND (d.path = g.dept_path OR substr(d.path, 1, length(g.dept_path) + 1) = g.dept_path || '/')",
        )
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(g) = group_in(&mut conn, &fixed(id, "group id")?).await? {
                out.push(g);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Applies `change` to an org or discussion group and bumps its
    /// version, in one transaction; returns the group after it. Fails with
    /// [`StoreError::Conflict`] for a closed or department group,
    /// [`StoreError::NotFound`] for an unknown group or user, and
    /// [`StoreError::InvalidInput`] past `max_members`.
    pub async fn change_group(
        &self,
        id: [u8; 16],
        change: GroupStoreChange,
        max_members: usize,
        now_ms: i64,
    ) -> Result<GroupRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        // Taking the row first orders concurrent changes to one group.
        let row = sqlx::query(
            "UPDATE groups SET version = version + 1, updated_at_ms = $2 WHERE id = $1 RETURNING kind, closed",
        )
        .bind(&id[..])
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound("no such group".into()))?;
        let kind: String = row.try_get("kind")?;
        if kind == "department" {
            return Err(StoreError::Conflict("a department's group follows the department; move users instead".into()));
        }
        if flag(row.try_get("closed")?) {
            return Err(StoreError::Conflict("the group is closed".into()));
        }
        match &change {
            GroupStoreChange::Add(names) => {
                for user_id in user_ids(&mut tx, names).await? {
                    add_member(&mut tx, &id, user_id).await?;
                }
            }
            GroupStoreChange::Remove(names) => {
                for user_id in user_ids(&mut tx, names).await? {
                    sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                        .bind(&id[..])
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            GroupStoreChange::Rename(name) => {
                sqlx::query("UPDATE groups SET name = $2 WHERE id = $1")
                    .bind(&id[..])
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            GroupStoreChange::Close => {
                sqlx::query("UPDATE groups SET closed = 1 WHERE id = $1").bind(&id[..]).execute(&mut *tx).await?;
            }
        }
        let record = group_in(&mut tx, &id).await?.ok_or_else(|| StoreError::NotFound("no such group".into()))?;
        check_size(&record, max_members)?;
        tx.commit().await?;
        Ok(record)
    }

    /// Moves a user to the department at `path` (created if missing), or
    /// out of any department; the groups of the departments left and
    /// joined (and their parents') move to a new version. Returns the ids
    /// of the department groups whose members changed.
    pub async fn set_user_department(&self, name: &str, path: Option<&str>) -> Result<Vec<[u8; 16]>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT u.id, d.path FROM users u LEFT JOIN departments d ON d.id = u.dept_id WHERE u.name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no user named {name}")))?;
        let user_id: i64 = row.try_get("id")?;
        let old: Option<String> = row.try_get("path")?;
        let dept_id = match path {
            Some(p) => Some(super::departments::ensure_path(&mut tx, p).await?),
            None => None,
        };
        let now = super::now_ms();
        sqlx::query("UPDATE users SET dept_id = $1, updated_at_ms = $2 WHERE name = $3")
            .bind(dept_id)
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let mut changed = Vec::new();
        if old.as_deref() != path {
            for p in [old.as_deref(), path].into_iter().flatten() {
                changed.extend(bump_department_groups(&mut tx, p, now).await?);
            }
        }
        changed.sort();
        changed.dedup();
        // Each group's log says what its new version changed, and every
        // tracker pushes the groups' new certificates to their members.
        for id in &changed {
            let g = group_in(&mut tx, id).await?.ok_or_else(|| StoreError::NotFound("no such group".into()))?;
            let who = vec![name.to_owned()];
            let change = if g.has_member(name) { GroupChange::Added(who) } else { GroupChange::Removed(who) };
            let bytes = skein_proto::frame::encode_payload(&change)
                .map_err(|e| StoreError::Corrupt(format!("cannot encode a group change: {e}")))?;
            log_change_in(&mut tx, *id, g.version, "", &bytes, now).await?;
            let about = super::events::Concerning { device: None, group: Some(*id) };
            let kind = super::events::EVENT_GROUP_CHANGED;
            super::events::insert_event(&mut tx, self.backend(), kind, user_id, about, now).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}

/// Logs what a group's `version` changed, within the caller's transaction;
/// a version logged twice is kept once.
async fn log_change_in(
    conn: &mut AnyConnection,
    group: [u8; 16],
    version: i64,
    actor: &str,
    change: &[u8],
    at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO group_changes (group_id, version, actor, change, at_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (group_id, version) DO NOTHING",
    )
    .bind(&group[..])
    .bind(version)
    .bind(actor)
    .bind(change)
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Creates the group of every department that has none.
pub(super) async fn sync_department_groups(conn: &mut AnyConnection, now_ms: i64) -> Result<(), StoreError> {
    let paths = sqlx::query_scalar::<_, String>(
        "SELECT d.path FROM departments d WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.dept_path = d.path)",
    )
    .fetch_all(&mut *conn)
    .await?;
    for path in paths {
        let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
        sqlx::query(
            "INSERT INTO groups (id, name, kind, dept_path, owner_id, version, closed, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, 'department', $3, NULL, 1, 0, $4, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&department_group_id(&path)[..])
        .bind(name)
        .bind(&path)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Bumps the groups of the department at `path` and of its parents (whose
/// members include it); returns their ids.
pub(super) async fn bump_department_groups(
    conn: &mut AnyConnection,
    path: &str,
    now_ms: i64,
) -> Result<Vec<[u8; 16]>, StoreError> {
    sync_department_groups(conn, now_ms).await?;
    let ids = sqlx::query_scalar::<_, Vec<u8>>(
        "UPDATE groups SET version = version + 1, updated_at_ms = $2 \
         WHERE kind = 'department' AND ($1 = dept_path OR substr($1, 1, length(dept_path) + 1) = dept_path || '/') \
         RETURNING id",
    )
    .bind(path)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    ids.into_iter().map(|id| fixed(id, "group id")).collect()
}

async fn add_member(conn: &mut AnyConnection, group: &[u8; 16], user_id: i64) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(&group[..])
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The ids of these users; [`StoreError::NotFound`] names the first unknown.
async fn user_ids(conn: &mut AnyConnection, names: &[String]) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let id = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no user named {name}")))?;
        ids.push(id);
    }
    Ok(ids)
}

fn check_size(g: &GroupRecord, max_members: usize) -> Result<(), StoreError> {
    if g.members.len() > max_members {
        return Err(StoreError::InvalidInput(format!(
            "a group has at most {max_members} members; this change would make {}",
            g.members.len()
        )));
    }
    Ok(())
}

async fn group_in(conn: &mut AnyConnection, id: &[u8; 16]) -> Result<Option<GroupRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{GROUP_SELECT} WHERE g.id = $1")))
        .bind(&id[..])
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (kind, members) = kind_and_members(conn, &row, id).await?;
    Ok(Some(GroupRecord {
        id: *id,
        name: row.try_get("name")?,
        kind,
        version: row.try_get("version")?,
        closed: flag(row.try_get("closed")?),
        members,
    }))
}

async fn kind_and_members(
    conn: &mut AnyConnection,
    row: &AnyRow,
    id: &[u8; 16],
) -> Result<(GroupKindRecord, Vec<String>), StoreError> {
    let kind: String = row.try_get("kind")?;
    let (kind, members) = match kind.as_str() {
        "department" => {
            let path: String = row.try_get("dept_path")?;
            let members = sqlx::query_scalar::<_, String>(
                "SELECT u.name FROM users u JOIN departments d ON d.id = u.dept_id \
                 WHERE d.path = $1 OR substr(d.path, 1, length($1) + 1) = $1 || '/'",
            )
            .bind(&path)
            .fetch_all(&mut *conn)
            .await?;
            (GroupKindRecord::Department(path), members)
        }
        other => {
            let members = sqlx::query_scalar::<_, String>(
                "SELECT u.name FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = $1",
            )
            .bind(&id[..])
            .fetch_all(&mut *conn)
            .await?;
            let kind =
                if other == "org" { GroupKindRecord::Org } else { GroupKindRecord::Discussion(row.try_get("owner")?) };
            (kind, members)
        }
    };
    let mut members = members;
    members.sort();
    members.dedup();
    Ok((kind, members))
}
