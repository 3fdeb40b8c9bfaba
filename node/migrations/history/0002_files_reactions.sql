-- Files offered in messages, both ways, and reactions to messages.

-- One row per file offer this device sends or receives. `id` is the id of
-- the message that carried the offer. Outgoing rows name the local file
-- served (`source`) and keep its manifest; incoming rows name the device
-- to fetch from, the folder it is received into and, once complete, where
-- it landed.
CREATE TABLE files (
    id            BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    outgoing      INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
    peer_user     TEXT    NOT NULL,
    peer_device   BLOB    CHECK (peer_device IS NULL OR length(peer_device) = 16),
    name          TEXT    NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    root          BLOB    NOT NULL CHECK (length(root) = 32),
    image         INTEGER NOT NULL DEFAULT 0 CHECK (image IN (0, 1)),
    source        TEXT,
    manifest      BLOB,
    dir           TEXT,
    saved_path    TEXT,
    state         TEXT    NOT NULL CHECK (state IN ('offered', 'accepted', 'completed', 'declined', 'failed')),
    error         TEXT,
    bytes_done    INTEGER NOT NULL DEFAULT 0 CHECK (bytes_done >= 0),
    path          TEXT    CHECK (path IS NULL OR path IN ('direct', 'relayed')),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE INDEX files_accepted ON files (id) WHERE outgoing = 0 AND state = 'accepted';

-- What each recipient device did with an outgoing offer, and how much of
-- the file it was sent (chunks sent twice count twice).
CREATE TABLE file_targets (
    file          BLOB    NOT NULL REFERENCES files (id),
    device        BLOB    NOT NULL CHECK (length(device) = 16),
    state         TEXT    NOT NULL CHECK (state IN ('offered', 'accepted', 'completed', 'declined', 'failed')),
    error         TEXT,
    chunks_sent   INTEGER NOT NULL DEFAULT 0,
    bytes_sent    INTEGER NOT NULL DEFAULT 0,
    path          TEXT    CHECK (path IS NULL OR path IN ('direct', 'relayed')),
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (file, device)
);

-- The latest reaction of each user with each emoji to a message: `present`
-- 0 once taken back. A newer change (by `at_ms`) replaces an older one.
CREATE TABLE reactions (
    message BLOB    NOT NULL CHECK (length(message) = 16),
    user    TEXT    NOT NULL,
    emoji   TEXT    NOT NULL,
    present INTEGER NOT NULL CHECK (present IN (0, 1)),
    at_ms   INTEGER NOT NULL,
    PRIMARY KEY (message, user, emoji)
);

-- What a message is. Reactions are stored as messages (so they are sent,
-- retried and synced like them) but listed only on the message they react to.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text'
    CHECK (kind IN ('text', 'file', 'image', 'reaction'));
