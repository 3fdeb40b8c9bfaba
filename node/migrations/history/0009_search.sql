-- History schema, version 9: full-text search over what messages say
-- (their text, or the name of the file or image they offer).
--
-- An external-content FTS5 index: it keeps no copy of the text, only the
-- index, and reads `messages.text` by `seq` for snippets. The trigram
-- tokenizer indexes every run of three characters, so a term matches
-- anywhere inside a word and text without spaces between words (Chinese,
-- Japanese) is found by any part of it; case and diacritics are folded
-- ("creme" finds "Crème"). Terms shorter than three characters cannot use
-- the index: the search code filters on them with LIKE (see search.rs).
--
-- Every message row has an index row (a reaction's NULL text has no
-- terms), so the triggers below and a 'rebuild' agree on what is indexed,
-- which an external-content index needs: it must be told exactly the old
-- values of what it forgets.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text,
    content = 'messages',
    content_rowid = 'seq',
    tokenize = 'trigram remove_diacritics 1'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (NEW.seq, NEW.text);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', OLD.seq, OLD.text);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF seq, text ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', OLD.seq, OLD.text);
    INSERT INTO messages_fts (rowid, text) VALUES (NEW.seq, NEW.text);
END;

-- The messages stored before this version.
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
