-- ice-sync schema, SQLite. Forward-only: never edit a released migration, add one.
-- Same tables and meanings as migrations/postgres. Timestamps are UTC ISO-8601 text
-- of one fixed shape, 'YYYY-MM-DDTHH:MM:SS.mmmZ', so text order is time order and
-- SQLite's date functions read them directly.

CREATE TABLE tracked_projects (
    project_id           TEXT PRIMARY KEY NOT NULL,
    added_at             TEXT NOT NULL,
    source               TEXT NOT NULL,
    enabled              BOOLEAN NOT NULL DEFAULT 1,
    next_poll_at         TEXT,
    last_attempt_at      TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    not_found_count      INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    last_error_at        TEXT
);

CREATE TABLE editing_projects (
    project_id                     TEXT PRIMARY KEY NOT NULL,
    title                          TEXT,
    description                    TEXT,
    status                         TEXT,
    business_status                TEXT,
    project_type                   TEXT,
    template_id                    TEXT,
    template_type                  TEXT,
    clips_param                    TEXT,
    timeline                       TEXT,
    cover_url                      TEXT,
    create_source                  TEXT,
    modified_source                TEXT,
    business_config                TEXT,
    timeline_convert_status        TEXT,
    timeline_convert_error_message TEXT,
    duration                       REAL,
    create_time                    TEXT,
    modified_time                  TEXT,
    first_seen_at                  TEXT NOT NULL,
    last_polled_at                 TEXT NOT NULL,
    last_changed_at                TEXT NOT NULL,
    last_request_id                TEXT,
    removed_at                     TEXT,
    history_seq                    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX editing_projects_status_idx ON editing_projects (project_type, status, business_status);

CREATE TABLE sync_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    outcome          TEXT NOT NULL DEFAULT 'running',
    projects_polled  INTEGER NOT NULL DEFAULT 0,
    projects_changed INTEGER NOT NULL DEFAULT 0,
    transitions      INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    replica_id       TEXT,
    error            TEXT
);
CREATE INDEX sync_runs_started_idx ON sync_runs (started_at);

CREATE TABLE editing_project_history (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id               TEXT NOT NULL,
    seq                      INTEGER NOT NULL,
    observed_at              TEXT NOT NULL,
    event                    TEXT NOT NULL,
    previous_status          TEXT,
    status                   TEXT,
    previous_business_status TEXT,
    business_status          TEXT,
    modified_time            TEXT,
    request_id               TEXT,
    sync_run_id              INTEGER REFERENCES sync_runs (id),
    CONSTRAINT editing_project_history_seq_key UNIQUE (project_id, seq)
);
CREATE INDEX editing_project_history_observed_idx ON editing_project_history (observed_at);

CREATE VIEW editing_project_status_intervals AS
SELECT project_id,
       status,
       business_status,
       entered_at,
       left_at,
       unixepoch(left_at, 'subsec') - unixepoch(entered_at, 'subsec') AS duration_seconds
FROM (
    SELECT h.project_id,
           h.event,
           h.status,
           h.business_status,
           h.observed_at AS entered_at,
           LEAD(h.observed_at) OVER (PARTITION BY h.project_id ORDER BY h.seq) AS left_at
    FROM editing_project_history h
) s
WHERE event <> 'removed';
