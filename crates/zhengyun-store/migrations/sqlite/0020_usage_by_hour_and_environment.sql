-- One environment's intervals over a range are found hour by hour (right-sizing reads 30 days
-- of them). Keyed by environment first (migration 0014), an hour's intervals of every
-- environment landed on up to as many index pages as there are environments, spread over the
-- whole index, for each window's transaction to rewrite; a month of hourly windows for 3,000
-- environments was stored at about half the speed it had without the index (on PostgreSQL
-- less so, migrations/postgres/0020). Keyed by the hour they end in first, an hour's
-- intervals land together at the index's end, as they do in the table.
DROP INDEX usage_intervals_by_environment;
CREATE INDEX usage_intervals_by_hour_and_environment
    ON usage_intervals (end_s / 3600, environment, end_s);
