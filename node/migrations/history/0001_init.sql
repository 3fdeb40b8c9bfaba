-- The node's local message history (PROFILE/history.db).
--
-- Times are INTEGER milliseconds since the Unix epoch; flags are 0/1.

-- One row per conversation: for a direct conversation, the id is the other
-- user's name.
CREATE TABLE conversations (
    id         TEXT    PRIMARY KEY NOT NULL,
    kind       TEXT    NOT NULL DEFAULT 'direct' CHECK (kind IN ('direct')),
    last_at_ms INTEGER NOT NULL,
    unread     INTEGER NOT NULL DEFAULT 0 CHECK (unread >= 0)
);

-- One row per message, sent or received. `seq` aliases the rowid (so VACUUM
-- cannot renumber it) and gives the stable display order; AUTOINCREMENT
-- keeps a deleted message's seq from being reused. `id` is the sender's
-- MailId, unique: it is what receivers deduplicate on.
CREATE TABLE messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    conversation    TEXT    NOT NULL REFERENCES conversations (id),
    from_user       TEXT    NOT NULL,
    from_device     BLOB    NOT NULL CHECK (length(from_device) = 16),
    to_user         TEXT    NOT NULL,
    sent_at_ms      INTEGER NOT NULL,
    stored_at_ms    INTEGER NOT NULL,
    body            BLOB    NOT NULL,
    text            TEXT,
    outgoing        INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
    state           TEXT    NOT NULL CHECK (
                        (outgoing = 1 AND state IN ('queued', 'sent', 'delivered', 'read', 'failed'))
                        OR (outgoing = 0 AND state IN ('received', 'read'))),
    delivered_at_ms INTEGER,
    read_at_ms      INTEGER,
    path            TEXT    CHECK (path IS NULL OR path IN ('direct', 'relayed', 'mailbox'))
);

CREATE INDEX messages_by_conversation ON messages (conversation, seq);
CREATE INDEX messages_unread ON messages (conversation) WHERE outgoing = 0 AND state = 'received';
CREATE INDEX messages_queued ON messages (seq) WHERE outgoing = 1 AND state = 'queued';
