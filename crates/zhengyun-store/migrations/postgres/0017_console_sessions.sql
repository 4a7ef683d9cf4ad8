-- Sessions of the web console: who signed in (the principal their token or identity provider
-- named, never a secret), the form token that guards their changes, and until when. A session
-- is found by the SHA-256 of its cookie, so the table holds nothing a cookie could be made from.
CREATE TABLE console_sessions (
    id_sha256   BYTEA   NOT NULL PRIMARY KEY,
    principal   TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_us  BIGINT   NOT NULL,
    expires_us  BIGINT   NOT NULL,
    CHECK (expires_us > created_us)
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_us);
