-- Skein tracker schema, version 5 (PostgreSQL): presence and online devices across trackers.
-- Keep in step with ../sqlite/0005_presence.sql.

-- Each tracker's part of its users' presence: for every user with a
-- visible device on it, the newest status set there and how many devices.
-- A tracker writes its own rows (and clears them when it starts) and tells
-- the others through NOTIFY; they read the row it names, and every row
-- after missing notifications.
CREATE TABLE presence (
    tracker   TEXT COLLATE "C" NOT NULL,
    user_name TEXT COLLATE "C" NOT NULL,
    status    TEXT    NOT NULL CHECK (status IN ('online', 'away', 'busy')),
    note      TEXT,
    devices   INTEGER NOT NULL,
    at_ms     BIGINT  NOT NULL,
    PRIMARY KEY (tracker, user_name)
);

-- Each tracker's online devices that reported where they can be reached,
-- for the other trackers' peer lookups: the device, its user, whether it
-- is visible, and its addresses (postcard-encoded `Addresses`).
CREATE TABLE online_devices (
    tracker   TEXT COLLATE "C" NOT NULL,
    device_id BYTEA NOT NULL CHECK (octet_length(device_id) = 16),
    user_name TEXT COLLATE "C" NOT NULL,
    visible   INTEGER NOT NULL CHECK (visible IN (0, 1)),
    addresses BYTEA NOT NULL,
    PRIMARY KEY (tracker, device_id)
);
CREATE INDEX online_devices_by_user ON online_devices (user_name);
