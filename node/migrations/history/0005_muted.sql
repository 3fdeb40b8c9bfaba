-- History schema, version 5: muted conversations. A muted conversation
-- still counts unread; its daemon events say "muted" so a desktop client
-- shows no notification, unless the message mentions this user.
CREATE TABLE muted_conversations (
    id TEXT PRIMARY KEY NOT NULL
);
