-- Issue 15: tokens made on the Settings page may expire (Unix ms; NULL: never).
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
