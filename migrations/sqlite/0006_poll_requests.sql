-- Poll requests: the same columns and index as the PostgreSQL migration 0006 (see there
-- for what they mean). SQLite has no NOTIFY: a daemon polls the index instead.

ALTER TABLE tracked_projects ADD COLUMN requested_at TEXT;

CREATE INDEX tracked_projects_requested_idx ON tracked_projects (requested_at, project_id)
    WHERE requested_at IS NOT NULL;

ALTER TABLE sync_runs ADD COLUMN trigger TEXT;
