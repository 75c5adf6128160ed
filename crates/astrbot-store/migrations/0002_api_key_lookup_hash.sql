-- Our addition to AstrBot's schema: a SHA-256 lookup hash so that checking a
-- key needs one cheap hash instead of PBKDF2 per request. Kept in a separate
-- migration so it also applies to an `api_keys` table that AstrBot created.
-- SQLite cannot add a UNIQUE column, so uniqueness comes from the index;
-- NULLs (keys not yet migrated) do not collide in a unique index.

ALTER TABLE api_keys ADD COLUMN lookup_hash TEXT;

CREATE UNIQUE INDEX IF NOT EXISTS uix_api_key_lookup_hash ON api_keys (lookup_hash);
