-- Skein tracker schema, version 10 (PostgreSQL): idempotency keys of the HTTP API.
-- Keep in step with ../sqlite/0010_idempotency.sql.

-- A post with an Idempotency-Key becomes the message whose id the key
-- gives. The key is kept with a fingerprint of what was posted under it,
-- so the same key with a different message is refused (409) instead of
-- being taken for a retry and never shown.
CREATE TABLE api_idempotency (
    app_id      BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    message_id  BYTEA NOT NULL CHECK (octet_length(message_id) = 16),
    fingerprint BYTEA NOT NULL CHECK (octet_length(fingerprint) = 32),
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (app_id, message_id)
);
