-- DPoP (RFC 9449).
--
-- The key a grant's tokens are bound to: its RFC 7638 thumbprint, set when a
-- public client redeems the grant's code (or device code) with a proof. Every
-- refresh of the grant must then prove possession of that key.
ALTER TABLE oauth_grants ADD COLUMN dpop_jkt TEXT;

-- Proofs seen, so that a proof is accepted once on every replica: a hash of
-- the key's thumbprint and the proof's jti, kept until the proof's iat is too
-- old to be accepted anyway. Times in seconds since the Unix epoch (UTC).
CREATE TABLE dpop_jtis (
    key        TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dpop_jtis_expires ON dpop_jtis (expires_at);
