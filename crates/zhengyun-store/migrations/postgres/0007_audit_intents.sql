-- Audit intents: written before a change is attempted, settled (deleted) in the same
-- transaction that appends the change's entry to the chain. An intent still here long after it
-- was opened belongs to a process that stopped before it could record the outcome; it is then
-- appended with an unknown outcome (see Store::settle_stale_audit_intents), so no change
-- goes without an entry.
CREATE TABLE audit_intents (
    id        TEXT    NOT NULL PRIMARY KEY,
    opened_us BIGINT    NOT NULL,
    entry     TEXT    NOT NULL
);
CREATE INDEX audit_intents_opened ON audit_intents (opened_us);
