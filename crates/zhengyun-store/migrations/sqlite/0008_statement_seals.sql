-- Seals of closed statements, SQLite dialect (migrations/postgres/0008_statement_seals.sql is
-- the same in PostgreSQL's).
--
-- Closing a month stores, beside its header and lines, who closed it and a seal: the SHA-256 of
-- the previous seal, the month, its closing instant and closer, the stored header and every
-- stored line, in line order (see src/seals.rs). Each seal names the one before it, in the order
-- months were closed, so altering any closed statement — or dropping one — breaks the chain from
-- there on. `previous_seal` is unique: two months can never be sealed onto the same predecessor.
-- Months closed before this migration have no seal; they are reported as unsealed, and the
-- first month sealed after it starts the chain from 64 zeros.
CREATE TABLE statement_seals (
    seq           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    month         TEXT    NOT NULL UNIQUE REFERENCES closed_statements (month),
    closed_by     TEXT    NOT NULL,
    previous_seal TEXT    NOT NULL UNIQUE,
    seal          TEXT    NOT NULL
);

CREATE TRIGGER statement_seals_no_update BEFORE UPDATE ON statement_seals
BEGIN SELECT RAISE(ABORT, 'closed statements never change'); END;
CREATE TRIGGER statement_seals_no_delete BEFORE DELETE ON statement_seals
BEGIN SELECT RAISE(ABORT, 'closed statements never change'); END;
