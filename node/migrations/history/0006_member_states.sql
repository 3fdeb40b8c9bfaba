-- History schema, version 6: where a group message sent from this user
-- stands with each member: queued (not yet on any of the member's
-- devices), delivered (on one at least), read (the member read it).
CREATE TABLE member_states (
    message_id BLOB    NOT NULL,
    member     TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'delivered', 'read')),
    at_ms      INTEGER,
    PRIMARY KEY (message_id, member)
);
