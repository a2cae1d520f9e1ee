-- Issue 13: where a conversation's title came from, and each person's own
-- defaults (the Settings page).

-- 'provisional': the first words of the first message, until the model writes
-- one; 'model': written by the model; 'user': typed by the person, never
-- overwritten.
ALTER TABLE conversations ADD COLUMN title_source TEXT NOT NULL DEFAULT 'provisional'
    CHECK (title_source IN ('provisional', 'model', 'user'));

-- Conversations that already had replies keep the title they have.
UPDATE conversations SET title_source = 'model'
    WHERE EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = conversations.id AND m.role = 'assistant');

-- Siblings (edits, retries) are shown in the order they were made.
CREATE INDEX messages_siblings ON messages (conversation_id, parent_id, created_at);

-- One row per person with their defaults for new conversations.
CREATE TABLE user_settings (
    user_id       INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- The model new conversations start with (NULL: the server's default).
    default_model TEXT,
    updated_at    INTEGER NOT NULL
);

-- A person's default system prompt for one model (HuggingChat's "custom prompts").
CREATE TABLE user_model_prompts (
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    model         TEXT    NOT NULL,
    system_prompt TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, model)
);
