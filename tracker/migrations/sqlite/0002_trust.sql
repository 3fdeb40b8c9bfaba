-- Skein tracker schema, version 2 (SQLite): access that ends when it should.
-- Keep in step with ../postgres/0002_trust.sql.

-- Bumped whenever all of a user's sessions end (password set, account
-- disabled); a login checked against an older epoch is refused.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;

-- A one-time password (the first administrator's) must be changed before
-- its session may do anything else.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1));

-- Per-sender mailbox quotas sum a sender's waiting items.
CREATE INDEX mailbox_sender ON mailbox (from_user_id);
