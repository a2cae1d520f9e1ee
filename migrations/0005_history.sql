-- Issue 14: your history. Pins, where an imported conversation came from,
-- full-text search, and share links.

-- Pinned conversations come first in the sidebar.
ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1));
-- Where an imported conversation came from ('chatgpt:<its id>', 'wick:<its id>'),
-- so that importing the same file twice can say it made copies. NULL: made here.
ALTER TABLE conversations ADD COLUMN imported_from TEXT;

-- The sidebar reads a page of (pinned first, then newest) per user.
DROP INDEX conversations_user_updated;
CREATE INDEX conversations_user_sidebar ON conversations (user_id, pinned DESC, updated_at DESC, id DESC);
CREATE INDEX conversations_user_imported ON conversations (user_id, imported_from)
    WHERE imported_from IS NOT NULL;

-- Full-text search over every message (all branches) and every title.
-- External-content FTS5 tables: the text is stored once, in `messages` and
-- `conversations`, and the triggers below keep the index in step inside the
-- very transaction that writes the text. The index is keyed by the tables'
-- rowids, which a plain VACUUM may renumber (the tables have TEXT primary
-- keys): after a VACUUM, rebuild both indexes
-- (INSERT INTO message_search (message_search) VALUES ('rebuild'), same for
-- title_search). Wick itself never vacuums.
CREATE VIRTUAL TABLE message_search USING fts5 (
    content, content = 'messages', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_search (rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.rowid, old.content);
END;
CREATE TRIGGER message_search_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO message_search (rowid, content) VALUES (new.rowid, new.content);
END;
INSERT INTO message_search (message_search) VALUES ('rebuild');

CREATE VIRTUAL TABLE title_search USING fts5 (
    title, content = 'conversations', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER title_search_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO title_search (rowid, title) VALUES (new.rowid, new.title);
END;
CREATE TRIGGER title_search_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO title_search (title_search, rowid, title) VALUES ('delete', old.rowid, old.title);
END;
CREATE TRIGGER title_search_update AFTER UPDATE OF title ON conversations BEGIN
    INSERT INTO title_search (title_search, rowid, title) VALUES ('delete', old.rowid, old.title);
    INSERT INTO title_search (rowid, title) VALUES (new.rowid, new.title);
END;
INSERT INTO title_search (title_search) VALUES ('rebuild');

-- A read-only snapshot of a conversation's shown branch, open to anyone with
-- its link (/s/<id>). Deleting the conversation deletes its links.
CREATE TABLE shares (
    -- 128 random bits as 32 hex digits: the link is the secret.
    id              TEXT    PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    title           TEXT    NOT NULL,
    -- The branch shown when it was shared: a JSON array of messages.
    messages        TEXT    NOT NULL CHECK (json_valid(messages)),
    created_at      INTEGER NOT NULL,
    -- NULL: never expires.
    expires_at      INTEGER,
    revoked_at      INTEGER
);
CREATE INDEX shares_user ON shares (user_id, created_at DESC);
CREATE INDEX shares_conversation ON shares (conversation_id);
