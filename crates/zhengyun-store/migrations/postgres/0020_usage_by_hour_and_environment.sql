-- SQLite's ledger finds one environment's intervals hour by hour from this migration on
-- (migrations/sqlite/0020_usage_by_hour_and_environment.sql), since its index by environment
-- made each window's transaction rewrite a page per environment. PostgreSQL keeps its index by
-- environment (migration 0014): nothing changes here, and the two backends keep the same
-- migration numbers.
SELECT 1;
