-- Ledger rows are identified by their idempotency key (unique, never null). The generated row
-- number beside it was read by nothing, and its sequence and index cost every insert about a
-- sixth of its time. The key's unique index stands in for it, also as the replica identity
-- for logical replication. (SQLite's row number is the table's rowid, which costs nothing.)
ALTER TABLE usage_intervals DROP COLUMN seq;
ALTER TABLE usage_intervals REPLICA IDENTITY USING INDEX usage_intervals_idempotency_key_key;
