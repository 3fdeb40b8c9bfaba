-- Storing a message brings its conversation up to date in the same
-- statement: one round trip to SQLite per message, where a transaction of
-- three statements took five. The conversation's activity time is the
-- sender's clock, but never later than when the message was stored, so a
-- skewed clock cannot pin it to the top. Messages from other users count
-- as unread, except reactions, which show on the message they react to.
CREATE TRIGGER messages_update_conversation AFTER INSERT ON messages
BEGIN
    INSERT INTO conversations (id, kind, last_at_ms, unread)
    VALUES (
        NEW.conversation,
        'direct',
        MIN(NEW.sent_at_ms, NEW.stored_at_ms),
        CASE WHEN NEW.outgoing = 0 AND NEW.kind != 'reaction' THEN 1 ELSE 0 END
    )
    ON CONFLICT (id) DO UPDATE SET
        last_at_ms = MAX(last_at_ms, excluded.last_at_ms),
        unread = unread + excluded.unread;
END;
