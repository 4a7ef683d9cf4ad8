-- Metering gaps, where the ledger begins, and the Environment uid of usage, PostgreSQL dialect
-- (migrations/sqlite/0009_metering_gaps.sql is the same in SQLite's).

-- The Kubernetes uid of the Environment object an interval measured. NULL for intervals recorded
-- before this migration: those name their environment by bureau and name only, which was unique
-- for them (an environment name belongs to one bureau, and one object holds it at a time).
ALTER TABLE usage_intervals ADD COLUMN environment_uid TEXT;

-- Spans the ledger does not measure as they happened, recorded by the sampler in the transaction
-- that moves its checkpoint past them: unmetered (nothing written) or reconstructed (filled from
-- the state found afterwards). Append-only.
CREATE TABLE metering_gaps (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream         TEXT   NOT NULL,
    start_s        BIGINT NOT NULL,
    end_s          BIGINT NOT NULL,
    kind           TEXT   NOT NULL CHECK (kind IN ('unmetered', 'reconstructed')),
    reason         TEXT   NOT NULL,
    recorded_at_us BIGINT NOT NULL,
    CHECK (start_s < end_s)
);
CREATE INDEX metering_gaps_by_end ON metering_gaps (end_s, start_s);

-- Finance's waivers of a month's gaps: each covers the gaps recorded up to through_seq that touch
-- the month, and the part of the month before the ledger began. Append-only.
CREATE TABLE metering_gap_waivers (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    month        TEXT   NOT NULL,
    through_seq  BIGINT NOT NULL CHECK (through_seq >= 0),
    waived_by    TEXT   NOT NULL,
    reason       TEXT   NOT NULL,
    waived_at_us BIGINT NOT NULL
);
CREATE INDEX metering_gap_waivers_by_month ON metering_gap_waivers (month, seq);

-- Where each sampler stream's ledger begins: time before it was never metered. A ledger from
-- before this migration is taken to begin at its earliest interval, or at its checkpoint if it
-- holds none.
CREATE TABLE metering_origins (
    stream  TEXT   NOT NULL PRIMARY KEY,
    since_s BIGINT NOT NULL
);
INSERT INTO metering_origins (stream, since_s)
SELECT name, LEAST(at_us / 1000000, COALESCE((SELECT MIN(start_s) FROM usage_intervals), at_us / 1000000))
FROM sampler_checkpoints;

CREATE TRIGGER metering_gaps_append_only BEFORE UPDATE OR DELETE ON metering_gaps
FOR EACH ROW EXECUTE FUNCTION zhengyun_refuse_change();
CREATE TRIGGER metering_gaps_no_truncate BEFORE TRUNCATE ON metering_gaps
FOR EACH STATEMENT EXECUTE FUNCTION zhengyun_refuse_change();
CREATE TRIGGER metering_gap_waivers_append_only BEFORE UPDATE OR DELETE ON metering_gap_waivers
FOR EACH ROW EXECUTE FUNCTION zhengyun_refuse_change();
CREATE TRIGGER metering_gap_waivers_no_truncate BEFORE TRUNCATE ON metering_gap_waivers
FOR EACH STATEMENT EXECUTE FUNCTION zhengyun_refuse_change();
