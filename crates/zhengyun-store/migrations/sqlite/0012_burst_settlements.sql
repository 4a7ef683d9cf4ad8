-- Borrowed capacity settled per metering window, recorded by the sampler in the transaction that
-- writes the window (so that a window is settled exactly once, whatever restarts): each borrowing
-- environment's charge for its burst usage, each lending bureau's credit for the idle reserved
-- capacity it had, and the platform's share, per month part of the window and resource, in millionths
-- of a fen (the statement rounds each month's sums once).
-- Burst usage is recorded here only, never as usage intervals. Append-only.
CREATE TABLE burst_settlements (
    month          TEXT    NOT NULL,
    window_end_s   INTEGER NOT NULL,
    role           TEXT    NOT NULL CHECK (role IN ('burst', 'lent', 'platform')),
    bureau         TEXT    NOT NULL,
    environment    TEXT    NOT NULL,
    tier           TEXT    NOT NULL,
    resource       TEXT    NOT NULL,
    -- Unit-seconds as a decimal string: a month of them can exceed 64 bits.
    unit_seconds   TEXT    NOT NULL,
    micro_fen      INTEGER NOT NULL CHECK (micro_fen >= 0),
    recorded_at_us INTEGER NOT NULL,
    PRIMARY KEY (month, window_end_s, role, bureau, environment, resource)
);

CREATE TRIGGER burst_settlements_no_update BEFORE UPDATE ON burst_settlements
BEGIN SELECT RAISE(ABORT, 'settlements never change'); END;
CREATE TRIGGER burst_settlements_no_delete BEFORE DELETE ON burst_settlements
BEGIN SELECT RAISE(ABORT, 'settlements never change'); END;
