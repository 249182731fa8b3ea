-- Resource servers registered with the authorization server (`mcpgate resources add`):
-- other MCP servers (or gateways) it issues tokens for, which check those tokens
-- by introspection with their own credentials.
--
-- Portable SQL (SQLite and PostgreSQL): TEXT and BIGINT only, times in seconds
-- since the Unix epoch (UTC). The introspection secret is kept as its SHA-256
-- digest only.
CREATE TABLE resource_servers (
    -- The canonical resource URI: the `aud` of its tokens.
    resource      TEXT   PRIMARY KEY,
    -- Shown on the consent page.
    name          TEXT   NOT NULL,
    -- The scopes it accepts, space-separated.
    scopes        TEXT   NOT NULL,
    -- Its credentials at the introspection endpoint.
    client_id     TEXT   NOT NULL UNIQUE,
    secret_digest TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);
