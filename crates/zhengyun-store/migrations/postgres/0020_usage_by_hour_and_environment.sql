-- One environment's intervals over a range are found hour by hour, as on SQLite (see
-- migrations/sqlite/0020_usage_by_hour_and_environment.sql): keyed by environment first, an
-- hour's intervals of every environment landed on as many index pages as there are
-- environments; keyed by the hour they end in first, they land together at the index's end.
DROP INDEX usage_intervals_by_environment;
CREATE INDEX usage_intervals_by_hour_and_environment
    ON usage_intervals ((end_s / 3600), environment, end_s);
