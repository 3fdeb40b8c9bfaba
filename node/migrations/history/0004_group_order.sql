-- History schema, version 4: one order for a group's messages on every
-- member's device. A group message carries the sender's hybrid logical
-- clock reading; a group's history is ordered by (hlc, from_user, id),
-- which every member computes alike. Other messages keep 0.
ALTER TABLE messages ADD COLUMN hlc INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_conversation_hlc ON messages (conversation, hlc);
