-- The search index is brought up to date in batches (many messages to a
-- transaction) rather than by a trigger on every stored message: FTS5
-- writes a new index segment at every commit, and with one message per
-- commit that was half the cost of storing it. `search_indexed.seq` is the
-- last message (by seq) in the index; every message up to it is indexed,
-- none after it. A search brings the index up to date first.
CREATE TABLE search_indexed (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO search_indexed (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM messages;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;

-- Only messages already in the index are taken out of it; a changed
-- message goes back in only if its place is still inside the indexed part
-- (the catch-up takes the others).
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN OLD.seq <= (SELECT seq FROM search_indexed WHERE id = 1)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', OLD.seq, OLD.text);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF seq, text ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
        SELECT 'delete', OLD.seq, OLD.text WHERE OLD.seq <= (SELECT seq FROM search_indexed WHERE id = 1);
    INSERT INTO messages_fts (rowid, text)
        SELECT NEW.seq, NEW.text WHERE NEW.seq <= (SELECT seq FROM search_indexed WHERE id = 1);
END;
