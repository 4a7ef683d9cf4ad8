-- The language each person chose in the web console, by the name they sign in as (a token id,
-- or <subject>@<issuer host>): applied at their next sign-in, on any browser.
CREATE TABLE console_languages (
    principal   TEXT NOT NULL PRIMARY KEY,
    lang        TEXT NOT NULL,
    updated_us  BIGINT NOT NULL
);
