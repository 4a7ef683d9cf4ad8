-- Ledger rollups, PostgreSQL dialect (migrations/sqlite/0003_usage_rollups.sql is the same in
-- SQLite's). Maintained by the store in the transaction that records the intervals they sum,
-- so a rollup never disagrees with the ledger; see src/rollup.rs.

-- Unit-seconds per meter and UTC day (day_s: a multiple of 86400). An interval spanning several
-- days adds its overlap with each. The sum is kept split at bit 32, us_high * 2^32 + us_low, with
-- us_low carried into us_high on every addition: the same arithmetic as on SQLite, whose
-- integers are 64-bit.
CREATE TABLE usage_daily (
    day_s       BIGINT NOT NULL,
    bureau      TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    resource    TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    tier        TEXT   NOT NULL,
    us_high     BIGINT NOT NULL CHECK (us_high >= 0),
    us_low      BIGINT NOT NULL CHECK (us_low >= 0 AND us_low < 4294967296),
    PRIMARY KEY (day_s, bureau, environment, resource, kind, tier)
);
CREATE INDEX usage_daily_by_bureau ON usage_daily (bureau, day_s);

-- The longest interval ever recorded, in seconds: lets a range query bound its scan of
-- usage_intervals_by_end to intervals that can still overlap the range.
CREATE TABLE ledger_bounds (
    id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    longest_s BIGINT  NOT NULL CHECK (longest_s >= 0)
);
INSERT INTO ledger_bounds (id, longest_s)
SELECT 1, COALESCE(MAX(end_s - start_s), 0) FROM usage_intervals;

-- Intervals recorded before this migration, cut at UTC midnights.
WITH RECURSIVE pieces (day_s, bureau, environment, resource, kind, tier, amount, start_s, end_s) AS (
    SELECT start_s - (((start_s % 86400) + 86400) % 86400),
           bureau, environment, resource, kind, tier, amount, start_s, end_s
    FROM usage_intervals
    UNION ALL
    SELECT day_s + 86400, bureau, environment, resource, kind, tier, amount, start_s, end_s
    FROM pieces WHERE day_s + 86400 < end_s
),
parts AS (
    SELECT day_s, bureau, environment, resource, kind, tier,
           (amount >> 32) * (LEAST(end_s, day_s + 86400) - GREATEST(start_s, day_s)) AS high,
           (amount & 4294967295) * (LEAST(end_s, day_s + 86400) - GREATEST(start_s, day_s)) AS low
    FROM pieces
)
INSERT INTO usage_daily (day_s, bureau, environment, resource, kind, tier, us_high, us_low)
SELECT day_s, bureau, environment, resource, kind, tier,
       (SUM(high) + div(SUM(low), 4294967296))::bigint, mod(SUM(low), 4294967296)::bigint
FROM parts GROUP BY day_s, bureau, environment, resource, kind, tier;
