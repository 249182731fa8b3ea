-- JWT authorization grants (RFC 7523) from trusted issuers: an Identity
-- Assertion JWT Authorization Grant (ID-JAG) is accepted once, on every
-- replica. The key is a digest of the issuer and the assertion's jti; the row
-- lives until the assertion expires (then the periodic purge deletes it).
-- Times in seconds since the Unix epoch (UTC).
CREATE TABLE assertion_jtis (
    key        TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX assertion_jtis_expires ON assertion_jtis (expires_at);
