-- PostgreSQL's ledger drops its generated row number in this migration
-- (migrations/postgres/0011_ledger_without_row_numbers.sql). SQLite's is the table's rowid,
-- which costs nothing: there is nothing to change here, and the two backends keep the same
-- migration numbers.
SELECT 1;
