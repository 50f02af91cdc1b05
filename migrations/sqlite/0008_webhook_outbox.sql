-- The webhook's outbox: the same table as the PostgreSQL migration 0008 (see there for
-- what it means).
CREATE TABLE webhook_outbox (
    project_id       TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    payload          TEXT NOT NULL,
    observed_at      TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    last_error       TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    PRIMARY KEY (project_id, seq)
);
