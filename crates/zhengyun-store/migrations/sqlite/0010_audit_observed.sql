-- What the operator last recorded in the audit log about each cluster object whose changes it
-- audits (rate cards, bureau budgets, environment tiers), so that a change is recorded once:
-- not again after a restart, a relist or a change of leader. `audited` is the JSON of the
-- audited values; `seq` the audit entry that last recorded them (none for a remembered object
-- with nothing to record, such as a bureau without a budget).
CREATE TABLE audit_observed (
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    uid        TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    audited    TEXT    NOT NULL,
    seq        INTEGER,
    PRIMARY KEY (kind, name)
);
