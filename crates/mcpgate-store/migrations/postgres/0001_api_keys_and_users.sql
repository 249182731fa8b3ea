-- API keys and Basic users.
--
-- Portable SQL (SQLite and PostgreSQL): TEXT and BIGINT only, times in
-- seconds since the Unix epoch (UTC). No secret is stored in the clear:
-- keys as the hex SHA-256 digest, passwords as argon2id PHC strings.

CREATE TABLE api_keys (
    name       TEXT   NOT NULL PRIMARY KEY,
    -- The first characters of the key, shown by `mcpgate keys list`.
    prefix     TEXT   NOT NULL,
    -- Lowercase hex SHA-256 of the whole key.
    digest     TEXT   NOT NULL UNIQUE,
    subject    TEXT   NOT NULL,
    -- Space-separated scope tokens.
    scopes     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE users (
    name          TEXT   NOT NULL PRIMARY KEY,
    -- argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
    password_hash TEXT   NOT NULL,
    -- Space-separated scope tokens.
    scopes        TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
