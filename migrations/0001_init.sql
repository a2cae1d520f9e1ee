-- Wick's first schema: people, their browser sessions, conversations and messages.
-- Times are Unix milliseconds (UTC). Public ids (conversations, messages) are random
-- 128-bit hex strings so that a URL never reveals how many rows exist.

CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    -- 'anonymous': a visitor known only by a session cookie.
    kind         TEXT    NOT NULL DEFAULT 'anonymous' CHECK (kind IN ('anonymous', 'registered')),
    display_name TEXT,
    created_at   INTEGER NOT NULL
);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the cookie value; the value itself is never stored.
    token_hash   BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE conversations (
    id            TEXT    PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    system_prompt TEXT,
    -- Generation settings (temperature, ...) as a JSON object.
    settings      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    -- The newest message of the branch being shown; NULL while empty.
    leaf_message_id TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX conversations_user_updated ON conversations (user_id, updated_at DESC);

CREATE TABLE messages (
    id                TEXT    PRIMARY KEY,
    conversation_id   TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- The message this one answers or follows; edits and retries branch from a shared parent.
    parent_id         TEXT    REFERENCES messages (id) ON DELETE CASCADE,
    role              TEXT    NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content           TEXT    NOT NULL,
    state             TEXT    NOT NULL DEFAULT 'done'
                              CHECK (state IN ('generating', 'done', 'interrupted', 'error')),
    -- Why generation ended: 'eos', 'stop', 'length', 'stopped', 'error'; NULL for user messages.
    finish_reason     TEXT,
    error             TEXT,
    model             TEXT,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at);
CREATE INDEX messages_parent ON messages (parent_id);
