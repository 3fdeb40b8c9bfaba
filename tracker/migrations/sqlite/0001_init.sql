-- Skein tracker schema, version 1 (SQLite).
-- Times are milliseconds since the Unix epoch; flags are 0/1 integers.
-- Keep in step with ../postgres/0001_init.sql: the same tables, columns and
-- constraints, so every query in tracker/src/store runs on both.

CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE departments (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    path      TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES departments (id)
);
CREATE INDEX departments_parent ON departments (parent_id);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    dept_id       INTEGER REFERENCES departments (id),
    title         TEXT,
    email         TEXT,
    phone         TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER
);
CREATE INDEX users_dept ON users (dept_id);

CREATE TABLE sessions (
    token_hash    BLOB NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id     BLOB NOT NULL CHECK (length(device_id) = 16),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE INDEX sessions_user_device ON sessions (user_id, device_id);
CREATE INDEX sessions_expires ON sessions (expires_at_ms);

CREATE TABLE devices (
    user_id            INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id          BLOB NOT NULL CHECK (length(device_id) = 16),
    name               TEXT NOT NULL,
    peer_id            BLOB NOT NULL,
    x25519             BLOB NOT NULL CHECK (length(x25519) = 32),
    cert               BLOB NOT NULL,
    cert_expires_at_ms INTEGER NOT NULL,
    revoked            INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    last_seen_ms       INTEGER,
    PRIMARY KEY (user_id, device_id)
);
CREATE INDEX devices_peer ON devices (peer_id);

CREATE TABLE counters (
    name  TEXT NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('cert_serial', 0);

CREATE TABLE admin_events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL,
    user_id   INTEGER NOT NULL,
    device_id BLOB CHECK (device_id IS NULL OR length(device_id) = 16),
    at_ms     INTEGER NOT NULL
);

CREATE TABLE mailbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           BLOB NOT NULL CHECK (length(id) = 16),
    to_user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_device    BLOB NOT NULL CHECK (length(to_device) = 16),
    from_user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed       BLOB NOT NULL,
    size         INTEGER NOT NULL,
    stored_at_ms INTEGER NOT NULL,
    UNIQUE (to_user_id, to_device, id)
);
CREATE INDEX mailbox_order ON mailbox (to_user_id, to_device, stored_at_ms, seq);
CREATE INDEX mailbox_stored_at ON mailbox (stored_at_ms);
