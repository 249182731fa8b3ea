-- Sign-in attempts per account and per client address (the authorization
-- server's login throttle), kept here so that every replica counts the same
-- attempts. Times in milliseconds since the Unix epoch (UTC).
CREATE TABLE login_throttles (
    -- "user:<name>" or "ip:<address>".
    key          TEXT   NOT NULL PRIMARY KEY,
    -- Attempts reserved in the current window (failures, and checks in flight).
    attempts     BIGINT NOT NULL,
    window_start BIGINT NOT NULL
);
