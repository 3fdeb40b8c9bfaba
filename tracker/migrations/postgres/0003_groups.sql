-- Skein tracker schema, version 3 (PostgreSQL): groups.
-- Keep in step with ../sqlite/0003_groups.sql.

-- Org groups (administrators'), department groups (one per department,
-- whose members are the department's users and its sub-departments'),
-- and discussion groups (a user's). `version` is bumped by every change;
-- each version's member list is what the membership certificate signs.
CREATE TABLE groups (
    id            BYTEA NOT NULL PRIMARY KEY CHECK (octet_length(id) = 16),
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('org', 'department', 'discussion')),
    dept_path     TEXT COLLATE "C" UNIQUE,
    owner_id      BIGINT REFERENCES users (id) ON DELETE SET NULL,
    version       BIGINT NOT NULL,
    closed        INTEGER NOT NULL DEFAULT 0 CHECK (closed IN (0, 1)),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Members of org and discussion groups (department groups follow users' departments).
CREATE TABLE group_members (
    group_id BYTEA NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- What each version of a group changed ("alice added carol"), so a
-- member's device that was away shows the lines it missed.
CREATE TABLE group_changes (
    group_id BYTEA   NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    version  BIGINT NOT NULL,
    actor    TEXT    NOT NULL,
    change   BYTEA   NOT NULL,
    at_ms    BIGINT NOT NULL,
    PRIMARY KEY (group_id, version)
);

-- A group changed outside a tracker (the admin CLI moved a user, made an
-- org group): every tracker pushes its new certificate to the members.
ALTER TABLE admin_events ADD COLUMN group_id BYTEA CHECK (group_id IS NULL OR octet_length(group_id) = 16);
