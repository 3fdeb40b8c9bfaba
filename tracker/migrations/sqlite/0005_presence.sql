-- Skein tracker schema, version 5 (SQLite): presence across trackers.
-- Keep in step with ../postgres/0005_presence.sql.

-- Each tracker's part of its users' presence: for every user with a
-- visible device on it, the newest status set there and how many devices.
-- A tracker writes its own rows (and clears them when it starts) and tells
-- the others through NOTIFY; they read the row it names, and every row
-- after missing notifications.
CREATE TABLE presence (
    tracker   TEXT NOT NULL,
    user_name TEXT NOT NULL,
    status    TEXT    NOT NULL CHECK (status IN ('online', 'away', 'busy')),
    note      TEXT,
    devices   INTEGER NOT NULL,
    at_ms     INTEGER  NOT NULL,
    PRIMARY KEY (tracker, user_name)
);
