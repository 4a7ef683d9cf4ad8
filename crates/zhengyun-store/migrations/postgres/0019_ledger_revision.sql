-- Raised by every transaction that adds usage to the ledger (intervals and their rollup), in
-- that transaction: a sum read at one revision is the same at every later read of that
-- revision, so a reader may keep it until the revision moves.
ALTER TABLE ledger_bounds ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
