-- Token expiry, the bureau a token was issued for, and readable principals in the audit log,
-- SQLite dialect (migrations/postgres/0006_token_expiry_and_audit_principals.sql is the same in
-- PostgreSQL's).

-- Every token expires. Tokens issued before this migration expire 90 days (the default
-- lifetime) after the migration ran; 0 would mean "expired at the epoch" and is never left.
ALTER TABLE api_tokens ADD COLUMN expires_at_us INTEGER NOT NULL DEFAULT 0;
UPDATE api_tokens
SET expires_at_us = CAST(strftime('%s', 'now') AS INTEGER) * 1000000 + 7776000000000;

-- The Kubernetes uid of a bureau token's Bureau when it was issued: a bureau deleted and
-- created again under the same code is another bureau, and the token does not reach it. NULL
-- for tokens issued before (they are checked by the bureau's existence only).
ALTER TABLE api_tokens ADD COLUMN bureau_uid TEXT;
CREATE INDEX api_tokens_by_bureau ON api_tokens (bureau);

-- Audit entries name their principal readably (the token's role, bureau and description).
-- `format` says which canonical form the hash covers: 1 for entries written before (without
-- the label), 2 for entries with it; see src/audit.rs.
ALTER TABLE audit_log ADD COLUMN format INTEGER NOT NULL DEFAULT 1 CHECK (format IN (1, 2));
ALTER TABLE audit_log ADD COLUMN principal_label TEXT;
