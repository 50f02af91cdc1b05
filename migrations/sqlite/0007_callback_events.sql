-- ICE event callbacks: the same table and meaning as the PostgreSQL migration 0007 (see
-- there). SQLite has one daemon per file, so its insert is the only one that decides.

CREATE TABLE callback_events (
    event_type  TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    status      TEXT,
    event_time  TEXT,
    received_at TEXT NOT NULL,
    received_by TEXT NOT NULL,
    PRIMARY KEY (event_type, job_id)
);

CREATE INDEX callback_events_received_idx ON callback_events (received_at);
