-- List mode at scale: the same table and index as the PostgreSQL migration 0010 (see
-- there for what the columns mean). AUTOINCREMENT: ids only grow, so the latest sweep is
-- the one with the highest id.

CREATE TABLE list_sweeps (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT,
    outcome          TEXT NOT NULL
        CHECK (outcome IN ('running', 'completed', 'restarted', 'abandoned')),
    pages            INTEGER NOT NULL DEFAULT 0,
    next_token       TEXT,
    params           TEXT NOT NULL,
    filter           TEXT NOT NULL,
    marked           INTEGER NOT NULL DEFAULT 0,
    discovered       INTEGER NOT NULL DEFAULT 0,
    replica_id       TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT
);

CREATE UNIQUE INDEX list_sweeps_running_idx ON list_sweeps (outcome) WHERE outcome = 'running';
