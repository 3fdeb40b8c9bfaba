-- History schema, version 8: the sending device's number for each of its
-- messages to a group, so a member notices one that never came and asks
-- the sender for it. 0 for other messages.
ALTER TABLE messages ADD COLUMN group_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_group_seq ON messages (conversation, from_device, group_seq);
