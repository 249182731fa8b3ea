-- Daily quotas of the gateway's [[rate_limit]] rules: calls counted per key
-- (the rule's name and the caller dimensions it names) and UTC day (days
-- since the Unix epoch). One row per key and day, raised by one atomic
-- upsert per call, so replicas sharing the store share the count; rows of
-- past days are purged.
CREATE TABLE rate_quotas (
    key  TEXT   NOT NULL,
    day  BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (key, day)
);
