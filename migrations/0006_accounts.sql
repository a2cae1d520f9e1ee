-- Issue 15: accounts. A registered user may have an email and a password
-- (local sign-in) or an OpenID Connect identity (issuer + subject), a role,
-- and may be disabled. `display_name` (0001) is the person's name.
-- Emails are stored trimmed and lower-cased by Wick (SQLite's lower() is
-- ASCII-only); NOCASE makes the unique index case-blind as well, and the
-- CHECK compares with BINARY, or NOCASE would let anything through.
ALTER TABLE users ADD COLUMN email TEXT COLLATE NOCASE
    CHECK (email IS NULL OR (length(email) BETWEEN 3 AND 254 AND email = lower(trim(email)) COLLATE BINARY));
-- A PHC string ($argon2id$v=19$m=19456,t=2,p=1$salt$hash); NULL: no password.
ALTER TABLE users ADD COLUMN password_hash TEXT
    CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%');
-- 'pending': signed up, waiting for an admin's approval.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user'
    CHECK (role IN ('admin', 'user', 'pending'));
-- Set: the user's sessions and tokens stop working at once (every lookup checks it).
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
ALTER TABLE users ADD COLUMN oidc_issuer TEXT;
ALTER TABLE users ADD COLUMN oidc_subject TEXT CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL));
-- SQLite refuses UNIQUE in ADD COLUMN: partial unique indexes instead.
CREATE UNIQUE INDEX users_email ON users (email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_oidc_identity ON users (oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;
