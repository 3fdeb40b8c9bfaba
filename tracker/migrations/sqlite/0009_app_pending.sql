-- Skein tracker schema, version 9 (SQLite): app messages for users with no device yet.
-- Keep in step with ../postgres/0009_app_pending.sql.

-- A post to a user who has no device yet (provisioned, never logged in)
-- waits here, signed by the organisation, until their first device logs
-- in: then it is sealed to that device and put in its mailbox.
CREATE TABLE app_pending (
    id           BLOB NOT NULL CHECK (length(id) = 16),
    to_user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_app     TEXT NOT NULL,
    payload      BLOB NOT NULL,
    stored_at_ms INTEGER NOT NULL,
    PRIMARY KEY (to_user_id, id)
);
