-- The audit trail (mcpgate-store's audit module): security events, append-only
-- and hash-chained. Each record's `hash` is the SHA-256 of its canonical form,
-- which includes the previous record's hash, so an edited record no longer
-- matches its hash and a deleted one breaks the link of the next.
CREATE TABLE audit_log (
    seq       INTEGER NOT NULL PRIMARY KEY,
    at        BIGINT  NOT NULL,
    kind      TEXT    NOT NULL,
    subject   TEXT,
    client_id TEXT,
    upstream  TEXT,
    tool      TEXT,
    outcome   TEXT,
    -- A JSON object: what the kind needs beyond the columns (never a secret).
    detail    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_subject ON audit_log (subject, at);

-- The chain's two ends: the newest record (so that deleting it is noticed)
-- and the last pruned one (so that the oldest kept record still links).
CREATE TABLE audit_chain (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    head_seq    BIGINT  NOT NULL,
    head_hash   TEXT    NOT NULL,
    pruned_seq  BIGINT  NOT NULL,
    pruned_hash TEXT    NOT NULL
);
INSERT INTO audit_chain (id, head_seq, head_hash, pruned_seq, pruned_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
        0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Records are never changed once written.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
