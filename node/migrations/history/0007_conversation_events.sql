-- History schema, version 7: event lines of a group's conversation
-- ("alice added carol", "bob left"), kept beside its messages and shown
-- among them by their clock reading. The id is fixed by the group and its
-- version, so a line learnt twice is kept once.
CREATE TABLE conversation_events (
    id           BLOB    PRIMARY KEY NOT NULL,
    conversation TEXT    NOT NULL,
    hlc          INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    text         TEXT    NOT NULL
);
CREATE INDEX conversation_events_order ON conversation_events (conversation, hlc);
