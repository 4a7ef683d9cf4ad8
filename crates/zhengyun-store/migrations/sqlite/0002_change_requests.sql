-- Requests that wait for a platform admin: an environment, or a resize, that needs more than
-- the bureau has left, and a bureau's own request for more quota. The payload is the JSON the
-- API will apply once approved; the store does not interpret it.
CREATE TABLE change_requests (
    id              TEXT    NOT NULL PRIMARY KEY,
    kind            TEXT    NOT NULL
        CHECK (kind IN ('environment-create', 'environment-resize', 'bureau-quota')),
    bureau          TEXT    NOT NULL,
    object          TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    note            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    requested_by    TEXT    NOT NULL,
    requested_at_us INTEGER NOT NULL,
    decided_by      TEXT,
    decided_at_us   INTEGER,
    decision_reason TEXT,
    CHECK ((state = 'pending') = (decided_at_us IS NULL))
);
CREATE INDEX change_requests_by_bureau ON change_requests (bureau, requested_at_us);
CREATE INDEX change_requests_by_state ON change_requests (state, requested_at_us);
