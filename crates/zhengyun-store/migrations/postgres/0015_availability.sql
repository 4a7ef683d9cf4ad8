-- Availability, measured in one-minute slices by the operator (one stream, 'availability', whose
-- checkpoint moves in the same transaction as what it writes, so that no minute is recorded
-- twice or lost across restarts).
--
-- Every minute the platform measured, once, and whether it fell in an announced maintenance
-- window (not counted for or against anyone).
CREATE TABLE availability_minutes (
    minute_s    BIGINT NOT NULL PRIMARY KEY,
    maintenance BIGINT NOT NULL CHECK (maintenance IN (0, 1))
);
-- When each environment existed to be measured, at which tier: a span is opened when the
-- environment is first measured and closed (to_s) when it is gone or changes tier.
CREATE TABLE availability_presence (
    environment TEXT   NOT NULL,
    from_s      BIGINT NOT NULL,
    bureau      TEXT   NOT NULL,
    tier        TEXT   NOT NULL,
    to_s        BIGINT,
    PRIMARY KEY (environment, from_s),
    CHECK (to_s IS NULL OR to_s >= from_s)
);
CREATE INDEX availability_presence_open ON availability_presence (to_s);
-- The minutes a workload of an environment was unavailable: counted (1) when the platform
-- caused it, kept as evidence only (0) when the tenant did. Never changed once written.
CREATE TABLE availability_slices (
    environment TEXT   NOT NULL,
    minute_s    BIGINT NOT NULL,
    bureau      TEXT   NOT NULL,
    tier        TEXT   NOT NULL,
    counted     BIGINT NOT NULL CHECK (counted IN (0, 1)),
    cause       TEXT   NOT NULL,
    detail      TEXT   NOT NULL,
    PRIMARY KEY (environment, minute_s)
);
CREATE INDEX availability_slices_by_minute ON availability_slices (minute_s);
-- The service levels (objectives, credit tables, maintenance windows) as the capacity pool
-- stated them from an instant on: statements credit by the terms in force at the month's end.
CREATE TABLE service_level_terms (
    since_s BIGINT NOT NULL PRIMARY KEY,
    terms   TEXT   NOT NULL
);
