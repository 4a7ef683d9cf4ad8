-- Burst pods whose room was taken back: by the scheduler preempting them for a pod of higher
-- priority ('preempted'), or by the operator deleting them above a lowered burst allowance
-- ('allowance'). One row per pod: who borrowed (bureau), who got the room back (beneficiary,
-- once known), when the reclaim started and when the pod was gone. A row is only ever
-- completed (freed_us and beneficiary set once), never otherwise changed.
CREATE TABLE burst_reclaims (
    pod_uid     TEXT    NOT NULL PRIMARY KEY,
    namespace   TEXT    NOT NULL,
    pod         TEXT    NOT NULL,
    bureau      TEXT    NOT NULL,
    cause       TEXT    NOT NULL CHECK (cause IN ('preempted', 'allowance')),
    beneficiary TEXT,
    started_us  INTEGER NOT NULL,
    freed_us    INTEGER,
    CHECK (freed_us IS NULL OR freed_us >= started_us)
);
CREATE INDEX burst_reclaims_by_start ON burst_reclaims (started_us);
