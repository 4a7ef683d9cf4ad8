-- Zhengyun store schema, PostgreSQL dialect. migrations/sqlite/0001_initial.sql is the same
-- schema in SQLite's dialect; change both together. Instants are integers: microseconds
-- (`*_us`) or whole seconds (`*_s`) since the Unix epoch. Money is decimal text (exactly what
-- rust_decimal printed), never a float.

-- API bearer tokens. The secret itself is never stored, only its SHA-256.
CREATE TABLE api_tokens (
    id            TEXT   NOT NULL PRIMARY KEY,
    secret_sha256 BYTEA  NOT NULL CHECK (length(secret_sha256) = 32),
    role          TEXT   NOT NULL
        CHECK (role IN ('platform-admin', 'bureau-admin', 'bureau-viewer', 'finance', 'auditor')),
    bureau        TEXT,
    description   TEXT   NOT NULL,
    created_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT,
    CHECK ((role IN ('bureau-admin', 'bureau-viewer')) = (bureau IS NOT NULL))
);

-- The audit log: a hash chain. hash = SHA-256(prev_hash || canonical row), see src/audit.rs.
CREATE TABLE audit_log (
    seq          BIGINT NOT NULL PRIMARY KEY CHECK (seq > 0),
    at_us        BIGINT NOT NULL,
    principal    TEXT   NOT NULL,
    role         TEXT,
    bureau       TEXT,
    action       TEXT   NOT NULL,
    object       TEXT   NOT NULL,
    quota_before TEXT,
    quota_after  TEXT,
    result       TEXT   NOT NULL,
    request_id   TEXT   NOT NULL,
    prev_hash    TEXT   NOT NULL,
    hash         TEXT   NOT NULL
);
CREATE INDEX audit_log_by_bureau ON audit_log (bureau, seq);
CREATE INDEX audit_log_by_time ON audit_log (at_us);

-- The last entry of the chain. Appends lock this row (SELECT … FOR UPDATE), so two appends
-- never share a parent, and verification compares it with the last row, so deleting the
-- newest entries shows.
CREATE TABLE audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION zhengyun_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION zhengyun_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION zhengyun_refuse_change();

-- The metering ledger: one row per usage interval, unique by its idempotency key.
CREATE TABLE usage_intervals (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- "C": byte-wise comparison, the cheapest for a unique index of machine-made keys.
    idempotency_key TEXT   COLLATE "C" NOT NULL UNIQUE,
    bureau          TEXT   NOT NULL,
    environment     TEXT   NOT NULL,
    resource        TEXT   NOT NULL,
    kind            TEXT   NOT NULL CHECK (kind IN ('reserved', 'consumed')),
    tier            TEXT   NOT NULL,
    start_s         BIGINT NOT NULL,
    end_s           BIGINT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    recorded_at_us  BIGINT NOT NULL,
    CHECK (start_s < end_s)
);
CREATE INDEX usage_intervals_by_end ON usage_intervals (end_s, start_s);

-- Where each sampler stream has written up to.
CREATE TABLE sampler_checkpoints (
    name        TEXT   NOT NULL PRIMARY KEY,
    at_us       BIGINT NOT NULL,
    saved_at_us BIGINT NOT NULL
);

-- Closed monthly statements (invariant 5: never changed). The header is the statement as JSON
-- without its lines; the lines are rows, in order.
CREATE TABLE closed_statements (
    month        TEXT   NOT NULL PRIMARY KEY,
    closed_at_us BIGINT NOT NULL,
    header       TEXT   NOT NULL
);
CREATE TABLE closed_statement_lines (
    month       TEXT    NOT NULL REFERENCES closed_statements (month),
    line_no     INTEGER NOT NULL,
    reference   TEXT    NOT NULL,
    bureau      TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    amount      TEXT    NOT NULL,
    line        TEXT    NOT NULL,
    PRIMARY KEY (month, line_no),
    UNIQUE (month, reference)
);
CREATE INDEX closed_statement_lines_by_bureau ON closed_statement_lines (month, bureau);

-- Signed corrections to closed months, in the order they were issued.
CREATE TABLE statement_adjustments (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    month        TEXT   NOT NULL REFERENCES closed_statements (month),
    issued_at_us BIGINT NOT NULL,
    reference    TEXT   NOT NULL,
    bureau       TEXT   NOT NULL,
    environment  TEXT   NOT NULL,
    reason       TEXT   NOT NULL,
    amount       TEXT   NOT NULL,
    line         TEXT   NOT NULL
);
CREATE INDEX statement_adjustments_by_month ON statement_adjustments (month, seq);

CREATE TRIGGER closed_statements_append_only BEFORE UPDATE OR DELETE ON closed_statements
FOR EACH ROW EXECUTE FUNCTION zhengyun_refuse_change();
CREATE TRIGGER closed_statement_lines_append_only BEFORE UPDATE OR DELETE ON closed_statement_lines
FOR EACH ROW EXECUTE FUNCTION zhengyun_refuse_change();
CREATE TRIGGER statement_adjustments_append_only BEFORE UPDATE OR DELETE ON statement_adjustments
FOR EACH ROW EXECUTE FUNCTION zhengyun_refuse_change();
CREATE TRIGGER closed_statements_no_truncate BEFORE TRUNCATE ON closed_statements
FOR EACH STATEMENT EXECUTE FUNCTION zhengyun_refuse_change();
CREATE TRIGGER closed_statement_lines_no_truncate BEFORE TRUNCATE ON closed_statement_lines
FOR EACH STATEMENT EXECUTE FUNCTION zhengyun_refuse_change();
CREATE TRIGGER statement_adjustments_no_truncate BEFORE TRUNCATE ON statement_adjustments
FOR EACH STATEMENT EXECUTE FUNCTION zhengyun_refuse_change();
