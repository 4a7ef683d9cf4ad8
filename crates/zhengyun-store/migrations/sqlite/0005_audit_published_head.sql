-- The highest audit head published outside the database (see Store::publish_audit_head).
-- Publishing never moves it backwards, and verification names a chain that no longer reaches
-- it or no longer holds it.
CREATE TABLE audit_published (
    id           INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq          INTEGER  NOT NULL CHECK (seq >= 0),
    hash         TEXT    NOT NULL,
    published_us INTEGER  NOT NULL
);
