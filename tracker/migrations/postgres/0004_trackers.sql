-- Skein tracker schema, version 4 (PostgreSQL): the organisation's trackers.
-- Keep in step with ../sqlite/0004_trackers.sql.

-- Every tracker that has served the organisation's store. A tracker is
-- known by its relay's PeerId, which its data directory keeps from one
-- run to the next. It records where nodes reach it and refreshes
-- `last_seen_ms` while it runs; `running` is cleared when it stops
-- cleanly, so one that stays set with an old `last_seen_ms` went away
-- without a word.
CREATE TABLE trackers (
    relay_peer_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    control_addrs TEXT    NOT NULL,
    relay_addrs   TEXT    NOT NULL,
    started_at_ms BIGINT  NOT NULL,
    last_seen_ms  BIGINT  NOT NULL,
    running       INTEGER NOT NULL CHECK (running IN (0, 1))
);
