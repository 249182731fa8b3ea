-- The authorization server's state (mcpgate-authserver).
--
-- Portable SQL (SQLite and PostgreSQL): TEXT and BIGINT only, times in
-- seconds since the Unix epoch (UTC). Codes, refresh tokens, device codes,
-- browser sessions, client secrets and registration access tokens are kept as
-- lowercase hex SHA-256 digests; signing keys are sealed (AES-256-GCM) under
-- the master key and stored base64-encoded.

-- Clients: pre-registered (`mcpgate clients add`), dynamically registered
-- (RFC 7591) or fetched client ID metadata documents (cached).
CREATE TABLE oauth_clients (
    client_id                TEXT   NOT NULL PRIMARY KEY,
    -- "static", "dynamic" or "cimd".
    kind                     TEXT   NOT NULL,
    -- The client's registered metadata (RFC 7591 JSON), as accepted.
    metadata                 TEXT   NOT NULL,
    secret_digest            TEXT,
    registration_token_digest TEXT,
    created_at               BIGINT NOT NULL,
    last_used_at             BIGINT NOT NULL,
    -- When the row may be purged (dynamic clients unused for long, stale CIMD docs).
    expires_at               BIGINT
);

-- A grant: what one user allowed one client, from which codes and tokens issue.
CREATE TABLE oauth_grants (
    id          TEXT   NOT NULL PRIMARY KEY,
    client_id   TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    scopes      TEXT   NOT NULL,
    resource    TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    -- The refresh tokens' absolute limit.
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    -- Why it was revoked (code replay, refresh reuse, user, client).
    revoked_why TEXT
);
CREATE INDEX oauth_grants_subject ON oauth_grants (subject);

CREATE TABLE oauth_codes (
    digest          TEXT   NOT NULL PRIMARY KEY,
    grant_id        TEXT   NOT NULL,
    client_id       TEXT   NOT NULL,
    redirect_uri    TEXT   NOT NULL,
    code_challenge  TEXT   NOT NULL,
    scopes          TEXT   NOT NULL,
    resource        TEXT   NOT NULL,
    subject         TEXT   NOT NULL,
    nonce           TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);

CREATE TABLE oauth_refresh_tokens (
    digest        TEXT   NOT NULL PRIMARY KEY,
    grant_id      TEXT   NOT NULL,
    -- The token this one replaced (rotation chain).
    parent_digest TEXT,
    scopes        TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    -- Sliding idle expiry, never beyond the grant's expires_at.
    expires_at    BIGINT NOT NULL,
    -- When it was exchanged for a successor (then reuse is detected).
    rotated_at    BIGINT
);
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);

-- "Remember my decision": per user, client and scope set.
CREATE TABLE oauth_consents (
    subject    TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    scopes     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (subject, client_id)
);

CREATE TABLE oauth_signing_keys (
    kid        TEXT   NOT NULL PRIMARY KEY,
    alg        TEXT   NOT NULL,
    -- base64 of the sealed PKCS#8 private key.
    sealed     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    -- When a newer key replaced it for signing; it stays published until retire_at.
    superseded_at BIGINT,
    retire_at  BIGINT
);

CREATE TABLE oauth_device_codes (
    digest       TEXT   NOT NULL PRIMARY KEY,
    user_code    TEXT   NOT NULL UNIQUE,
    client_id    TEXT   NOT NULL,
    scopes       TEXT   NOT NULL,
    resource     TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    poll_interval BIGINT NOT NULL,
    last_poll_at BIGINT,
    -- "pending", "approved", "denied" or "used".
    status       TEXT   NOT NULL,
    subject      TEXT,
    grant_id     TEXT
);

-- Browser sessions of the login pages (anonymous until a user signs in).
CREATE TABLE oauth_sessions (
    digest     TEXT   NOT NULL PRIMARY KEY,
    subject    TEXT,
    csrf       TEXT   NOT NULL,
    auth_time  BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
