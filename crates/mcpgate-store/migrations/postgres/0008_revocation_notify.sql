-- Revocations announced to every replica (PostgreSQL only; a SQLite store has
-- one process, which needs no announcement).
--
-- Whatever revokes a credential, the server, the CLI or a concurrent replica,
-- goes through one of these statements, so the announcement is made here
-- rather than at each call site. The channel carries the table's name only;
-- listeners drop every verified credential they cache and verify again.
-- NOTIFY is sent at commit, and repeats within a transaction fold into one.

CREATE FUNCTION mcpgate_announce_revocation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mcpgate_revocations', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

-- An API key revoked, re-scoped, given an expiry or deleted.
CREATE TRIGGER api_keys_revocation
    AFTER UPDATE OF revoked_at, expires_at, scopes, subject OR DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION mcpgate_announce_revocation();

-- A Basic user's password or scopes changed, or the user removed.
CREATE TRIGGER users_revocation
    AFTER UPDATE OF password_hash, scopes OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION mcpgate_announce_revocation();

-- A client deleted (its grants go with it).
CREATE TRIGGER oauth_clients_revocation
    AFTER DELETE ON oauth_clients
    FOR EACH STATEMENT EXECUTE FUNCTION mcpgate_announce_revocation();

-- A grant revoked: /revoke, a replayed code, refresh-token reuse, a user or
-- client removed; or deleted.
CREATE TRIGGER oauth_grants_revocation
    AFTER UPDATE OF revoked_at OR DELETE ON oauth_grants
    FOR EACH STATEMENT EXECUTE FUNCTION mcpgate_announce_revocation();

-- A signing key retired or removed: tokens it signed stop verifying.
CREATE TRIGGER oauth_signing_keys_revocation
    AFTER UPDATE OF retire_at OR DELETE ON oauth_signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION mcpgate_announce_revocation();
