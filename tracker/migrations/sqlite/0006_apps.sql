-- Skein tracker schema, version 6 (SQLite): apps of the HTTP API.
-- Keep in step with ../postgres/0006_apps.sql.

-- Company systems that call the HTTP API, each with a bearer token of its
-- own. Only the token's BLAKE3 hash is kept; the token is shown once, when
-- the app is created. `scopes` is a comma-separated list (send, presence,
-- admin). A revoked app keeps its row, so the audit log still names it.
CREATE TABLE apps (
    id            INTEGER NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    token_hash    BLOB    NOT NULL UNIQUE,
    scopes        TEXT    NOT NULL,
    icon          BLOB,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);

-- What each app did through the API, when and from where.
CREATE TABLE api_audit (
    id      INTEGER NOT NULL PRIMARY KEY,
    app_id  INTEGER NOT NULL REFERENCES apps (id),
    at_ms   INTEGER NOT NULL,
    remote  TEXT    NOT NULL,
    method  TEXT    NOT NULL,
    route   TEXT    NOT NULL,
    status  INTEGER NOT NULL
);
CREATE INDEX api_audit_by_app ON api_audit (app_id, at_ms);
