-- Time-first idempotency keys and rollup days in China Standard Time, SQLite dialect
-- (migrations/postgres/0004_time_first_keys.sql is the same in PostgreSQL's).

-- Idempotency keys start with the interval's bounds, <start>/<end>/<environment>/<resource>/<kind>
-- (see zhengyun_metering::IdempotencyKey), so that each hour's new keys are appended to the
-- unique index instead of landing on one page per meter all over it. Keys recorded before are
-- rewritten the same way; the two forms never collide (one starts with a letter, the other with
-- a digit or a sign).
UPDATE usage_intervals
SET idempotency_key = start_s || '/' || end_s || '/' || environment || '/' || resource || '/' || kind;

-- Rollup days start at midnight China Standard Time (UTC+08:00, the default billing zone):
-- day_s + 28800 is a multiple of 86400, so that a month and a rate change there are whole rollup
-- days. The rollup is recounted from the ledger, cut at those midnights.
DELETE FROM usage_daily;
WITH RECURSIVE pieces (day_s, bureau, environment, resource, kind, tier, amount, start_s, end_s) AS (
    SELECT start_s - ((((start_s + 28800) % 86400) + 86400) % 86400),
           bureau, environment, resource, kind, tier, amount, start_s, end_s
    FROM usage_intervals
    UNION ALL
    SELECT day_s + 86400, bureau, environment, resource, kind, tier, amount, start_s, end_s
    FROM pieces WHERE day_s + 86400 < end_s
),
parts AS (
    SELECT day_s, bureau, environment, resource, kind, tier,
           (amount >> 32) * (MIN(end_s, day_s + 86400) - MAX(start_s, day_s)) AS high,
           (amount & 4294967295) * (MIN(end_s, day_s + 86400) - MAX(start_s, day_s)) AS low
    FROM pieces
)
INSERT INTO usage_daily (day_s, bureau, environment, resource, kind, tier, us_high, us_low)
SELECT day_s, bureau, environment, resource, kind, tier,
       SUM(high) + (SUM(low) >> 32), SUM(low) & 4294967295
FROM parts GROUP BY day_s, bureau, environment, resource, kind, tier;
