-- The per-user credential vault and identity federation.
--
-- Portable SQL (SQLite and PostgreSQL): TEXT and BIGINT only, times in
-- seconds since the Unix epoch (UTC). Every secret here is sealed
-- (AES-256-GCM) under the master key and stored base64-encoded; the sealed
-- value is bound to its row (subject, upstream or provider), so it cannot be
-- moved to another row. `key_id` is the sealing key's id, so a wrong master key
-- is reported before anything is read, and a rotation finds every row.

-- One secret per user and upstream (e.g. a personal API key).
CREATE TABLE vault_secrets (
    subject    TEXT   NOT NULL,
    upstream   TEXT   NOT NULL,
    sealed     TEXT   NOT NULL,
    key_id     BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (subject, upstream)
);

-- An external identity (provider, the IdP's subject) linked to a local user.
CREATE TABLE federated_identities (
    provider         TEXT   NOT NULL,
    external_subject TEXT   NOT NULL,
    subject          TEXT   NOT NULL,
    email            TEXT,
    login            TEXT,
    created_at       BIGINT NOT NULL,
    last_login_at    BIGINT NOT NULL,
    PRIMARY KEY (provider, external_subject)
);
CREATE INDEX federated_identities_subject ON federated_identities (subject);

-- The IdP's tokens for one user and provider, forwarded to upstreams.
CREATE TABLE federated_tokens (
    subject        TEXT   NOT NULL,
    provider       TEXT   NOT NULL,
    access_sealed  TEXT   NOT NULL,
    refresh_sealed TEXT,
    key_id         BIGINT NOT NULL,
    scopes         TEXT   NOT NULL,
    -- NULL: the IdP did not say (GitHub OAuth app tokens do not expire).
    expires_at     BIGINT,
    -- Set when the IdP refused the tokens: the user must sign in again.
    revoked_at     BIGINT,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (subject, provider)
);

-- Sign-ins in flight toward an IdP, by the digest of their `state`.
CREATE TABLE federation_logins (
    state_digest    TEXT   NOT NULL PRIMARY KEY,
    provider        TEXT   NOT NULL,
    -- The PKCE verifier and the OIDC nonce, sealed together.
    sealed          TEXT   NOT NULL,
    key_id          BIGINT NOT NULL,
    -- Where the browser goes after signing in (a path on this server).
    return_to       TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);

-- Local users found by verified email when federation maps by email.
ALTER TABLE users ADD COLUMN email TEXT;
CREATE INDEX users_email ON users (email);
