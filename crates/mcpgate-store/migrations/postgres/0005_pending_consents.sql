-- Authorization requests waiting on the consent page (mcpgate-authserver).
--
-- The page carries only an opaque reference to one of these rows (and the
-- session's CSRF token): the request the user decides on is the one the
-- server validated, never what the browser posts back. A row is deleted when
-- the form is submitted (single use) or when it expires.
CREATE TABLE oauth_pending_consents (
    -- Hex SHA-256 of the reference the page holds.
    digest     TEXT   NOT NULL PRIMARY KEY,
    -- The signed-in user the page was shown to.
    subject    TEXT   NOT NULL,
    -- The validated authorization request's parameters, form-encoded.
    request    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
