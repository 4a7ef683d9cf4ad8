-- Kubeconfigs issued to bureau staff: one row per issue. The token inside is bound to a Secret
-- (named secret, in namespace) that the API deletes once the kubeconfig expires or is revoked,
-- which ends the token then whatever its own expiry; removed_us records that the Secret is gone.
-- Never the token itself.
CREATE TABLE kubeconfigs (
    id          TEXT    NOT NULL PRIMARY KEY,
    bureau      TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    issued_to   TEXT    NOT NULL,
    issued_us   INTEGER  NOT NULL,
    expires_us  INTEGER  NOT NULL,
    revoked_us  INTEGER,
    removed_us  INTEGER,
    CHECK (expires_us > issued_us)
);
CREATE INDEX kubeconfigs_by_environment ON kubeconfigs (bureau, environment, issued_us);
CREATE INDEX kubeconfigs_to_remove ON kubeconfigs (expires_us) WHERE removed_us IS NULL;
