-- Skein tracker schema, version 1 (PostgreSQL).
-- Times are milliseconds since the Unix epoch; flags are 0/1 integers.
-- Keep in step with ../sqlite/0001_init.sql: the same tables, columns and
-- constraints, so every query in tracker/src/store runs on both.
-- Names and paths use the "C" collation so ORDER BY sorts bytewise, as
-- SQLite does, whatever the database's default locale is.

CREATE TABLE settings (
    key   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE departments (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path      TEXT COLLATE "C" NOT NULL UNIQUE,
    parent_id BIGINT REFERENCES departments (id)
);
CREATE INDEX departments_parent ON departments (parent_id);

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    dept_id       BIGINT REFERENCES departments (id),
    title         TEXT,
    email         TEXT,
    phone         TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT
);
CREATE INDEX users_dept ON users (dept_id);

CREATE TABLE sessions (
    token_hash    BYTEA NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id     BYTEA NOT NULL CHECK (octet_length(device_id) = 16),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE INDEX sessions_user_device ON sessions (user_id, device_id);
CREATE INDEX sessions_expires ON sessions (expires_at_ms);

CREATE TABLE devices (
    user_id            BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id          BYTEA NOT NULL CHECK (octet_length(device_id) = 16),
    name               TEXT NOT NULL,
    peer_id            BYTEA NOT NULL,
    x25519             BYTEA NOT NULL CHECK (octet_length(x25519) = 32),
    cert               BYTEA NOT NULL,
    cert_expires_at_ms BIGINT NOT NULL,
    revoked            INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    last_seen_ms       BIGINT,
    PRIMARY KEY (user_id, device_id)
);
CREATE INDEX devices_peer ON devices (peer_id);

CREATE TABLE counters (
    name  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('cert_serial', 0);

CREATE TABLE admin_events (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind      TEXT NOT NULL,
    user_id   BIGINT NOT NULL,
    device_id BYTEA CHECK (device_id IS NULL OR octet_length(device_id) = 16),
    at_ms     BIGINT NOT NULL
);

CREATE TABLE mailbox (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           BYTEA NOT NULL CHECK (octet_length(id) = 16),
    to_user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_device    BYTEA NOT NULL CHECK (octet_length(to_device) = 16),
    from_user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed       BYTEA NOT NULL,
    size         BIGINT NOT NULL,
    stored_at_ms BIGINT NOT NULL,
    UNIQUE (to_user_id, to_device, id)
);
CREATE INDEX mailbox_order ON mailbox (to_user_id, to_device, stored_at_ms, seq);
CREATE INDEX mailbox_stored_at ON mailbox (stored_at_ms);
