-- Issue 16: groups, model access, quotas, usage and the audit log.

-- A group of people; its limits apply to its members (NULL: no limit).
-- A person in several groups gets the most generous value of each limit; a
-- limit set on the person themselves (users.*) wins over their groups'.
CREATE TABLE groups (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE COLLATE NOCASE
                                CHECK (length(trim(name)) BETWEEN 1 AND 64),
    requests_per_minute INTEGER CHECK (requests_per_minute BETWEEN 0 AND 100000),
    tokens_per_day      INTEGER CHECK (tokens_per_day BETWEEN 0 AND 1000000000000),
    replies_at_once     INTEGER CHECK (replies_at_once BETWEEN 0 AND 1000),
    created_at          INTEGER NOT NULL
);

-- `source`: 'admin' (set on the admin pages) or 'oidc' (from the provider's
-- groups claim, brought up to date at each sign-in; an admin's own choices
-- are never undone by a sign-in).
CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source   TEXT    NOT NULL DEFAULT 'admin' CHECK (source IN ('admin', 'oidc')),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- Which groups may use a model (by its id in the models file). A model with
-- no rows here is open to everyone.
CREATE TABLE model_access (
    model_id TEXT    NOT NULL,
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (model_id, group_id)
);

-- A person's own limits, over their groups'.
ALTER TABLE users ADD COLUMN requests_per_minute INTEGER CHECK (requests_per_minute BETWEEN 0 AND 100000);
ALTER TABLE users ADD COLUMN tokens_per_day INTEGER CHECK (tokens_per_day BETWEEN 0 AND 1000000000000);
ALTER TABLE users ADD COLUMN replies_at_once INTEGER CHECK (replies_at_once BETWEEN 0 AND 1000);

-- Tokens used, per UTC day, person and model; recorded as each reply (or API
-- request) ends, stopped and failed ones included. Kept when a person is
-- deleted (user_id becomes NULL): the totals stay right.
CREATE TABLE usage_daily (
    day               TEXT    NOT NULL CHECK (day GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    user_id           INTEGER REFERENCES users (id) ON DELETE SET NULL,
    model_id          TEXT    NOT NULL,
    requests          INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0
);
-- One row per (day, user, model) while the user exists.
CREATE UNIQUE INDEX usage_daily_key ON usage_daily (day, user_id, model_id);
CREATE INDEX usage_daily_user ON usage_daily (user_id, day);

-- Who did what, when, from where. Never message text: `detail` is written by
-- Wick from fixed words and ids.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    -- The actor's email (or id) when it happened: kept after they are deleted.
    actor    TEXT,
    action   TEXT    NOT NULL,
    target   TEXT,
    detail   TEXT,
    address  TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_action ON audit_log (action, at);
